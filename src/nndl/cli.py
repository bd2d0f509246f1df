"""The ``nndl`` command: the only place that reads argv and prints.

    nndl train [options]        train a network on MNIST (default: the book's chapter 1 network)
    nndl evaluate MODEL         accuracy and cost of a saved model on a split
    nndl data [--fetch]         where the MNIST files are and whether they verify
    nndl baseline darkness|svm  the book's baselines

Every user error prints one line ``nndl: error: ...`` and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from . import activations, costs, initializers
from .errors import ConfigError, NNDLError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# -- argument types ------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _momentum(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"momentum must be in [0, 1), got {text}")
    return value


def _choice(registry: dict, what: str):
    def parse(text: str) -> str:
        key = text.lower()
        if key not in registry:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r}; valid {what}s: {', '.join(registry)}")
        return key
    return parse


def _cost(text: str) -> str:
    try:
        return costs.get(text).name
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _init(text: str) -> str:
    try:
        return initializers.get(text).name
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_monitor(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["test", "validation:accuracy,cost"]`` -> ``{"test": ("accuracy",), ...}``."""
    from .callbacks import METRICS, SPLITS

    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if item == "none":
            continue
        split, _, metrics = item.partition(":")
        if split not in SPLITS:
            raise ConfigError(f"--monitor: unknown split {split!r}; valid: {', '.join(SPLITS)} "
                              "(optionally with :accuracy, :cost or :accuracy,cost)")
        names = tuple(m for m in metrics.split(",") if m) or ("accuracy",)
        for m in names:
            if m not in METRICS:
                raise ConfigError(f"--monitor {item}: unknown metric {m!r}; valid: {', '.join(METRICS)}")
        out[split] = tuple(dict.fromkeys(out.get(split, ()) + names))
    return out


