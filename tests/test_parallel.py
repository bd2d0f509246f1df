"""Experiments on many processes: a real Dask cluster (``dask scheduler`` and
two ``dask worker`` processes on 127.0.0.1), a local cluster (``--jobs``), and
what happens when a worker dies or a run fails.

The claim under test: the same seeds give the same result dicts (apart from
wall-clock times) serially, with ``--jobs`` and on a cluster, and a fault
costs at most the run it hit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from nndl import cli, experiments  # noqa: E402
from nndl.config import RunConfig  # noqa: E402
from nndl.errors import DataError  # noqa: E402
from nndl.experiments.base import Experiment, without_times  # noqa: E402
from nndl.parallel import connect, worker  # noqa: E402

from dask_cluster import DaskCluster, free_port  # noqa: E402
from helpers import MNIST_DIR, needs_mnist  # noqa: E402

pytestmark = [pytest.mark.mnist, needs_mnist]




def run_files(folder) -> dict:
    return {p.name: without_times(json.loads(p.read_text())) for p in sorted(folder.glob("*/runs/*.json"))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask-logs"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The quick multiple-eta experiment run one run after the other, in this process."""
    out = tmp_path_factory.mktemp("serial")
    res = experiments.run_experiment(experiments.get("multiple-eta"), out, quick=True, data_dir=MNIST_DIR)
    assert len(res.trained) == 3 and not res.failed
    return run_files(out)


def _slow_experiment(n: int = 4) -> Experiment:
    """Runs long enough (half a second each on an idle 2-core machine) for a worker to die in the middle of one."""
    base = RunConfig(sizes=(784, 100, 10), cost="cross-entropy", init="default", eta=0.5, lmbda=0.5, epochs=3,
                     train_size=20000, validation_size=1000, monitor=["validation"])
    return Experiment("slow", 3, "runs for the fault tests",
                      lambda quick, seeds: {f"eta={e}": base.replace(eta=e) for e in (0.1, 0.3, 1.0, 3.0)[:n]})


