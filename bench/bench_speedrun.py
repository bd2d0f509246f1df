"""Time to 99% on MNIST: bench/speedrun.sh (nndl) against the same recipe in PyTorch, in one run.

    PYTHONPATH=src python bench/bench_speedrun.py [--seeds 0 1 2] [--no-torch] [--json out.json]

For each seed, runs ``bench/speedrun.sh --seed S`` (the ``nndl train``
command line of the fast recipe) and then the same recipe written in
PyTorch (``torch==2.13.0``, CPU), each in a fresh process, and timestamps
every line the process prints from the moment it is started. Reported:
the test accuracy after every epoch with its time, and the time to the
first epoch line at or above 99.0% (the recipe's target).

The PyTorch run is the same recipe, step for step: the network
(``Conv2d(1,20,5) MaxPool2d(2) ReLU Conv2d(20,40,5) MaxPool2d(2) ReLU Linear(640,300) ReLU
Linear(300,10)``) starts from nndl's initial parameters for that seed (copied),
sees the same mini-batches with the same random one-pixel shifts (drawn with
nndl's generator and :func:`nndl.data.augment.random_shift_rotate`, exactly as
``nndl train`` draws them), and is trained by ``torch.optim.SGD`` with
momentum 0.9 and the same per-epoch learning rates (PyTorch's momentum
form ``v = mu v + g; p -= eta v`` equals nndl's ``v = mu v - eta g; p += v``
while eta is constant), on ``--threads`` threads (default: the recipe's 2).
Test accuracy is measured once per epoch and used for nothing else.

MNIST is read from ``--data-dir``, ``$NNDL_DATA`` or ``../shared/data/mnist``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEEDRUN = REPO / "bench" / "speedrun.sh"
TARGET = 9900
EPOCH_LINE = re.compile(r"^Epoch (\d+): (\d+) / 10000$")


def default_data_dir() -> Path:
    env = os.environ.get("NNDL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


def recipe() -> dict:
    """The options of bench/speedrun.sh's nndl train command, parsed from the script."""
    text = SPEEDRUN.read_text()
    command = re.search(r"exec nndl train(.*?)\"\$@\"", text, flags=re.S).group(1).replace("\\\n", " ")
    words = shlex.split(command)
    opts, i = {}, 0
    while i < len(words):
        key = words[i].lstrip("-").replace("-", "_")
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            opts[key] = words[i + 1]
            i += 2
        else:
            opts[key] = True
            i += 1
    return opts


def timed_run(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; return every output line with its time since the start, and the epoch lines."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    lines, epochs = [], []
    for line in proc.stdout:
        t = time.perf_counter() - t0
        lines.append((round(t, 2), line.rstrip("\n")))
        m = EPOCH_LINE.match(line.strip())
        if m:
            epochs.append({"epoch": int(m.group(1)), "correct": int(m.group(2)), "seconds": round(t, 2)})
    proc.wait()
    total = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n" + "\n".join(l for _, l in lines[-20:]))
    first = next((e for e in epochs if e["correct"] >= TARGET), None)
    return {"epochs": epochs, "seconds_total": round(total, 2),
            "seconds_to_99": first["seconds"] if first else None,
            "epoch_of_99": first["epoch"] if first else None}


# -- the same recipe in PyTorch (runs in its own process) ------------------------------

def torch_child(seed: int, threads: int, folder: Path) -> int:
    import numpy as np
    import torch

    from nndl import Network
    from nndl.architecture import default_cost, parse_layers
    from nndl.data import load_mnist
    from nndl.data.augment import random_shift_rotate

    torch.set_num_threads(threads)
    r = recipe()
    epochs, m = int(r["epochs"]), int(r["batch_size"])
    eta0, eta_final, mu = float(r["eta"]), float(r["eta_final"]), float(r["momentum"])
    augment = random_shift_rotate(int(r["max_shift"]), float(r["max_degrees"]))
    splits = load_mnist(folder, download=False, progress=False)
    x, y = splits.training.x, splits.training.y
    tx, ty = splits.test.x, splits.test.y
    # the seeds nndl train derives from --seed: initial weights, then shuffling
    init_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
    layers = parse_layers(r["layers"], activation=r["activation"], init=r["init"])
    net = Network(layers, default_cost(layers), input_shape=(784,), rng=np.random.default_rng(init_seed))
    nn = torch.nn
    model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)),
                          nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
                          nn.Conv2d(20, 40, 5), nn.MaxPool2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(640, 300), nn.ReLU(), nn.Linear(300, 10))
    params = [p for p in net.get_params() if p]
    with torch.no_grad():
        for mod, p in zip((model[1], model[4], model[8], model[10]), params):
            mod.weight.copy_(torch.from_numpy(p["w"]))
            mod.bias.copy_(torch.from_numpy(p["b"]))
    opt = torch.optim.SGD(model.parameters(), lr=eta0, momentum=mu)
    rng = np.random.default_rng(shuffle_seed)
    X_test = torch.from_numpy(np.ascontiguousarray(tx))
    n = len(x)
    print(f"PyTorch {torch.__version__}, {threads} thread(s): the speedrun recipe, seed {seed}", flush=True)
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = eta0 + (eta_final - eta0) * epoch / max(epochs - 1, 1)
        model.train()
        order = rng.permutation(n)                      # as nndl's Trainer: one permutation per epoch,
        for start in range(0, n, m):                    # then each batch's shifts from the same generator
            idx = order[start:start + m]
            xb = torch.from_numpy(np.ascontiguousarray(augment(x[idx], rng)))
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(xb), torch.from_numpy(y[idx]))
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(X_test[i:i + 1000]).argmax(1).numpy() == ty[i:i + 1000]).sum())
                          for i in range(0, len(ty), 1000))
        print(f"Epoch {epoch}: {correct} / {len(ty)}", flush=True)
    return 0


