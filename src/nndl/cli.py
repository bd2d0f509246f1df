"""The ``nndl`` command: the only place that reads argv and prints.

    nndl train [options]        train a network on MNIST (default: the book's chapter 1 network)
    nndl evaluate MODEL         accuracy and cost of a saved model on a split
    nndl data [--fetch]         where the MNIST files are and whether they verify
    nndl baseline darkness|svm  the book's baselines
    nndl experiment list|run|report   the book's experiments, figures and numbers
    nndl plot HISTORY.json ... -o FIG.png   curves of training histories
    nndl mistakes MODEL         the test images a model gets wrong, as a grid and a confusion matrix
    nndl serve [MODEL ...]      a local web page: draw a digit, browse mistakes, training curves
    nndl search --param ...     hyper-parameter search (Optuna), here, on local processes or a Dask cluster

Every user error prints one line ``nndl: error: ...`` and exits non-zero.

Exit codes: 0 done; 1 an error (one line ``nndl: error: ...``); 2 a usage
error; 3 ``nndl train``: the run diverged (the last finite epoch is kept);
128 + the signal's number when a signal ended it after the last complete
epoch: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP (a closed terminal).
Output closed early (``nndl train ... | head -1``) is not an error: the rest
of the output is dropped and the work goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import activations, costs, initializers
from .errors import ConfigError, NNDLError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 128 + signal.SIGINT   # 130; SIGTERM gives 143, SIGHUP 129


# -- argument types: they only read numbers; the rules live in nndl.config ---------
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive_int(text: str) -> int:   # for the commands without a RunConfig
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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

    t = sub.add_parser("train", help="train a network on MNIST", argument_default=argparse.SUPPRESS,
                       description="Train a network on MNIST. With no options: the book's chapter 1 "
                                   "network ([784, 30, 10], sigmoid, quadratic cost, N(0,1) init, "
                                   "30 epochs, mini-batch 10, eta 3.0).")
    t.add_argument("--data-dir", type=Path, default=None, help=data_help)
    t.add_argument("--config-from", type=Path, metavar="JSON", default=None,
                   help="start from the run configuration in a history file written by --history (or a "
                        "config JSON); options given on the command line override it")
    arch = t.add_argument_group("network")
    arch.add_argument("--sizes", type=_int, nargs="+", metavar="N",
                      help="fully connected layer sizes, input first (default: 784 30 10)")
    arch.add_argument("--layers", metavar="SPEC",
                      help="any architecture as a spec, e.g. conv:20:5,pool:2,conv:40:5,pool:2,dense:100,softmax:10 "
                           "(see README; hidden layers use --activation)")
    arch.add_argument("--dropout-scale", metavar="inverted|book",
                      help="dropout layers: scale kept units by 1/(1-p) while training (inverted, the default), "
                           "or the outputs by (1-p) at inference as network3 does (book)")
    arch.add_argument("--activation", help=f"hidden-layer activation: {', '.join(activations.ACTIVATIONS)} "
                                           "(default: sigmoid)")
    arch.add_argument("--output-activation",
                      help="output activation (default: softmax for log-likelihood, else --activation)")
    arch.add_argument("--cost", help=f"cost: {', '.join(costs.COSTS)} (default: quadratic for --sizes; for "
                                     "--layers log-likelihood after softmax, cross-entropy after sigmoid)")
    arch.add_argument("--init", help=f"weight initialiser: {', '.join(initializers.INITIALIZERS)} "
                                     "(default: large, the book's chapter 1 N(0, 1), for --sizes; each layer's "
                                     "book default for --layers); the header line shows the one used")
    arch.add_argument("--dtype", metavar="float32|float64",
                      help="floating-point precision (default: float32, see README)")
    opt = t.add_argument_group("training")
    opt.add_argument("--epochs", type=_int, help="(default: 30)")
    opt.add_argument("--batch-size", type=_int, help="mini-batch size m (default: 10)")
    opt.add_argument("--eta", type=_float, help="learning rate (default: 3.0)")
    opt.add_argument("--lmbda", type=_float, help="L2 regularisation lambda")
    opt.add_argument("--l1", type=_float, help="L1 regularisation lambda")
    opt.add_argument("--momentum", type=_float, help="momentum coefficient mu in [0, 1)")
    opt.add_argument("--seed", type=_int, help="seed for initialisation and shuffling (default: 0)")
    opt.add_argument("--train-size", type=_int, metavar="N",
                     help="train on the first N training images (the book's overfitting runs use 1000)")
    opt.add_argument("--validation-size", type=_int, metavar="N", help="evaluate on the first N validation images")
    opt.add_argument("--test-size", type=_int, metavar="N", help="evaluate on the first N test images")
    opt.add_argument("--expand", action="store_true",
                     help="train on the book's expanded set: each training image and its four one-pixel "
                          "shifts, shuffled with --seed (250,000 images; 748 MiB as float32)")
    opt.add_argument("--augment", action="store_true",
                     help="augment on the fly: move each mini-batch image by up to --max-shift pixels and "
                          "rotate it by up to --max-degrees degrees, anew every epoch")
    opt.add_argument("--max-shift", type=_int, metavar="PIXELS",
                     help="--augment: largest shift in pixels (default: 2)")
    opt.add_argument("--max-degrees", type=_float, metavar="DEGREES",
                     help="--augment: largest rotation in degrees (default: 10)")
    opt.add_argument("--no-fast", dest="fast", action="store_false",
                     help="use the NumPy path even where the compiled kernel applies")
    opt.add_argument("--threads", type=_int,
                     help="threads while training: the conv kernels use up to N, each keeping whichever of "
                          "1 and N threads it measures faster; BLAS uses one (default: 1)")
    mon = t.add_argument_group("monitoring and stopping")
    mon.add_argument("--monitor", nargs="+", metavar="SPLIT[:METRICS]",
                     help="what to evaluate after each epoch: training, validation, test, each optionally "
                          "with :accuracy, :cost or :accuracy,cost (default: test = test accuracy); 'none' for nothing")
    mon.add_argument("--monitor-every", type=_int, metavar="N",
                     help="evaluate only every N epochs and after the last (default: 1)")
    mon.add_argument("--early-stopping", type=_int, metavar="N",
                     help="stop after N epochs without improvement in accuracy")
    mon.add_argument("--schedule", type=_int, metavar="N",
                     help="halve eta after N epochs without improvement; stop at eta/128 (book ch. 3)")
    mon.add_argument("--eta-final", type=_float, metavar="ETA",
                     help="instead: lower eta in a straight line, epoch by epoch, from --eta in the first "
                          "epoch to ETA in the last (a schedule fixed in advance)")
    mon.add_argument("--record-gradients", type=_int, nargs="?", const=0, metavar="N",
                     help="record the norm of dC/db of every layer (ch. 5's speed of learning) after each "
                          "epoch, and also every N mini-batches if N is given; stored in --history")
    out = t.add_argument_group("output")
    out.add_argument("--save", type=Path, metavar="PATH", default=None,
                     help="save the trained network (.npz: nndl format, .json: the book's network2 format)")
    out.add_argument("--history", type=Path, metavar="PATH", default=None,
                     help="write per-epoch metrics and the run configuration as JSON")
    out.add_argument("--save-best", nargs="?", const=True, default=None, metavar="METRIC",
                     help="--save keeps the network of the best epoch by METRIC, e.g. validation_accuracy "
                          "or validation_cost (default: validation accuracy when monitored, else test or "
                          "training accuracy), instead of the last epoch's")
    out.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                     help="after every epoch, save everything needed to continue the run into DIR "
                          "(created if missing; its parent must exist), replacing the previous checkpoint "
                          "atomically; continue a stopped run with --resume DIR")
    out.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the run checkpointed in DIR with its own configuration and outputs; "
                          "the result is the same as if it had never stopped. Only --epochs may change "
                          "(to train on); --save, --history and --checkpoint may name other files")
    out.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                     help="no progress bars")
    t.set_defaults(func=cmd_train)

    x = sub.add_parser("experiment", help="the book's experiments: list, run, report",
                       description="Regenerate the book's experiments: their figures and numbers beside the book's.")
    xsub = x.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    xl = xsub.add_parser("list", help="every experiment, with its chapter and what it shows")
    xl.set_defaults(func=cmd_experiment_list)
    xr = xsub.add_parser("run", help="run experiments (finished runs are cached in --out)")
    xr.add_argument("names", nargs="+", metavar="name",
                    help="experiment names (see nndl experiment list), or all; the runs of several "
                         "experiments go to --jobs/--scheduler workers as one batch")
    xr.add_argument("--quick", action="store_true", help="small data and few epochs: seconds, as CI runs it")
    xr.add_argument("--seeds", type=_positive_int, metavar="K", help="seeds per configuration (default: the experiment's)")
    xr.add_argument("--out", type=Path, default=Path("runs/experiments"), metavar="DIR",
                    help="where runs, results.json and figures go (default: runs/experiments)")
    xr.add_argument("--only", nargs="+", metavar="LABEL", help="run only the runs whose label starts so "
                                                                "(e.g. --only fc conv1 for ch6-ladder)")
    xr.add_argument("--data-dir", type=Path, help=data_help)
    xr.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_cluster_options(xr)
    xr.set_defaults(func=cmd_experiment_run)
    xp = xsub.add_parser("report", help="write DIR/report.md from the experiments run under DIR")
    xp.add_argument("--out", type=Path, default=Path("runs/experiments"), metavar="DIR")
    xp.set_defaults(func=cmd_experiment_report)
    x.set_defaults(func=lambda args: _usage(x))

    p = sub.add_parser("plot", help="plot histories written by nndl train --history",
                       description="Plot per-epoch metrics of one or more histories (overlaid) as a PNG.")
    p.add_argument("histories", type=Path, nargs="+", metavar="HISTORY.json")
    p.add_argument("--metrics", nargs="+", metavar="METRIC",
                   help="e.g. test_accuracy training_cost (default: every accuracy and cost the first history has)")
    p.add_argument("--gradients", action="store_true",
                   help="plot the per-layer speed of learning recorded by --record-gradients instead")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FIG.png")
    p.add_argument("--title")
    p.set_defaults(func=cmd_plot)

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

    _add_mistakes_parser(sub, data_help)
    _add_serve_parser(sub, data_help)
    _add_search_parser(sub, t)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


# -- commands --------------------------------------------------------------------
def _notify(message: str) -> None:
    """Download notices ("downloading ... from ...", a mirror failing), at once."""
    print(f"nndl: {message}", file=sys.stderr, flush=True)


def _load_data(data_dir, progress: bool):
    from .data import load_mnist

    return load_mnist(data_dir, progress=progress, notify=_notify)


#: ``nndl train`` options that are not fields of the run configuration
_NOT_CONFIG = {"command", "func", "data_dir", "config_from", "save", "history", "progress", "save_best",
               "checkpoint", "resume"}


def config_from_args(args):
    """The :class:`~nndl.config.RunConfig` that ``nndl train``'s options describe."""
    from .config import ConfigFieldError, RunConfig

    given = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    base = {}
    if args.config_from is not None:
        base = _read_config(args.config_from)
        if "layers" in given and "sizes" not in given:
            base.pop("sizes", None)
        if "sizes" in given and "layers" not in given:
            base.pop("layers", None)
    try:
        return RunConfig.from_dict({**base, **given})
    except ConfigFieldError as e:
        flag = "--" + e.field.replace("_", "-")
        raise ConfigError(f"{flag}: {e}") from None