# -- parser --------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the whole usage text
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                              f"Run '{self.prog} --help' for the options.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nndl", description="Neural Networks and Deep Learning, from scratch in NumPy.")
    parser.add_argument("--version", action="version", version=f"nndl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    data_help = "folder with the MNIST files (default: $NNDL_DATA, else the user cache folder)"

    t = sub.add_parser("train", help="train a network on MNIST",
                       description="Train a network on MNIST. With no options: the book's chapter 1 "
                                   "network ([784, 30, 10], sigmoid, quadratic cost, N(0,1) init, "
                                   "30 epochs, mini-batch 10, eta 3.0).")
    t.add_argument("--data-dir", type=Path, help=data_help)
    arch = t.add_argument_group("network")
    arch.add_argument("--sizes", type=_positive_int, nargs="+", metavar="N",
                      help="fully connected layer sizes, input first (default: 784 30 10)")
    arch.add_argument("--layers", metavar="SPEC",
                      help="any architecture as a spec, e.g. conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10 "
                           "(see README; hidden layers use --activation)")
    arch.add_argument("--dropout-scale", choices=("inverted", "book"), default="inverted",
                      help="dropout layers: scale kept units by 1/(1-p) while training (inverted), or the "
                           "outputs by (1-p) at inference as network3 does (book)")
    arch.add_argument("--activation", type=_choice(activations.ACTIVATIONS, "activation"), default="sigmoid",
                      help=f"hidden-layer activation: {', '.join(activations.ACTIVATIONS)} (default: sigmoid)")
    arch.add_argument("--output-activation", type=_choice(activations.ACTIVATIONS, "activation"),
                      help="output activation (default: softmax for log-likelihood, else --activation)")
    arch.add_argument("--cost", type=_cost,
                      help=f"cost: {', '.join(costs.COSTS)} (default: quadratic for --sizes; for --layers "
                           "log-likelihood after softmax, cross-entropy after sigmoid)")
    arch.add_argument("--init", type=_init,
                      help=f"weight initialiser: {', '.join(initializers.INITIALIZERS)} "
                           "(default: large, the book's chapter 1 N(0, 1), for --sizes; each layer's book "
                           "default for --layers)")
    arch.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                      help="floating-point precision (default: float32, see README)")
    opt = t.add_argument_group("training")
    opt.add_argument("--epochs", type=_positive_int, default=30)
    opt.add_argument("--batch-size", type=_positive_int, default=10, help="mini-batch size m (default: 10)")
    opt.add_argument("--eta", type=_positive_float, default=3.0, help="learning rate (default: 3.0)")
    opt.add_argument("--lmbda", type=_non_negative_float, default=0.0, help="L2 regularisation lambda")
    opt.add_argument("--l1", type=_non_negative_float, default=0.0, help="L1 regularisation lambda")
    opt.add_argument("--momentum", type=_momentum, default=0.0, help="momentum coefficient mu in [0, 1)")
    opt.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling (default: 0)")
    opt.add_argument("--train-size", type=_positive_int, metavar="N",
                     help="train on the first N training images (the book's overfitting runs use 1000)")
    opt.add_argument("--expand", action="store_true",
                     help="train on the book's expanded set: each training image and its four one-pixel "
                          "shifts, shuffled with --seed (250,000 images; 748 MiB as float32)")
    opt.add_argument("--augment", action="store_true",
                     help="augment on the fly: move each mini-batch image by up to --max-shift pixels and "
                          "rotate it by up to --max-degrees degrees, anew every epoch")
    opt.add_argument("--max-shift", type=int, default=2, metavar="PIXELS",
                     help="--augment: largest shift in pixels (default: 2)")
    opt.add_argument("--max-degrees", type=_non_negative_float, default=10.0, metavar="DEGREES",
                     help="--augment: largest rotation in degrees (default: 10)")
    opt.add_argument("--no-fast", dest="fast", action="store_false",
                     help="use the NumPy path even where the compiled kernel applies")
    opt.add_argument("--threads", type=_positive_int, default=1,
                     help="BLAS threads while training (default: 1, fastest for small mini-batches)")
    mon = t.add_argument_group("monitoring and stopping")
    mon.add_argument("--monitor", nargs="+", default=["test"], metavar="SPLIT[:METRICS]",
                     help="what to evaluate after each epoch: training, validation, test, each optionally "
                          "with :accuracy, :cost or :accuracy,cost (default: test = test accuracy); 'none' for nothing")
    mon.add_argument("--early-stopping", type=_positive_int, metavar="N",
                     help="stop after N epochs without improvement in accuracy")
    mon.add_argument("--schedule", type=_positive_int, metavar="N",
                     help="halve eta after N epochs without improvement; stop at eta/128 (book ch. 3)")
    out = t.add_argument_group("output")
    out.add_argument("--save", type=Path, metavar="PATH",
                     help="save the trained network (.npz: nndl format, .json: the book's network2 format)")
    out.add_argument("--history", type=Path, metavar="PATH", help="write per-epoch metrics as JSON")
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy and cost of a saved model")
    e.add_argument("model", type=Path, help="a model saved by nndl (.npz) or in the book's JSON format")
    e.add_argument("--split", choices=("training", "validation", "test"), default="test")
    e.add_argument("--data-dir", type=Path, help=data_help)
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("data", help="where the MNIST files are, and whether they verify")
    d.add_argument("--data-dir", type=Path, help=data_help)
    d.add_argument("--fetch", action="store_true", help="download missing files from the public mirrors")
    d.set_defaults(func=cmd_data)

    b = sub.add_parser("baseline", help="the book's baselines: average darkness, SVM")
    b.add_argument("which", choices=("darkness", "svm"))
    b.add_argument("--data-dir", type=Path, help=data_help)
    b.add_argument("--gamma", choices=("scale", "auto"), default="scale",
                   help="SVM kernel width: today's scikit-learn default 'scale', or the book-era 'auto'")
    b.add_argument("--train-size", type=_positive_int, metavar="N", help="SVM: first N training images")
    b.add_argument("--test-size", type=_positive_int, metavar="N", help="SVM: first N test images")
    b.set_defaults(func=cmd_baseline)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


# -- commands --------------------------------------------------------------------
def _load_data(data_dir, progress: bool):
    from .data import load_mnist

    return load_mnist(data_dir, progress=progress)