def test_experiment_on_a_dask_cluster_equals_the_serial_run(cluster, serial, tmp_path, capsys):
    code = cli.main(["experiment", "run", "multiple-eta", "--quick", "--scheduler", cluster.address,
                     "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "on the Dask cluster at " + cluster.address in out and "3 run(s) trained, 0 cached" in out
    assert run_files(tmp_path) == serial
    summary = json.loads((tmp_path / "multiple-eta" / "results.json").read_text())
    assert summary["complete"] and summary["failed"] == {}


def test_jobs_runs_local_processes_with_the_serial_numbers(serial, tmp_path, capsys):
    code = cli.main(["experiment", "run", "multiple-eta", "--quick", "--jobs", "2", "--out", str(tmp_path),
                     "--no-progress", "--data-dir", str(MNIST_DIR)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "on 2 local worker processes" in out
    assert run_files(tmp_path) == serial


def test_a_worker_killed_mid_run_costs_only_that_run(cluster, tmp_path):
    exp = _slow_experiment()
    expected = experiments.run_experiment(exp, tmp_path / "serial", data_dir=MNIST_DIR)
    try:
        with connect(scheduler=cluster.address) as c:
            killer = cluster.kill_when_busy()
            res = experiments.run_experiment(exp, tmp_path / "cluster", executor=c.run_jobs)
            killer.join(timeout=5)
        assert killer.killed is not None, "no worker was busy: nothing was killed"
        assert killer.killed[1].startswith("nndl-eta=")   # one of these runs was in flight on it
        assert sorted(res.trained) == sorted(exp.jobs()) and not res.failed
        assert run_files(tmp_path / "cluster") == run_files(tmp_path / "serial")
        assert len(expected.trained) == 4
    finally:
        cluster.restore()


def test_a_failing_run_is_recorded_with_its_reason_and_the_others_finish(cluster, tmp_path, capsys):
    good = RunConfig(sizes=(784, 10, 10), epochs=1, train_size=500, validation_size=500, monitor=["validation"])
    exp = Experiment("faulty", 3, "one run asks for more images than MNIST has",
                     lambda quick, seeds: {"good": good, "bad": good.replace(train_size=60000)})
    with connect(scheduler=cluster.address) as c:
        res = experiments.run_experiment(exp, tmp_path, executor=c.run_jobs)
    assert res.trained == ["good"]
    assert list(res.failed) == ["bad"] and "train_size 60000 exceeds the 50000 training images" in res.failed["bad"]
    assert json.loads((tmp_path / "faulty" / "results.json").read_text())["failed"] == res.failed
    assert not list((tmp_path / "faulty" / "runs").glob("bad--*"))   # not cached: it runs again next time
    # serially the same run fails the same way
    again = experiments.run_experiment(exp, tmp_path / "serial", data_dir=MNIST_DIR)
    assert again.failed == res.failed and again.trained == ["good"]


def test_the_summary_says_what_failed(monkeypatch, tmp_path, capsys):
    def jobs(quick, seeds):
        good = RunConfig(sizes=(784, 10, 10), epochs=1, train_size=300, validation_size=300, monitor=["validation"])
        return {"good": good, "bad": good.replace(validation_size=20000)}

    monkeypatch.setitem(experiments.EXPERIMENTS, "faulty",
                        Experiment("faulty", 3, "a run that cannot be made", jobs))
    code = cli.main(["experiment", "run", "faulty", "--out", str(tmp_path), "--no-progress",
                     "--data-dir", str(MNIST_DIR)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_ERROR
    assert "faulty: bad FAILED: ConfigFieldError: validation_size 20000 exceeds the 10000 validation images" in out
    assert "1 run(s) trained, 0 cached, 1 FAILED" in out
    assert "  failed: bad: ConfigFieldError: validation_size 20000" in out


def test_workers_say_which_mnist_files_they_lack(cluster, tmp_path):
    with connect(scheduler=cluster.address) as c:
        assert all(not info["missing"] for info in c.check_workers().values())
        with pytest.raises(DataError) as e:
            c.check_workers(str(tmp_path))
    assert "has no MNIST: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in str(e.value)
    assert str(tmp_path) in str(e.value) and "NNDL_DATA" in str(e.value)
    # the same for a job that reaches a worker anyway: a failed result naming the files
    result = worker.run_job({"run": RunConfig(epochs=1).to_dict()}, data_dir=str(tmp_path))
    assert "DataError" in result["failed"] and "t10k-images-idx3-ubyte.gz" in result["failed"]


def test_an_unreachable_scheduler_fails_fast_with_one_line(tmp_path):
    port = free_port()   # nothing listens there
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "import sys; from nndl.cli import main; sys.exit(main())",
                           "experiment", "run", "multiple-eta", "--quick", "--scheduler", f"tcp://127.0.0.1:{port}",
                           "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    assert proc.returncode == cli.EXIT_ERROR
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"nndl: error: cannot reach a Dask scheduler at tcp://127.0.0.1:{port} within")
    assert "dask scheduler" in lines[0]
    assert not list(tmp_path.glob("*/runs/*.json"))


@pytest.mark.parametrize("address", ["http://127.0.0.1:8786", "127.0.0.1", "tcp://127.0.0.1:99999"])
def test_a_malformed_scheduler_address_is_refused(address, tmp_path, capsys):
    assert cli.main(["experiment", "run", "multiple-eta", "--quick", "--scheduler", address,
                     "--out", str(tmp_path)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert f"--scheduler {address!r}: expected a Dask scheduler address" in err and "tcp://127.0.0.1:8786" in err


def test_without_dask_the_error_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed -> ImportError
    assert cli.main(["experiment", "run", "multiple-eta", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "nndl[cluster]"' in err and "--jobs" in err