def _read_config(path: Path) -> dict:
    """The run configuration stored in a history file (or a config JSON)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"--config-from: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if isinstance(data, dict) and isinstance(data.get("run"), dict) and isinstance(data["run"].get("config"), dict):
        return dict(data["run"]["config"])
    if isinstance(data, dict) and "run" not in data and not any(isinstance(v, list) for v in data.values()
                                                                 if not isinstance(v, str)):
        return data
    raise ConfigError(f"--config-from: {path} holds no run configuration (histories written by "
                      "nndl train --history record theirs)")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _shown(value) -> str:
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return " ".join(map(str, value))
    return str(value)


def _resumed_config(args, state):
    """The checkpoint's run configuration, with the options given now checked
    against it: only --epochs may change (to a total >= the epochs done)."""
    from .config import ConfigFieldError, RunConfig, _checkpoint_config

    if args.config_from is not None:
        raise ConfigError("--config-from and --resume cannot be combined: a resumed run keeps the "
                          "configuration it was started with")
    config = _checkpoint_config(state)
    given = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    if "layers" in given and "sizes" not in given:
        base = {**config.to_dict(), "sizes": None}
    elif "sizes" in given and "layers" not in given:
        base = {**config.to_dict(), "layers": None}
    else:
        base = config.to_dict()
    try:
        asked = RunConfig.from_dict({**base, **given})
    except ConfigFieldError as e:
        raise ConfigError(f"{_flag(e.field)}: {e}") from None
    for name in given:
        for field_name in (("sizes", "layers") if name in ("sizes", "layers") else (name,)):
            if field_name != "epochs" and getattr(asked, field_name) != getattr(config, field_name):
                raise ConfigError(f"{_flag(name)} {_shown(getattr(asked, field_name))} contradicts the run "
                                  f"checkpointed in {args.resume}, whose {field_name} is "
                                  f"{_shown(getattr(config, field_name))}; a resumed run keeps its "
                                  "configuration: only --epochs may change")
    if asked.epochs < state.epoch:
        raise ConfigError(f"--epochs {asked.epochs}: the run checkpointed in {args.resume} has already done "
                          f"{state.epoch} epochs")
    return asked


def _check_output_file(path: Path, option: str, suffixes: Sequence[str] | None = None, *,
                       parents: bool = False) -> Path:
    """Refuse, before any training, an output path that cannot be written
    (:func:`nndl.fileio.check_writable`); the message says which option."""
    from .fileio import check_writable

    return _option_error(option, lambda: check_writable(path, suffixes, what=option, parents=parents))


def _option_error(option: str, check: Callable[[], Path]) -> Path:
    """``check()``, its OutputError as a ConfigError that names ``option``."""
    from .errors import OutputError

    try:
        return check()
    except OutputError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(option) else f"{option}: {message}") from None


def _check_checkpoint_folder(folder: Path, option: str, *, resumed_from: Path | None = None) -> None:
    """A folder --checkpoint can write: creatable or writable, not in use, and
    not holding the checkpoint of another run."""
    from . import checkpoint as ckpt

    folder = Path(folder)
    same = resumed_from is not None and folder.resolve() == Path(resumed_from).resolve()
    if not same and ckpt.exists(folder):
        raise ConfigError(f"{option} {folder} already holds a checkpoint; continue that run with --resume "
                          f"{folder}, or choose another folder")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder}: it is a file; give a folder")
    if folder.is_dir():
        _check_output_file(folder / ckpt.FILENAME, option)
        with ckpt.Lock(folder / ckpt.LOCK_NAME, what=f"{option} {folder}"):
            pass
    else:   # made when training starts: one level, a mistyped path is not created
        parent = folder.parent
        if not parent.is_dir():
            raise ConfigError(f"{option} {folder}: the folder {parent} does not exist")
        _check_output_file(folder / ckpt.FILENAME, option, parents=True)


def _check_outputs(save, history, checkpoint, network, *, resumed_from=None,
                   checkpoint_option: str = "--checkpoint") -> None:
    """Every output path checked before the data is read and training starts."""
    from .io import check_save_path

    if save is not None:
        _option_error("--save", lambda: check_save_path(save, network, what="--save", parents=False))
    if history is not None:
        _check_output_file(history, "--history")
    if save is not None and history is not None and save.resolve() == history.resolve():
        raise ConfigError(f"--save and --history both name {save}; give two files")
    if checkpoint is not None:
        _check_checkpoint_folder(checkpoint, checkpoint_option, resumed_from=resumed_from)


class _SignalsAsInterrupt:
    """While training, SIGTERM and SIGHUP (a closed terminal) end the run the
    way Ctrl-C does: after the last complete epoch, with what was asked saved.
    Afterwards they are only noted, so that the outputs are written whole;
    ``received`` is the last signal's number."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.received: int | None = None
        self.armed = False
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        self.received = signum
        if self.armed:
            raise KeyboardInterrupt

    def __enter__(self) -> "_SignalsAsInterrupt":
        self.armed = True
        for name in self.NAMES:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:   # not the main thread: leave the signals alone
                break
        return self

    def disarm(self) -> None:
        self.armed = False

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "SIGINT"

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)