def cmd_train(args) -> int:
    from . import callbacks as cb
    from .io import save
    from .optimizers import SGD
    from .regularizers import L1, L2
    from .training import Trainer

    monitor = parse_monitor(args.monitor)
    if (args.early_stopping or args.schedule) and not any("accuracy" in m for m in monitor.values()):
        raise ConfigError("--early-stopping and --schedule watch an accuracy: add e.g. --monitor validation")
    # one seed, two independent streams: initial weights and shuffling
    init_seed, shuffle_seed = np.random.SeedSequence(args.seed).spawn(2)
    net = _build_network(args, np.random.default_rng(init_seed))
    regs = ([L2(args.lmbda)] if args.lmbda else []) + ([L1(args.l1)] if args.l1 else [])
    optimizer = SGD(args.eta, momentum=args.momentum, regularizers=regs)

    augment = None
    if args.augment:
        from .data.augment import random_shift_rotate
        augment = random_shift_rotate(args.max_shift, args.max_degrees)

    splits = _load_data(args.data_dir, args.progress)
    training = splits.training
    if args.train_size:
        if args.train_size > len(training):
            raise ConfigError(f"--train-size {args.train_size} exceeds the {len(training)} training images")
        training = training[:args.train_size]
    if args.expand:
        from .data.augment import expanded_training_set
        training = expanded_training_set(training, seed=args.seed, dtype=args.dtype)
    data = {"training": training, "validation": splits.validation, "test": splits.test}

    callbacks: list = []
    for split, metrics in monitor.items():
        callbacks.append(cb.Evaluation({split: data[split]}, metrics))
    if args.early_stopping:
        callbacks.append(cb.EarlyStopping(args.early_stopping))
    if args.schedule:
        callbacks.append(cb.EtaSchedule(args.schedule))
    if args.progress:
        callbacks.append(cb.ProgressBar(file=sys.stderr))
    callbacks.append(cb.LambdaCallback(lambda epoch, logs: _report_epoch(epoch, logs, data)))

    print(f"Training {_describe(net)} on {len(training)} images, "
          f"{args.epochs} epochs, mini-batch {args.batch_size}, eta {args.eta}"
          + (f", lambda {args.lmbda}" if args.lmbda else "") + (f", L1 {args.l1}" if args.l1 else "")
          + (f", momentum {args.momentum}" if args.momentum else "") + f", seed {args.seed}", flush=True)
    trainer = Trainer(net, optimizer, batch_size=args.batch_size, rng=np.random.default_rng(shuffle_seed),
                      callbacks=callbacks, fast=args.fast, blas_threads=args.threads,
                      augment=augment)
    interrupted = False
    try:
        trainer.fit(training.x, training.y, args.epochs)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nInterrupted: keeping the {trainer.history.epochs} completed epoch(s).", file=sys.stderr)
    if trainer.stop_reason:
        print(f"Stopped early: {trainer.stop_reason}.")
    _summarise(trainer.history)
    if args.history:
        trainer.history.to_json(args.history)
        print(f"History written to {args.history}")
    if args.save:
        save(net, args.save)
        print(f"Network saved to {args.save}")
    return EXIT_INTERRUPTED if interrupted else 0


def _build_network(args, rng):
    from .architecture import default_cost, parse_layers
    from .network import Network

    if args.layers is not None and args.sizes:
        raise ConfigError("give either --sizes or --layers, not both")
    if args.layers is not None:
        layers = parse_layers(args.layers, activation=args.activation, init=args.init,
                              dropout_scale=args.dropout_scale)
        if layers[-1].n_out != 10:
            raise ConfigError(f"--layers ends in {layers[-1].n_out} outputs; MNIST needs 10 (one per digit)")
        return Network(layers, args.cost or default_cost(layers), input_shape=(784,), rng=rng, dtype=args.dtype)
    sizes = list(args.sizes or [784, 30, 10])
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10:
        raise ConfigError(f"--sizes {' '.join(map(str, sizes))} does not fit MNIST: the first size must be "
                          "784 (28x28 pixels) and the last 10 (one neuron per digit)")
    return Network.from_sizes(sizes, activation=args.activation, output_activation=args.output_activation,
                              cost=args.cost or "quadratic", init=args.init or "large", rng=rng,
                              dtype=args.dtype)


