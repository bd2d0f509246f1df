"""Experiments on local worker processes against one run after the other.

    PYTHONPATH=src python bench/bench_parallel.py [--data-dir DIR] [--jobs 2] [--small 40] [--json out.json]

Measurements, in one run, on the same machine:

0. **The ceiling**: the same fixed NumPy work (one thread) in one process,
   then in N processes at once, without Dask or nndl: the speed-up the
   machine can give N processes at that moment (N on an idle N-core machine,
   less when other processes hold cores).
1. **Speed-up** of the chapter 3 experiments ``multiple-eta`` (3 runs) and
   ``weight-initialization`` (4 runs), full size (30 epochs on the 50,000
   training images each): serially in this process, as ``nndl experiment
   run NAME`` does, against ``--jobs N`` (a Dask ``LocalCluster`` of N
   worker processes, one thread and one BLAS thread each), as ``nndl
   experiment run NAME --jobs N`` does. Each experiment is timed on its own
   (3 runs on 2 workers can be at most 1.5x faster) and both together as
   one batch of 7 runs, the longest first, as ``nndl experiment run
   multiple-eta weight-initialization --jobs N`` sends them (what ``--jobs``
   is for: many runs). The cluster is
   started before the clock starts; its start-up (worker processes, and
   each worker's first MNIST load) is printed apart. The parallel results
   are checked equal to the serial ones (apart from wall times).
2. **Overhead per run** of the Dask path: ``--small`` tiny runs (100
   training images, one epoch) serially against the same runs sent to a
   local cluster of ONE worker process (already warm): the difference per run
   is what a run pays for travelling as a task (serialising the job,
   scheduling, the result coming back).

The machine's load average is printed: other processes on a 2-core
machine take cores away from the workers, and then no speed-up is clean.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
try:
    import nndl  # noqa: E402
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(REPO / "src"))
    import nndl  # noqa: E402

from nndl import experiments  # noqa: E402
from nndl.config import RunConfig  # noqa: E402
from nndl.data import load_mnist  # noqa: E402
from nndl.experiments.base import without_times  # noqa: E402
from nndl.experiments.runner import execute_serially, longest_first  # noqa: E402
from nndl.parallel import connect  # noqa: E402

EXPERIMENTS = ("multiple-eta", "weight-initialization")


def timed(executor, jobs: dict, data_dir) -> tuple[float, dict]:
    t0 = time.perf_counter()
    results = dict(executor(jobs, data_dir=data_dir))
    return time.perf_counter() - t0, results


def serial_executor(data):
    """execute_serially with MNIST already loaded (the serial command loads it once, before its runs)."""
    from nndl.experiments.base import execute

    def run(jobs, *, data_dir=None, keep_predictions=False):
        for label, job in jobs.items():
            yield label, execute(job, data=data, keep_predictions=keep_predictions)
    return run


def _burn(seconds_hint: int = 300) -> float:
    """A fixed amount of single-threaded NumPy work; returns its wall time."""
    import numpy as np

    a = np.random.default_rng(0).random((400, 400))
    t0 = time.perf_counter()
    for _ in range(seconds_hint):
        a @ a
    return time.perf_counter() - t0


def ceiling(n: int) -> float:
    """The speed-up that n processes can have on this machine now: the same
    fixed work in 1 process, then in n at once (no Dask, no nndl). Other
    processes on the machine lower it below n."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n) as pool:
        list(pool.map(_burn, [10] * n))                    # start the processes
        one = pool.submit(_burn).result()
        t0 = time.perf_counter()
        list(pool.map(_burn, [300] * n))
        together = time.perf_counter() - t0
    return n * one / together


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--small", type=int, default=40, help="tiny runs for the per-run overhead (default: 40)")
    p.add_argument("--only-overhead", action="store_true", help="skip the full-size experiments")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    data_dir = args.data_dir or os.environ.get("NNDL_DATA") or REPO.parent / "shared" / "data" / "mnist"
    report: dict = {"python": platform.python_version(), "nndl": nndl.__version__, "jobs": args.jobs,
                    "load_before": os.getloadavg()}
    print(f"nndl {nndl.__version__}, Python {platform.python_version()}; {load()}")

    c = ceiling(args.jobs)
    report["ceiling"] = c
    print(f"0. The speed-up {args.jobs} processes can have here now (the same NumPy work in 1, then in {args.jobs} "
          f"at once): {c:.2f}x")
    t0 = time.perf_counter()
    data = load_mnist(data_dir, progress=False)
    print(f"serial: MNIST loaded in this process in {time.perf_counter() - t0:.2f} s (once, not counted)")
    # warm the numba kernels' disk cache, so that neither side compiles
    list(execute_serially({"warm": RunConfig(epochs=1, train_size=100, test_size=100)}, data_dir=data_dir))

    if not args.only_overhead:
        print(f"\n1. Full-size experiments, serially vs --jobs {args.jobs}")
        t0 = time.perf_counter()
        with connect(jobs=args.jobs) as cluster:
            cluster.check_workers(str(data_dir))
            warm = {f"warm{i}": RunConfig(epochs=1, train_size=100, test_size=100) for i in range(args.jobs)}
            list(cluster.run_jobs(warm, data_dir=str(data_dir)))   # start-up: processes, imports, MNIST
            start = time.perf_counter() - t0
            print(f"   --jobs {args.jobs}: {cluster.describe()} started and warm (each loaded MNIST) in {start:.1f} s")
            rows = []
            batches = [(name, experiments.get(name).jobs()) for name in EXPERIMENTS]
            # as `nndl experiment run multiple-eta weight-initialization --jobs N` sends them
            union = longest_first({f"{name}/{label}": job for name, jobs in batches for label, job in jobs.items()})
            batches.append(("both, as one batch", union))
            for name, jobs in batches:
                serial_s, serial = timed(serial_executor(data), jobs, data_dir)
                par_s, par = timed(cluster.run_jobs, jobs, str(data_dir))
                same = {k: without_times(v) for k, v in serial.items()} == {k: without_times(v) for k, v in par.items()}
                rows.append({"experiment": name, "runs": len(jobs), "serial_s": serial_s, "parallel_s": par_s,
                             "speedup": serial_s / par_s, "same_results": same})
                print(f"   {name:<24} {len(jobs)} runs: serial {serial_s:7.1f} s, --jobs {args.jobs} {par_s:7.1f} s "
                      f"-> speed-up {serial_s / par_s:.2f}x; results equal: {same}; {load()}")
        report["startup_s"] = start
        report["experiments"] = rows
        report["ceiling_after"] = c = ceiling(args.jobs)
        print(f"   the ceiling again, after them: {c:.2f}x")

    print(f"\n2. Overhead per run of the Dask path ({args.small} runs of 100 images, 1 epoch)")
    tiny = RunConfig(sizes=(784, 30, 10), epochs=1, train_size=100, validation_size=100, monitor=["validation"])
    jobs = {f"tiny{i}": tiny.replace(seed=i) for i in range(args.small)}
    serial_s, _ = timed(serial_executor(data), jobs, data_dir)
    with connect(jobs=1) as cluster:
        cluster.check_workers(str(data_dir))
        list(cluster.run_jobs({"warm": tiny}, data_dir=str(data_dir)))
        dask_s, _ = timed(cluster.run_jobs, jobs, str(data_dir))
    per_serial, per_dask = serial_s / args.small, dask_s / args.small
    print(f"   serial {1000 * per_serial:.1f} ms per run; one Dask worker {1000 * per_dask:.1f} ms per run "
          f"-> overhead {1000 * (per_dask - per_serial):.1f} ms per run ({per_dask / per_serial:.2f}x on runs this "
          f"small); {load()}")
    report["overhead"] = {"runs": args.small, "serial_ms_per_run": 1000 * per_serial,
                          "dask_ms_per_run": 1000 * per_dask, "overhead_ms_per_run": 1000 * (per_dask - per_serial)}
    report["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nWritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
