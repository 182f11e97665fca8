"""Speed of cnnlab.signal's reference functions next to SciPy's.

    .venv/bin/python benchmarks/bench_signal.py [--repeat 2000]

Prints the median time per call (microseconds) of correlate2d / convolve2d on a
28x28 image with a 5x5 kernel (the MNIST/LeNet5 case), of 1-D convolve, and of
fftconvolve on a 256x256 image with a 31x31 kernel. BLAS is pinned to one
thread; the machine's load average is printed so noisy runs can be spotted.
"""

import argparse
import os
import statistics
import time

import numpy as np
import scipy.signal
from threadpoolctl import threadpool_limits

from cnnlab import signal as cs


def median_microseconds(function, call_args, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(*call_args)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image, kernel = rng.normal(size=(28, 28)), rng.normal(size=(5, 5))
    signal, taps = rng.normal(size=1000), rng.normal(size=31)
    big, big_kernel = rng.normal(size=(256, 256)), rng.normal(size=(31, 31))
    cases = [
        ("correlate2d 28x28 * 5x5, valid", "correlate2d", (image, kernel, "valid")),
        ("correlate2d 28x28 * 5x5, full", "correlate2d", (image, kernel, "full")),
        ("convolve2d 28x28 * 5x5, same", "convolve2d", (image, kernel, "same")),
        ("convolve 1000 * 31, full", "convolve", (signal, taps, "full")),
        ("fftconvolve 256x256 * 31x31, same", "fftconvolve", (big, big_kernel, "same")),
    ]
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'case':36s} {'cnnlab µs':>10s} {'scipy µs':>10s}")
    with threadpool_limits(1):
        for label, name, call_args in cases:
            repeat = max(20, args.repeat // 20) if "256" in label else args.repeat
            ours = median_microseconds(getattr(cs, name), call_args, repeat)
            theirs = median_microseconds(getattr(scipy.signal, name), call_args, repeat)
            print(f"{label:36s} {ours:10.1f} {theirs:10.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