def cmd_train(args) -> int:
    from . import callbacks as cb
    from . import checkpoint as ckpt
    from .config import best_metric, resume, run

    state = None
    if args.resume is not None:
        state = ckpt.read(args.resume)
        config = _resumed_config(args, state)
        notes = state.run.get("notes") or {}
        stored_best = state.run.get("keep_best")
        given_best = args.save_best
        if given_best is not None:
            want = best_metric(config, given_best)
            if stored_best != want:
                raise ConfigError(f"--save-best {want}: the run checkpointed in {args.resume} "
                                  + (f"kept its best epoch by {stored_best}" if stored_best else
                                     "did not keep its best epoch") + "; a resumed run cannot change that")
        keep_best = stored_best
        save = args.save or (Path(notes["save"]) if notes.get("save") else None)
        history_path = args.history or (Path(notes["history"]) if notes.get("history") else None)
        checkpoint = args.checkpoint or args.resume
    else:
        config = config_from_args(args)
        save, history_path = args.save, args.history
        checkpoint = args.checkpoint
        given_best = args.save_best
        keep_best = None if given_best is None else best_metric(config, given_best)
    if keep_best is not None and save is None:
        raise ConfigError("--save-best chooses which epoch's network --save writes; give --save too")
    network = config.build_network()   # shape errors now, before the data is read
    _check_outputs(save, history_path, checkpoint, network, resumed_from=args.resume,
                   checkpoint_option="--checkpoint" if args.checkpoint else "--resume")
    splits = _load_data(args.data_dir, args.progress)
    n_train = (config.train_size or len(splits.training)) * (5 if config.expand else 1)
    callbacks: list = []
    if args.progress:
        callbacks.append(cb.ProgressBar(file=sys.stderr))
    callbacks.append(cb.EpochPrinter(file=sys.stdout))
    notes = {"save": str(save.absolute()) if save else None,
             "history": str(history_path.absolute()) if history_path else None}
    with _SignalsAsInterrupt() as signals:
        if state is None:
            print(f"Training {config.describe()}; {n_train} training images", flush=True)
        else:
            print(f"Resuming {config.describe()} from {args.resume} after epoch {state.epoch - 1}; "
                  f"{n_train} training images", flush=True)
        try:
            if state is None:
                result = run(config, data=splits, callbacks=callbacks, checkpoint=checkpoint,
                             keep_best=keep_best, notes=notes)
            else:
                result = resume(state, epochs=config.epochs, data=splits, callbacks=callbacks,
                                checkpoint=checkpoint, notes=notes)
        except KeyboardInterrupt:   # before training began (e.g. while expanding the data)
            result = None
        signals.disarm()   # from here on a signal waits until the outputs are written
        if result is None or (result.interrupted and not result.history.epochs):
            kept = [f"{opt} {path}" for opt, path in (("--save", save), ("--history", history_path)) if path]
            print(f"\nInterrupted ({signals.name}) before an epoch was completed: nothing written"
                  + (f" ({' and '.join(kept)} left as they were)" if kept else "") + ".", file=sys.stderr)
            return signals.exit_code
        complete = state is not None and (state.epoch >= config.epochs or state.state.get("stopped"))
        if complete:
            print(f"The run in {args.resume} is complete ({state.epoch} epochs"
                  + (f"; {result.stop_reason})." if result.stop_reason else
                     "); give a larger --epochs to train on."))
        if result.interrupted:
            print(f"\nInterrupted ({signals.name}): keeping the {result.history.epochs} completed epoch(s).",
                  file=sys.stderr)
        elif result.stop_reason and not result.diverged and not complete:
            print(f"Stopped early: {result.stop_reason}.")
        _summarise(result.history)
        _write_outputs(result, save, history_path, checkpoint)
    if result.diverged:
        print(f"nndl: error: {result.stop_reason}", file=sys.stderr)
        return EXIT_DIVERGED
    return signals.exit_code if result.interrupted or signals.received else 0