# -- main ---------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both (default: the recipe's --threads)")
    ap.add_argument("--no-torch", action="store_true", help="run nndl only")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    ap.add_argument("--torch-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    folder = args.data_dir or default_data_dir()
    threads = args.threads or int(recipe().get("threads", 1))
    if args.torch_child is not None:
        return torch_child(args.torch_child, threads, folder)

    src = str(REPO / "src")
    env = dict(os.environ, NNDL_DATA=str(folder), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    have_torch = not args.no_torch
    if have_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed; timing nndl only (pip install torch==2.13.0)")
            have_torch = False
    # compile nndl's kernels (and warm the disk caches) outside the timings
    subprocess.run([str(SPEEDRUN), "--train-size", "640", "--epochs", "1", "--threads", str(threads)],
                   env=env, capture_output=True, check=True)
    command = SPEEDRUN.read_text().split("exec ", 1)[1].replace("\\\n", " ").replace('"$@"', "")
    results = {"recipe": " ".join(shlex.split(command)),
               "threads": threads, "cpus": os.cpu_count(), "runs": []}
    print(f"Time to 99% test accuracy, {threads} thread(s); seconds from process start to each epoch line")
    for seed in args.seeds:
        contenders = [("nndl", [str(SPEEDRUN), "--seed", str(seed), "--threads", str(threads)])]
        if have_torch:
            contenders.append(("torch", [sys.executable, str(Path(__file__).resolve()), "--torch-child",
                                         str(seed), "--threads", str(threads), "--data-dir", str(folder)]))
        for name, cmd in contenders:
            run = timed_run(cmd, env)
            run.update(contender=name, seed=seed)
            results["runs"].append(run)
            curve = "  ".join(f"{e['correct'] / 100:.2f}%@{e['seconds']:.1f}s" for e in run["epochs"])
            hit = (f"99% at epoch {run['epoch_of_99']} after {run['seconds_to_99']:.1f} s"
                   if run["seconds_to_99"] is not None else "never reached 99%")
            print(f"  seed {seed} {name:5s}: {hit:34s} | {curve}", flush=True)
    print()
    print("| seed | contender | epochs | seconds to 99% | total seconds | test accuracy by epoch |")
    print("|---:|---|---:|---:|---:|---|")
    for run in results["runs"]:
        to99 = f"{run['seconds_to_99']:.1f}" if run["seconds_to_99"] is not None else "-"
        curve = ", ".join(f"{e['correct'] / 100:.2f}" for e in run["epochs"])
        print(f"| {run['seed']} | {run['contender']} | {len(run['epochs'])} | {to99} | "
              f"{run['seconds_total']:.1f} | {curve} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
