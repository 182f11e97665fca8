"""Speed of cnnlab's conv2d and pooling layers on LeNet5's sizes (MNIST, batch 500).

    .venv/bin/python benchmarks/bench_conv.py [--threads 1] [--repeat 7] [--no-torch]

Prints the median wall time (milliseconds, ``time.perf_counter``) of the forward
and backward passes of

* ``conv2d`` on ``(500, 1, 28, 28)`` -> 20 filters 5x5 and on
  ``(500, 20, 12, 12)`` -> 50 filters 5x5 (LeNet5's two convolutions),
  in float32 and float64;
* 2x2 max and average pooling on ``(500, 20, 24, 24)`` (after the first one);

next to PyTorch's CPU kernels for the same work when torch is installed (as a
yardstick; ``--no-torch`` skips them). BLAS (and PyTorch) are pinned to
``--threads`` threads with ``threadpoolctl``; the machine's load average is
printed before and after, so that a noisy run can be spotted.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# Run from a checkout without installing the package: the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnlab.layers import conv2d_backward, conv2d_forward  # noqa: E402
from cnnlab.pooling import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

CONV_CASES = [((500, 1, 28, 28), (20, 1, 5, 5)), ((500, 20, 12, 12), (50, 20, 5, 5))]
POOL_SHAPE = (500, 20, 24, 24)


def median_ms(repeat, function, *args):
    """Median time of ``function(*args)`` in milliseconds, after one warm-up call."""
    function(*args)  # warm-up: first-touch page faults, BLAS thread start-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def torch_conv(repeat, x, w, b, dout):
    """PyTorch's (forward, backward) times for the same convolution."""
    import torch

    xt, wt, bt, dt = (torch.from_numpy(a) for a in (x, w, b, dout))
    with torch.no_grad():
        forward = median_ms(repeat, torch.nn.functional.conv2d, xt, wt, bt)
        backward = median_ms(repeat, torch.ops.aten.convolution_backward, dt, xt, wt,
                             [w.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                             [True, True, True])
    return forward, backward


def torch_pool(repeat, kind, x):
    """PyTorch's (forward, backward) times for the same 2x2 pooling."""
    import torch

    xt = torch.from_numpy(x)
    with torch.no_grad():
        if kind == "max":
            out, index = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
            dt = torch.ones_like(out)
            forward = median_ms(repeat, torch.nn.functional.max_pool2d, xt, 2)
            backward = median_ms(repeat, torch.ops.aten.max_pool2d_with_indices_backward,
                                 dt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, index)
        else:
            dt = torch.ones_like(torch.nn.functional.avg_pool2d(xt, 2))
            forward = median_ms(repeat, torch.nn.functional.avg_pool2d, xt, 2)
            backward = median_ms(repeat, torch.ops.aten.avg_pool2d_backward,
                                 dt, xt, [2, 2], [2, 2], [0, 0], False, True, None)
    return forward, backward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS (and torch) threads (default 1)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch yardstick")
    args = parser.parse_args()
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
        except ImportError:
            use_torch = False
        else:
            torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    repeat = args.repeat

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    with threadpool_limits(args.threads):
        blas = {info["internal_api"]: info["num_threads"] for info in threadpool_info()}
        for x_shape, w_shape in CONV_CASES:
            for dtype in (np.float32, np.float64):
                x = rng.normal(size=x_shape).astype(dtype)
                w = rng.normal(size=w_shape).astype(dtype)
                b = rng.normal(size=w_shape[0]).astype(dtype)
                out, cache = conv2d_forward(x, w, b)
                dout = rng.normal(size=out.shape).astype(dtype)
                assert out.dtype == dtype and all(g.dtype == dtype
                                                  for g in conv2d_backward(dout, cache))
                rows.append((
                    f"conv2d {x_shape}->{w_shape[0]}@{w_shape[2]}x{w_shape[3]} "
                    f"{np.dtype(dtype).name}",
                    median_ms(repeat, conv2d_forward, x, w, b),
                    median_ms(repeat, conv2d_backward, dout, cache),
                    torch_conv(repeat, x, w, b, dout) if use_torch else None,
                ))
        for dtype in (np.float32, np.float64):
            x = rng.normal(size=POOL_SHAPE).astype(dtype)
            for kind, forward, backward in [
                ("max", max_pool2d_forward, max_pool2d_backward),
                ("avg", avg_pool2d_forward, avg_pool2d_backward),
            ]:
                out, cache = forward(x, 2)
                dout = np.ones_like(out)
                rows.append((
                    f"{kind}_pool2d {POOL_SHAPE} 2x2 {np.dtype(dtype).name}",
                    median_ms(repeat, forward, x, 2),
                    median_ms(repeat, backward, dout, cache),
                    torch_pool(repeat, kind, x) if use_torch else None,
                ))

    print(f"cpus: {os.cpu_count()}, threads: {args.threads} (BLAS: {blas}), repeat: {repeat}, "
          f"numpy {np.__version__}")
    print(f"{'median ms':50s} {'forward':>8s} {'backward':>9s} {'torch fwd':>10s} "
          f"{'torch bwd':>10s}")
    for label, forward, backward, theirs in rows:
        torch_cols = (f"{theirs[0]:10.1f} {theirs[1]:10.1f}" if theirs
                      else f"{'-':>10s} {'-':>10s}")
        print(f"{label:50s} {forward:8.1f} {backward:9.1f} {torch_cols}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