def _write_outputs(result, save: Path | None, history_path: Path | None, checkpoint: Path | None) -> None:
    """--save and --history, both or neither, and never from different runs:
    they are written while holding a lock on their folders, so that two
    trainings naming the same files leave the pair of one of them."""
    from . import checkpoint as ckpt
    from .io import save as save_network

    epochs = result.history.epochs
    folders = sorted({str(p.parent.resolve()) for p in (save, history_path) if p is not None})
    with contextlib.ExitStack() as locks:
        for folder in folders:
            locks.enter_context(ckpt.Lock(folder, what=f"output folder {folder}", wait=True))
        if save is not None:
            if epochs == 0:
                print(f"Network not saved to {save}: the run diverged before completing an epoch.")
            else:
                best = result.best
                if best is not None and best.epoch is not None:
                    best.restore(result.network)
                    value = f"{best.value:.2%}" if best.monitor.endswith("_accuracy") else f"{best.value:.6g}"
                    which = f"epoch {best.epoch}, the best {best.monitor.replace('_', ' ')}: {value}"
                else:
                    which = f"epoch {epochs - 1}, the last completed"
                save_network(result.network, save)
                print(f"Network saved to {save} ({which})")
        if history_path is not None:
            result.history.to_json(history_path)
            print(f"History written to {history_path}")
    if checkpoint is not None and epochs:
        print(f"Checkpoint in {checkpoint} (epoch {epochs - 1}); continue with nndl train --resume {checkpoint}"
              if result.interrupted or result.diverged else f"Checkpoint in {checkpoint} (epoch {epochs - 1})")


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


