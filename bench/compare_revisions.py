"""The dense and conv benchmarks on two revisions of nndl, in one run.

    python bench/compare_revisions.py OLD [--new REV] [--rounds 2] [--images 10000] [--json out.json]

Checks the old revision (and ``--new``, default: this checkout as it is) out
into temporary ``git worktree``s and runs this checkout's ``bench_dense.py``
and ``bench_conv.py --no-torch`` against each revision's ``src/`` in turn (A B A B ...), so both are measured the same way,
at the same moment, on the same machine. Prints each timing's best over the
rounds and the ratio new / old (1.00: unchanged; below 1: faster now).

Each revision compiles its kernels into its own numba cache folder
(``NUMBA_CACHE_DIR``) before the timings, so neither pays for compiling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def bench(src: Path, cache: Path, script: str, args: list[str], out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_CACHE_DIR": str(cache)}
    cmd = [sys.executable, str(BENCH / script), *args, "--json", str(out)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def timings(script: str, result: dict) -> dict[str, float]:
    """Label -> seconds from one benchmark's JSON."""
    if script == "bench_dense.py":
        rows = {}
        for r in result["results"]:
            if r["name"].startswith("nndl"):
                label = f"dense {r['name']} {r['dtype']}"
                rows[label + " whole call"] = r["seconds"]
                if r.get("epoch_seconds"):
                    rows[label + " epoch loop"] = r["epoch_seconds"]
        return rows
    return {f"conv mb {r['batch_size']}, {r['threads']} thread(s)": r["nndl_seconds"]
            for r in result["epochs"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the revision to compare with (e.g. a commit)")
    ap.add_argument("--new", default=None, help="the revision to measure against it (default: this checkout)")
    ap.add_argument("--rounds", type=int, default=2, help="A/B rounds; each timing keeps its best")
    ap.add_argument("--images", type=int, default=10_000,
                    help="conv: images per timed epoch (seconds are scaled to 50,000)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nndl-compare-") as tmp:
        tmp = Path(tmp)
        trees = {"old": tmp / "old"} if args.new is None else {"old": tmp / "old", "new": tmp / "new"}
        for name, tree in trees.items():
            rev = args.old if name == "old" else args.new
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), rev],
                           check=True)
        try:
            revisions = {"old": trees["old"] / "src", "new": trees.get("new", REPO) / "src"}
            jobs = [("bench_dense.py", ["--repeats", "3"]),
                    ("bench_conv.py", ["--no-torch", "--images", str(args.images)])]
            best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
            for round_ in range(args.rounds):
                for name, src in revisions.items():
                    for script, extra in jobs:
                        print(f"round {round_ + 1}: {script} on {name} ({src.parent.name})", flush=True)
                        result = bench(src, tmp / f"cache-{name}", script, extra, tmp / "out.json")
                        for label, s in timings(script, result).items():
                            best[name][label] = min(s, best[name].get(label, float("inf")))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    new_name = args.new or f"this checkout ({head})"
    print(f"\nseconds per epoch of 50,000 images, best of {args.rounds} rounds; old = {args.old}, new = {new_name}")
    print(f"| benchmark | old | new | new / old |\n|---|---:|---:|---:|")
    for label, old in best["old"].items():
        new = best["new"].get(label)
        if new is not None:
            print(f"| {label} | {old:.3f} | {new:.3f} | {new / old:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"old_revision": args.old, "new_revision": new_name, **best}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