def _describe(net) -> str:
    from .layers import Dense

    if not all(isinstance(layer, Dense) for layer in net.layers):
        from .architecture import describe
        return f"{describe(net.layers, net.input_shape)} network ({net.cost.name} cost)"
    sizes = [net.input_shape[0]] + [layer.output_shape[0] for layer in net.layers]
    acts = [layer.activation.name for layer in net.layers]
    act = acts[0] if len(set(acts)) == 1 else "/".join(acts)
    return f"{sizes} {act} network ({net.cost.name} cost)"


def _report_epoch(epoch: int, logs: dict, data: dict) -> None:
    """The book's per-epoch lines: ``Epoch 0: 9129 / 10000`` for test accuracy."""
    if "test_correct" in logs:
        print(f"Epoch {epoch}: {logs['test_correct']} / {len(data['test'])}", flush=True)
    else:
        print(f"Epoch {epoch} complete", flush=True)
    for split in ("training", "validation"):
        if f"{split}_cost" in logs:
            print(f"  Cost on {split} data: {logs[f'{split}_cost']:.6f}")
        if f"{split}_correct" in logs:
            print(f"  Accuracy on {split} data: {logs[f'{split}_correct']} / {len(data[split])}")
    if "test_cost" in logs:
        print(f"  Cost on test data: {logs['test_cost']:.6f}")
    sys.stdout.flush()


def _summarise(history) -> None:
    for key in ("test_accuracy", "validation_accuracy"):
        if key in history and history[key]:
            epoch, best = history.best(key)
            print(f"Best {key.replace('_', ' ')}: {best:.2%} at epoch {epoch}")
    if "validation_accuracy" in history and "test_accuracy" in history and history.epochs:
        # network3's report: the test accuracy of the epoch chosen on validation data
        epoch, _ = history.best("validation_accuracy")
        print(f"Test accuracy at the best validation epoch ({epoch}): {history['test_accuracy'][epoch]:.2%}")
    if history.epochs:
        total = sum(history["epoch_seconds"])
        print(f"Training time: {total:.1f} s ({total / history.epochs:.2f} s per epoch)")


def cmd_evaluate(args) -> int:
    from .io import load

    net = load(args.model)
    if net.input_shape != (784,) and int(np.prod(net.input_shape)) != 784 or net.output_shape != (10,):
        raise ConfigError(f"{args.model} takes inputs {net.input_shape} and gives {net.output_shape[0]} outputs; "
                          "MNIST needs 784 inputs and 10 outputs")
    ds = getattr(_load_data(args.data_dir, True), args.split)
    x = ds.x.reshape((len(ds.x),) + net.input_shape)
    correct = net.accuracy(x, ds.y)
    cost = net.total_cost(x, ds.y)
    print(f"{args.model}: {correct} / {len(ds.y)} correct ({correct / len(ds.y):.2%}) on the {args.split} "
          f"data; mean {net.cost.name} cost {cost:.6f}")
    return 0


def cmd_data(args) -> int:
    from .data import describe, fetch, verify

    if args.fetch:
        fetch(args.data_dir)
    print(describe(args.data_dir))
    statuses = verify(args.data_dir)
    return 0 if all(s.ok for s in statuses) else EXIT_ERROR


def cmd_baseline(args) -> int:
    from .book import baselines

    if args.which == "darkness":
        correct, total = baselines.run_darkness(args.data_dir)
        print("Baseline classifier using average darkness of image.")
    else:
        print("Baseline classifier using an SVM.")
        correct, total = baselines.run_svm(args.data_dir, gamma=args.gamma, n_train=args.train_size,
                                           n_test=args.test_size)
    print(f"{correct} of {total} values correct.")
    return 0


# -- entry point -------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except NNDLError as e:
        print(f"nndl: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nnndl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # e.g. --save into a folder that cannot be written
        where = f": {e.filename}" if e.filename else ""
        print(f"nndl: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