def _usage(parser) -> int:
    parser.print_help()
    return EXIT_USAGE


def cmd_experiment_list(args) -> int:
    from .experiments import EXPERIMENTS

    width = max(map(len, EXPERIMENTS))
    for name, exp in EXPERIMENTS.items():
        print(f"{name:<{width}}  ch. {exp.chapter}  {exp.description}")
    return 0


def cmd_experiment_run(args) -> int:
    from tqdm import tqdm

    from . import experiments

    names = experiments.names() if args.names == ["all"] else list(dict.fromkeys(args.names))
    exps = [experiments.get(name) for name in names]
    if args.only and len(exps) > 1:
        raise ConfigError("--only selects runs of one experiment; name a single experiment with it")
    experiments.check_out_dir(args.out)   # before any training
    total = sum(len(exp.jobs(args.quick, args.seeds)) for exp in exps)
    bar = tqdm(total=total, desc=names[0] if len(exps) == 1 else f"{len(exps)} experiments", unit="run",
               file=sys.stderr, disable=None if args.progress else True, leave=False)
    prefix = f"{names[0]}: " if len(exps) == 1 else ""

    def report(label, result, cached):
        bar.update(1)
        if result.get("failed"):
            bar.write(f"{prefix}{label} FAILED: {result['failed']}", file=sys.stdout)
            return
        how = "cached" if cached else f"{result.get('wall_seconds', 0):.1f} s"
        bar.write(f"{prefix}{label} ({how})", file=sys.stdout)

    cluster = _open_cluster(args)   # --jobs / --scheduler; None: one run after the other here
    where = (" (quick)" if args.quick else "") + (f"; on {cluster.describe()}" if cluster else "")
    if len(exps) == 1:
        print(f"Experiment {exps[0].name} (chapter {exps[0].chapter}): {exps[0].description}; {total} runs{where}",
              flush=True)
    else:
        print(f"Experiments {', '.join(names)}: {total} runs{where}", flush=True)
    try:
        results = experiments.run_experiments(exps, args.out, quick=args.quick, seeds=args.seeds,
                                              data_dir=args.data_dir, only=args.only, on_result=report,
                                              executor=cluster.run_jobs if cluster else None)
    finally:
        if cluster:
            cluster.close()
    bar.close()
    ok = True
    for res in results:
        if len(results) > 1:
            print(f"{res.experiment.name}:")
        for row in res.rows:
            ours = ", ".join(f"{v:.2f}" for v in row.ours)
            unit = "%" if row.unit == "%" else ""
            print(f"  {row.quantity}: book {row.book:g}{unit}, nndl {ours}{unit}"
                  f" -> {'within' if row.within else 'OUTSIDE'} the band")
        for c in res.checks:
            print(f"  [{'ok' if c.passed else 'FAILED'}] {c.claim}: {c.detail}")
        took = f", in {res.seconds:.1f} s" if len(results) == 1 else ""   # several: one batch, timed below
        print(f"{'  ' if len(results) > 1 else ''}{len(res.trained)} run(s) trained, {len(res.cached)} cached"
              + (f", {len(res.failed)} FAILED" if res.failed else "") + f"{took}; results in {res.folder}")
        for label, why in res.failed.items():
            print(f"  failed: {label}: {why} (it runs again next time)")
        ok = ok and all(c.passed for c in res.checks) and not res.failed
    if len(results) > 1:
        print(f"{sum(len(r.trained) for r in results)} run(s) trained in one batch, in {results[0].seconds:.1f} s")
    return 0 if ok else EXIT_ERROR


def cmd_experiment_report(args) -> int:
    from .experiments import write_report

    path = write_report(args.out)
    print(f"Report written to {path}")
    return 0


def cmd_plot(args) -> int:
    from .history import History
    from .plots import plot_gradient_speed, plot_metrics, save_figure

    histories = {}
    for path in args.histories:
        label = path.stem
        while label in histories:
            label += "'"
        histories[label] = History.from_json(path)
    if args.output.suffix.lower() != ".png":
        raise ConfigError(f"-o {args.output}: the figure is written as PNG; give a .png name")
    if args.gradients:
        fig = plot_gradient_speed(next(iter(histories.values())), title=args.title)
    else:
        first = next(iter(histories.values()))
        metrics = args.metrics or [k for k in ("training_cost", "validation_cost", "test_cost", "training_accuracy",
                                               "validation_accuracy", "test_accuracy") if k in first]
        if not metrics:
            raise ConfigError(f"{args.histories[0]} has no per-epoch accuracy or cost to plot")
        fig = plot_metrics(histories if len(histories) > 1 else first, metrics, title=args.title)
    save_figure(fig, args.output)
    print(f"Figure written to {args.output}")
    return 0


def cmd_evaluate(args) -> int:
    from .io import load
    from .predictions import check_mnist_network

    net = load(args.model)
    check_mnist_network(net, str(args.model))
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
        fetch(args.data_dir, notify=_notify)
    print(describe(args.data_dir))
    statuses = verify(args.data_dir)
    return 0 if all(s.ok for s in statuses) else EXIT_ERROR


