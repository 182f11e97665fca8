"""Training speed of cnnlab's NumPy LeNet5 next to the same network in PyTorch (CPU, eager).

    .venv/bin/python benchmarks/bench_lenet_speed.py [--repeats 7] [--steps 20] [--quick]
        [--threads 1 2] [--table-only]

One training step = forward + backward + SGD update (momentum 0.9, weight decay),
float32, on random uint8 images of MNIST's shape with random labels, for three
steppers: the readable LeNet5 (the exercises' tape), :class:`cnnlab.lenet_fast.FastLeNet5`
(the same network with a training step built for speed, same weights) and PyTorch.
For every cell (batch 64 / 256, 1 / 2 BLAS threads, pinned with threadpoolctl and
``torch.set_num_threads``) the three measurements alternate, so that a change of the
machine's load hits all of them; each number is the median over ``--repeats``
blocks of ``--steps`` steps, printed as seconds per 60,000-image epoch with the
ratios NumPy / PyTorch. Goals (issue 15), for the fast step: <= 1.0 with 1
thread, <= 1.25 with 2 threads; PASS/FAIL is printed per cell. For every cell it
also prints the load average and the CPU time that *other* processes used during
the measurement (from /proc/stat, in cores): on a shared 2-core machine a busy
neighbour slows 2-thread runs a lot and 1-thread runs hardly at all.

Then the peak memory (RSS) of one full epoch at batch 256 of each NumPy step
(the fast one with each thread count of the table), measured in a fresh process
(goal for the fast step: <= 164 MiB, 20% above the readable step's 137 MiB);
and, unless ``--table-only``: the lecture's variant (20/50 filters, 500 hidden
units, 28x28 input, batch 500 as in the lecture's run) and a per-layer profile
of the readable NumPy step (where the time goes).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnlab import lenet as lenet_module  # noqa: E402
from cnnlab.lenet import LeNet5  # noqa: E402
from cnnlab.lenet_fast import FastLeNet5  # noqa: E402
from cnnlab.optim import SGD  # noqa: E402

EPOCH = 60_000
#: Goals of issue 15 for the fast step: NumPy / PyTorch per thread count; peak epoch RSS.
RATIO_GOALS = {1: 1.0, 2: 1.25}
MEMORY_GOAL_MIB = 164
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- load readings


def _proc_stat():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def _own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoadMeter:
    """Measures, over a ``with`` block, the CPU (in cores) used by other processes."""

    def __enter__(self):
        self.stat, self.own, self.wall = _proc_stat(), _own_cpu(), time.perf_counter()
        self.loadavg = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall
        stat = _proc_stat()
        own = _own_cpu() - self.own
        if self.stat is None or stat is None or wall <= 0:
            self.foreign = self.steal = float("nan")
        else:
            self.foreign = max(0.0, (stat[0] - self.stat[0]) - own) / wall
            self.steal = (stat[1] - self.stat[1]) / wall
        self.loadavg_after = os.getloadavg()[0]
        return False

    def describe(self):
        return (f"load {self.loadavg:.2f}->{self.loadavg_after:.2f}, "
                f"foreign CPU {self.foreign:.2f} cores (steal {self.steal:.2f})")


# -------------------------------------------------------------------- the steps


def numpy_stepper(batch, lecture=False, seed=0, fast=False):
    cls = FastLeNet5 if fast else LeNet5
    model = cls.lecture_variant(seed=seed) if lecture else cls(seed=seed)
    optimizer = SGD(model.params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, batch)

    def step():
        _, grads = model.loss(x, y)
        optimizer.step(grads)

    return step


def torch_stepper(batch, lecture=False, seed=0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if lecture:  # 28x28 input, no padding: 24 -> 12 -> 8 -> 4
        net = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
        padding = 0
    else:  # 28x28 zero-padded to 32x32, like cnnlab's LeNet5
        net = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))
        padding = 2
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)

    def step():
        inputs = (x.float() / 255 - 0.1307) / 0.3081
        if padding:
            inputs = nn.functional.pad(inputs, (padding,) * 4, value=-0.1307 / 0.3081)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(inputs), y)
        loss.backward()
        optimizer.step()

    return step


def time_block(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def compare(batch, threads, repeats, steps, lecture=False):
    """Median seconds per step of the readable NumPy step, the fast one and PyTorch,
    measured alternately: ``(readable, fast, torch, meter)``."""
    import torch

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        steppers = [numpy_stepper(batch, lecture), numpy_stepper(batch, lecture, fast=True),
                    torch_stepper(batch, lecture)]
        for _ in range(3):  # warm up (allocators, buffers, oneDNN kernels, caches)
            for step in steppers:
                step()
        times = [[] for _ in steppers]
        with LoadMeter() as meter:
            for _ in range(repeats):
                for step, measured in zip(steppers, times):
                    measured.append(time_block(step, steps))
    return (*(statistics.median(t) for t in times), meter)


# ---------------------------------------------------------------------- profile


PROFILED = ["conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
            "relu_forward", "relu_backward", "linear_forward", "linear_backward",
            "flatten_forward", "flatten_backward", "softmax_cross_entropy"]


def profile(batch, threads, steps):
    """Seconds per step spent in each layer function (and per conv layer) of a NumPy step."""
    totals = {}
    originals = {name: getattr(lenet_module, name) for name in PROFILED}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            key = name
            if name.startswith("conv2d"):  # tell C1 from C3 by the number of channels
                w = args[1] if name == "conv2d_forward" else args[1]["w"]
                key = f"{name} ({'C1' if w.shape[1] == 1 else 'C3'})"
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
            return result
        return wrapper

    saved = (dict(lenet_module.ACTIVATIONS), dict(lenet_module.POOLINGS))
    try:
        for name, function in originals.items():
            setattr(lenet_module, name, timed(name, function))
        lenet_module.ACTIVATIONS["relu"] = (lenet_module.relu_forward,
                                            lenet_module.relu_backward)
        lenet_module.POOLINGS["max"] = (lenet_module.max_pool2d_forward,
                                        lenet_module.max_pool2d_backward)
        with threadpool_limits(limits=threads):
            model = LeNet5(seed=0)
            optimizer = SGD(model.params, lr=0.01, momentum=0.9, weight_decay=5e-4)
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, (batch, 28, 28), dtype=np.uint8)
            y = rng.integers(0, 10, batch)
            for _ in range(3):
                optimizer.step(model.loss(x, y)[1])
            totals.clear()
            sgd = 0.0
            start = time.perf_counter()
            for _ in range(steps):
                _, grads = model.loss(x, y)
                t = time.perf_counter()
                optimizer.step(grads)
                sgd += time.perf_counter() - t
            total = (time.perf_counter() - start) / steps
    finally:
        for name, function in originals.items():
            setattr(lenet_module, name, function)
        lenet_module.ACTIVATIONS.update(saved[0])
        lenet_module.POOLINGS.update(saved[1])
    per_step = {key: value / steps for key, value in totals.items()}
    per_step["SGD step"] = sgd / steps
    per_step["other (prepare, glue)"] = total - sum(per_step.values())
    return total, per_step


# ------------------------------------------------------------------- memory


def epoch_child(batch, fast=False, threads=1):
    """Run one 60,000-image epoch; print JSON with the RSS before and at the peak."""
    with threadpool_limits(limits=threads):
        rng = np.random.default_rng(0)
        images = np.empty((EPOCH, 28, 28), np.uint8)
        for i in range(0, EPOCH, 1000):  # in chunks: no big temporary to inflate the peak
            images[i:i + 1000] = rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, EPOCH)
        model = (FastLeNet5 if fast else LeNet5)(seed=0)
        optimizer = SGD(model.params, lr=0.01, momentum=0.9, weight_decay=5e-4)
        before = _rss_kib("VmRSS")
        start = time.perf_counter()
        for i in range(0, EPOCH, batch):
            optimizer.step(model.loss(images[i:i + batch], labels[i:i + batch])[1])
        seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    print(json.dumps({"rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024,
                      "seconds": seconds}))


def _rss_kib(field):
    """VmRSS (now) or VmHWM (peak) of this process in KiB, from /proc/self/status.

    (Not ``getrusage``'s ``ru_maxrss``: Linux keeps it across ``execve``, so a child
    started by a big parent reports the parent's peak.)
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(batch, fast=False, threads=1):
    command = [sys.executable, __file__, "--epoch-child", str(batch),
               "--epoch-threads", str(threads)]
    completed = subprocess.run(command + (["--fast"] if fast else []),
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


# ------------------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="blocks per measurement")
    parser.add_argument("--steps", type=int, default=20, help="steps per block")
    parser.add_argument("--quick", action="store_true", help="3 blocks of 5 steps")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], choices=[1, 2],
                        help="thread counts of the table (default: 1 2)")
    parser.add_argument("--table-only", action="store_true",
                        help="the table and the memory only: no lecture variant, no profile")
    parser.add_argument("--epoch-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epoch-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch_child:
        epoch_child(args.epoch_child, args.fast, args.epoch_threads)
        return 0
    if args.quick:
        args.repeats, args.steps = 3, 5
    import torch

    print(f"NumPy {np.__version__}, PyTorch {torch.__version__}, {os.cpu_count()} CPUs; "
          f"median of {args.repeats} blocks of {args.steps} steps; seconds per "
          f"{EPOCH:,}-image epoch; readable: LeNet5, fast: FastLeNet5", flush=True)
    print(f"{'batch':>5} {'threads':>7} {'readable':>8} {'fast':>6} {'PyTorch':>7} "
          f"{'readable/PT':>11} {'fast/PT':>7} {'goal':>6}  machine during the measurement")
    failures = 0
    for threads in args.threads:
        for batch in (64, 256):
            readable, fast, theirs, meter = compare(batch, threads, args.repeats, args.steps)
            ratio, goal = fast / theirs, RATIO_GOALS[threads]
            verdict = "PASS" if ratio <= goal else "FAIL"
            failures += verdict == "FAIL"
            per_epoch = EPOCH / batch
            print(f"{batch:>5} {threads:>7} {readable * per_epoch:8.2f} {fast * per_epoch:6.2f} "
                  f"{theirs * per_epoch:7.2f} {readable / theirs:11.2f} {ratio:7.2f} "
                  f"{verdict} <= {goal:.2f}  {meter.describe()}", flush=True)

    # The fast step with 2 threads keeps a second workspace: measured too.
    runs = [("readable", 1)] + [("fast", threads) for threads in args.threads]
    peaks = {(name, threads): memory(256, fast=name == "fast", threads=threads)
             for name, threads in runs}
    for (name, threads), peak in peaks.items():
        print(f"one epoch at batch 256, {name} step (fresh process, {threads} thread(s)): "
              f"{peak['seconds']:.1f} s, peak RSS {peak['peak_rss_mib']:.0f} MiB; "
              f"{peak['rss_before_mib']:.0f} MiB before the first step (interpreter, NumPy, "
              f"cnnlab and the 47 MB of images): training adds "
              f"{peak['peak_rss_mib'] - peak['rss_before_mib']:.0f} MiB", flush=True)
    fast_peak = max(peak["peak_rss_mib"] for (name, _), peak in peaks.items() if name == "fast")
    verdict = "PASS" if fast_peak <= MEMORY_GOAL_MIB else "FAIL"
    failures += verdict == "FAIL"
    print(f"fast step's peak epoch memory: {fast_peak:.0f} MiB, {verdict} <= "
          f"{MEMORY_GOAL_MIB} MiB", flush=True)
    if args.table_only:
        return 1 if failures else 0

    print("\nlecture variant (20/50 filters, 500 hidden, 28x28 input), batch 500:")
    for threads in args.threads:
        readable, fast, theirs, meter = compare(500, threads, max(3, args.repeats // 2),
                                                max(2, args.steps // 4), lecture=True)
        print(f"  {threads} thread(s): readable {readable * EPOCH / 500:6.2f} s/epoch "
              f"({readable:.3f} s/step), fast {fast * EPOCH / 500:6.2f} s/epoch, PyTorch "
              f"{theirs * EPOCH / 500:6.2f} s/epoch, ratios {readable / theirs:.2f} and "
              f"{fast / theirs:.2f}  [{meter.describe()}]  (lecture's Theano-free code: "
              "about 600 s/epoch)", flush=True)

    for batch in (64, 256):
        total, parts = profile(batch, 1, max(5, args.steps))
        print(f"\nwhere a readable NumPy step goes, batch {batch}, 1 thread "
              f"({total * 1e3:.1f} ms/step = {total * EPOCH / batch:.1f} s/epoch):")
        for key, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {key:32s} {seconds * 1e3:7.2f} ms  {100 * seconds / total:5.1f}%")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