def cmd_baseline(args) -> int:
    from .book import baselines

    if args.which == "darkness":
        correct, total = baselines.run_darkness(args.data_dir)
        print("Baseline classifier using average darkness of image.")
    else:
        correct, total = baselines.run_svm(args.data_dir, gamma=args.gamma, n_train=args.train_size,
                                           n_test=args.test_size,
                                           on_fit=lambda: print("Baseline classifier using an SVM.",
                                                                flush=True))
    print(f"{correct} of {total} values correct.")
    return 0


# -- nndl mistakes -------------------------------------------------------------------
def _digit(text: str) -> int:
    if text not in tuple("0123456789"):
        raise argparse.ArgumentTypeError(f"expected a digit 0-9, got {text!r}")
    return int(text)


def _add_mistakes_parser(sub, data_help: str) -> None:
    m = sub.add_parser("mistakes", help="the images a model misclassifies, as a grid and a confusion matrix",
                       description="Find the images of a split that a saved model misclassifies; print how "
                                   "many and the confusion matrix, and draw them as a grid captioned "
                                   "'true -> predicted, confidence'.")
    m.add_argument("model", type=Path, help="a model saved by nndl (.npz) or in the book's JSON format")
    m.add_argument("-o", "--output", type=Path, metavar="GRID.png",
                   help="draw the misclassified images into this image file (.png, .svg, .pdf, ...)")
    m.add_argument("--confusion", type=Path, metavar="CM.png", help="draw the confusion matrix into this file")
    m.add_argument("--split", choices=("training", "validation", "test"), default="test")
    m.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                   help="draw at most the first N mistakes (default: 100)")
    m.add_argument("--true", type=_digit, metavar="D", help="only mistakes whose true digit is D")
    m.add_argument("--predicted", type=_digit, metavar="D", help="only mistakes where the model answered D")
    m.add_argument("--columns", type=_positive_int, default=10, metavar="N", help="images per row (default: 10)")
    m.add_argument("--data-dir", type=Path, help=data_help)
    m.set_defaults(func=cmd_mistakes)


def _check_figure_path(path: Path | None, option: str) -> None:
    from matplotlib.figure import Figure

    if path is None:
        return
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ConfigError(f"{option} {path}: cannot tell the image format from the name; "
                          f"end it in one of {', '.join('.' + f for f in sorted(formats))}")


def _save_figure(fig, path: Path) -> None:
    """Render first, then write atomically: a failed render leaves no file."""
    import io

    from .fileio import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lower().lstrip("."), dpi=100)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def cmd_mistakes(args) -> int:
    from .io import load
    from .plots import confusion_matrix_figure, mistakes_figure
    from .predictions import check_mnist_network, find_mistakes

    _check_figure_path(args.output, "-o")
    _check_figure_path(args.confusion, "--confusion")
    net = load(args.model)
    check_mnist_network(net, str(args.model))
    ds = getattr(_load_data(args.data_dir, True), args.split)
    m = find_mistakes(net, ds.x, ds.y)
    print(f"{args.model}: {len(m)} of {m.total} {args.split} images misclassified "
          f"({m.correct} / {m.total} correct, {m.correct / m.total:.2%})")
    print("Confusion matrix (rows: true digit, columns: predicted digit):")
    print("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(m.confusion):
        print(f"{d:>5}" + "".join(f"{v:>6}" for v in row))
    if args.output:
        fig = mistakes_figure(m, ds.x, limit=args.limit, ncols=args.columns, true=args.true,
                              predicted=args.predicted)
        _save_figure(fig, args.output)
        shown = min(args.limit, len(m.select(args.true, args.predicted)))
        print(f"{shown} misclassified image(s) drawn in {args.output}")
    if args.confusion:
        _save_figure(confusion_matrix_figure(m.confusion, title=f"{args.model.name} on the {args.split} data: "
                                             f"{m.correct} / {m.total} correct"), args.confusion)
        print(f"Confusion matrix drawn in {args.confusion}")
    return 0


# -- nndl serve ----------------------------------------------------------------------
def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535 (0: any free port), got {text!r}")
    return value


def _add_serve_parser(sub, data_help: str) -> None:
    s = sub.add_parser("serve", help="a local web page: draw a digit, browse mistakes, see training curves",
                       description="Serve a web page on this machine: draw a digit and see the MNIST "
                                   "preprocessing and each model's probabilities; browse the test images "
                                   "a model gets wrong with its confusion matrix; compare training curves.")
    s.add_argument("models", type=Path, nargs="*", metavar="MODEL",
                   help="models saved by nndl (.npz) or in the book's JSON format")
    s.add_argument("--history", type=Path, nargs="+", default=[], metavar="H.json",
                   help="training histories (nndl train --history) for the Curves view")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=_port, default=8000, help="port (default: 8000; 0 picks a free one)")
    s.add_argument("--data-dir", type=Path, help=data_help)
    s.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    import ipaddress

    from .serve import bind, create_app, load_store, run

    swallowed = [str(p) for p in args.history if p.suffix.lower() == ".npz"]
    if swallowed:  # "--history h.json net.npz" reads net.npz as a history
        raise ConfigError(f"--history takes training histories (JSON), not {', '.join(swallowed)}; "
                          "name the models before --history")
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host} port {args.port}: {e.strerror or e}") from None
    with sock:
        store = load_store(args.models, args.history, data_dir=args.data_dir, progress=True)
        host, port = sock.getsockname()[:2]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            print(f"nndl serve: warning: listening on {host}: other machines that can reach it can use the page",
                  file=sys.stderr)
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        print(f"Serving {len(store.models)} model(s) and {len(store.histories)} history file(s) at {url} "
              "(Ctrl-C to stop)", flush=True)
        # asked for by another name, a loopback-only server refuses (no DNS rebinding)
        names = ["127.0.0.1", "localhost"] if host == "127.0.0.1" else None
        try:
            run(create_app(store, allowed_hosts=names), sock)
        except KeyboardInterrupt:  # uvicorn has shut down cleanly, then passes Ctrl-C on
            pass
    print("Stopped.")
    return 0


def _compile_notice():
    """Say so before numba compiles the kernels (seconds, once: later runs load them from disk)."""
    from .kernels import on_compile

    return on_compile(lambda: print("compiling kernels (first run only)...", file=sys.stderr, flush=True))


# -- parallel runs and nndl search ------------------------------------------------------------
def _add_cluster_options(p) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_positive_int, metavar="N",
                       help="run N trainings at a time in local worker processes, one BLAS thread each "
                            f'(needs {_EXTRA})')
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the trainings on the Dask cluster whose scheduler is at ADDRESS, e.g. "
                            "tcp://10.0.0.1:8786 (started with `dask scheduler` and `dask worker ADDRESS`; each "
                            f"worker reads MNIST from its own NNDL_DATA or cache; needs {_EXTRA})")


_EXTRA = 'pip install "nndl[cluster]"'


def _open_cluster(args):
    """A connected :class:`nndl.parallel.cluster.Cluster` for ``--jobs N``
    (N > 1) or ``--scheduler``, its workers checked; None to run here."""
    if args.scheduler is None and (args.jobs is None or args.jobs == 1):
        return None
    from .parallel import connect

    cluster = connect(jobs=None if args.scheduler else args.jobs, scheduler=args.scheduler)
    try:
        cluster.check_workers(args.data_dir)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _copy_run_options(train, target) -> None:
    """Give ``target`` the options of ``nndl train`` that make a RunConfig
    (and --data-dir, --config-from), grouped as there."""
    import copy
    from dataclasses import fields

    from .config import RunConfig

    wanted = {f.name for f in fields(RunConfig)} | {"data_dir", "config_from"}
    for group in train._action_groups:   # argparse's own `parents=` copies them this way
        actions = [a for a in group._group_actions if a.dest in wanted]
        if actions:
            copied = target.add_argument_group(group.title if group.title not in ("options", "optional arguments")
                                               else "run")
            for action in actions:
                copied._add_action(copy.copy(action))


def _add_search_parser(sub, train) -> None:
    from .parallel.search import SYNTAX

    s = sub.add_parser(
        "search", help="search hyper-parameters with Optuna, maximising the validation accuracy",
        description="Search hyper-parameters with Optuna: the nndl train options fix the rest of the run, "
                    "--param says what varies. Each trial trains on the training data and is scored by its "
                    "validation accuracy after the last epoch (the test data are never used to choose); "
                    "unpromising trials are pruned from their per-epoch validation accuracy. The study is "
                    "stored (--storage), so running the same command again resumes it. At the end: the best "
                    "configuration as an nndl train command, its test accuracy retrained once, and figures.")
    _copy_run_options(train, s)
    g = s.add_argument_group("search")
    g.add_argument("--param", action="append", default=[], metavar="NAME=SPEC", help=f"a value to search: {SYNTAX}")
    g.add_argument("--space", type=Path, metavar="FILE", help="more --param specs, one per line (# comments)")
    g.add_argument("--trials", type=_positive_int, metavar="N",
                   help="stop when the study holds N finished trials (a resumed search runs the rest)")
    g.add_argument("--timeout", type=_float, metavar="SECONDS", help="start no trial after SECONDS")
    g.add_argument("--out", type=Path, default=Path("runs/search"), metavar="DIR",
                   help="where the study (by default), best.json and the figures go (default: runs/search)")
    g.add_argument("--storage", metavar="FILE|URL",
                   help="Optuna storage: a journal file, or an RDB URL such as sqlite:///study.db or "
                        "postgresql://user@host/db that several machines can share (default: DIR/study.journal)")
    g.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: one per options)")
    g.add_argument("--sampler-seed", type=_int, default=0, metavar="N", help="seed of the TPE sampler (default: 0)")
    g.add_argument("--no-prune", dest="prune", action="store_false", help="train every trial to its last epoch")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_cluster_options(g)
    s.set_defaults(func=cmd_search)


def config_to_argv(config) -> list[str]:
    """The ``nndl train`` options that make ``config``: those that differ
    from ``RunConfig()``, floats written exactly."""
    from dataclasses import fields

    from .config import RunConfig

    default = RunConfig()
    argv: list[str] = []
    for f in fields(RunConfig):
        value, flag = getattr(config, f.name), "--" + f.name.replace("_", "-")
        if value is None or value == getattr(default, f.name):
            continue
        if f.name == "fast":
            argv.append("--no-fast")
        elif isinstance(value, bool):
            argv.append(flag)
        elif f.name == "monitor":
            argv += [flag] + ([s if m == ("accuracy",) else f"{s}:{','.join(m)}" for s, m in value] or ["none"])
        elif f.name == "sizes":
            argv += [flag] + [str(n) for n in value]
        elif f.name == "record_gradients" and value == 0:
            argv.append(flag)
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


def cmd_search(args) -> int:
    import json
    import logging
    import re
    import shlex

    from tqdm import tqdm

    from .experiments import check_out_dir, execute
    from .fileio import atomic_write_text
    from .parallel import require, search as S

    # everything that can be checked is checked before any training
    require("nndl search", "optuna")
    run_args = argparse.Namespace(**{k: v for k, v in vars(args).items()
                                     if k not in ("param", "space", "trials", "timeout", "out", "storage", "study",
                                                  "sampler_seed", "prune", "progress", "jobs", "scheduler")})
    base = config_from_args(run_args)
    space = S.Space.parse(list(args.param) + (S.read_space_file(args.space) if args.space else []))
    space.check(S.trial_base(base))
    if args.trials is None and args.timeout is None:
        raise ConfigError("give a trial budget (--trials N), a time budget (--timeout SECONDS), or both")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    storage_spec = S.parse_storage(args.storage, args.out)
    check_out_dir(args.out)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = S.open_study(S.open_storage(storage_spec), args.study, base, space, seed=args.sampler_seed,
                         prune=args.prune)
    cluster = _open_cluster(args)
    try:
        data = None if cluster else _load_data(args.data_dir, args.progress)
        had = len(S.finished_trials(study))
        where = cluster.describe() if cluster else "this process, one trial at a time"
        fixed = S.trial_base(base).describe()
        for name, label in (("eta", "eta"), ("lmbda", "lambda"), ("l1", "L1"), ("momentum", "momentum")):
            if any(p.name == name for p in space.params):   # the base's value is not what trials use
                fixed = re.sub(rf", {label} [^,;]+", "", fixed)
        print(f"Searching {', '.join(p.spec for p in space.params)} for {fixed}; "
              f"maximising the validation accuracy after the last epoch; on {where}", flush=True)
        print(f"Study {study.study_name} in {storage_spec[1]}"
              + (f": resuming, {had} finished trial(s) already" if had else ""), flush=True)
        orphans = S.requeue_orphans(study)
        if orphans:
            print(f"Trial(s) {', '.join(map(str, orphans))} were left running by a search that was killed: "
                  "marked failed, and their parameters run again first", flush=True)
        left = max(args.trials - had, 0) if args.trials else None
        bar = tqdm(total=left, desc="search", unit="trial", file=sys.stderr, leave=False,
                   disable=None if args.progress else True)

        def on_trial(o) -> None:
            bar.update(1)
            params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in o.params.items())
            if o.state == "complete":
                what = f"validation accuracy {o.value:.2%} ({o.epochs} epochs, {o.wall_seconds:.1f} s)"
            elif o.state == "pruned":
                what = f"pruned after {o.epochs} epoch(s) at {o.value:.2%}"
            else:
                what = f"{o.state.upper()}: {o.reason}"
            bar.write(f"trial {o.number}: {params} -> {what}", file=sys.stdout)

        try:
            summary = S.search(study, base, space, trials=args.trials, timeout=args.timeout, cluster=cluster,
                               data=data, data_dir=args.data_dir, on_trial=on_trial)
        except KeyboardInterrupt:
            bar.close()
            print(f"\nInterrupted: {len(S.finished_trials(study))} finished trial(s) are kept in {storage_spec[1]}; "
                  "run the same command again to resume.", file=sys.stderr)
            return EXIT_INTERRUPTED
        bar.close()
        total = len(S.finished_trials(study))
        print(f"{len(summary.outcomes)} trial(s) in {summary.seconds:.1f} s: {summary.count('complete')} complete, "
              f"{summary.count('pruned')} pruned, {summary.count('failed')} FAILED; the study holds {total}")
        for o in summary.failed:
            print(f"  failed: trial {o.number}: {o.reason}")

        config = S.best_config(study, base, space)   # NNDLError if no trial completed
        best = study.best_trial
        command = shlex.join(["nndl", "train"] + config_to_argv(config))
        print(f"Best: trial {best.number}, validation accuracy {best.value:.2%} with "
              + ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
        print(f"  {command}")
        if cluster:
            (_, result), = cluster.run_jobs({"best": config}, data_dir=args.data_dir)
        else:
            try:
                result = execute(config, data=data)
            except (NNDLError, FloatingPointError) as e:
                result = {"failed": f"{type(e).__name__}: {e}"}
        if result.get("failed"):
            print(f"Retraining it failed: {result['failed']}")
            test = None
        else:
            h = result["history"]
            test, val = h["test_accuracy"][-1], h["validation_accuracy"][-1]
            print(f"Retrained once: test accuracy {test:.2%} (validation accuracy {val:.2%})")
        atomic_write_text(args.out / "best.json", json.dumps(
            {"study": study.study_name, "trial": best.number, "validation_accuracy": best.value,
             "test_accuracy": test, "params": best.params, "config": config.to_dict(), "command": command},
            indent=1) + "\n")
        figures = S.write_study_figures(study, args.out)
        print(f"Best configuration in {args.out / 'best.json'}; figures: {', '.join(str(p) for p in figures)}")
    finally:
        if cluster:
            cluster.close()
    return 0


# -- entry point -------------------------------------------------------------------
class _DropWhenClosed:
    """stdout/stderr that let the program go on when the reader has gone
    (``nndl train ... | head -1``): the first broken-pipe error points the
    stream at the null device, and what follows is silently dropped."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _closed(self) -> None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass   # no file descriptor (a captured stream): writes keep failing, quietly

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._closed()
            return len(text)
        except OSError as e:
            if e.errno != errno.EPIPE:
                raise
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()
        except OSError as e:
            if e.errno != errno.EPIPE:
                raise
            self._closed()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _DropWhenClosed(out), _DropWhenClosed(err)
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()   # what is still buffered, while a closed reader is still forgiven
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command in ("train", "evaluate", "experiment", "mistakes", "serve"):   # they run networks
            with _compile_notice():
                return args.func(args)
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
