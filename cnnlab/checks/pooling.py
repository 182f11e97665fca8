"""Checks for :mod:`cnnlab.pooling`: upsampling and max / average pooling.

The references are loops over the pooling windows (and ``numpy.kron`` for the
upsampling), written here without calling any exercise of ``cnnlab``. The cases
include overlapping windows (3x3 windows with stride 2), strides different from
the window size, rectangular windows and non-square inputs whose last rows or
columns no window reaches.
"""

from __future__ import annotations

import importlib

import numpy as np

from cnnlab.checks._core import Case, Check, as_arg, pair, register

LECTURE_X = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
LECTURE_DELTA = np.array([[1, 3], [2, 4]])
# An input whose window maxima sit where the lecture's routing picture puts them.
ROUTING_X = np.array([[1, 1, 2, 7], [5, 6, 4, 3], [8, 2, 1, 0], [1, 2, 9, 4]])

# (x shape, size, stride) for the random cases; stride None means "= size".
SETTINGS = [
    ((2, 2, 4, 4), 2, None),
    ((1, 2, 7, 7), 3, 2),            # overlapping windows
    ((2, 1, 5, 7), 2, None),         # non-square, odd: last row and column dropped
    ((1, 2, 6, 5), 3, 1),            # heavily overlapping
    ((1, 2, 8, 7), 2, 3),            # stride > size: gaps between the windows
    ((2, 1, 6, 9), (2, 3), (1, 2)),  # rectangular window, pair stride
    ((1, 3, 7, 6), (3, 2), (2, 1)),
    ((2, 2, 9, 8), 3, (2, 3)),
]


# ------------------------------------------------------------------ helpers




def geometry(x_shape, size, stride):
    """Window size, stride and output size, from the shape of x."""
    (kh, kw) = pair(size)
    (sh, sw) = (kh, kw) if stride is None else pair(stride)
    oh = (x_shape[-2] - kh) // sh + 1
    ow = (x_shape[-1] - kw) // sw + 1
    return (kh, kw), (sh, sw), (oh, ow)


def windows(x_shape, size, stride):
    """Yield (p, q, rows, cols): every window's output position and slices of x."""
    (kh, kw), (sh, sw), (oh, ow) = geometry(x_shape, size, stride)
    for p in range(oh):
        for q in range(ow):
            yield p, q, slice(p * sh, p * sh + kh), slice(q * sw, q * sw + kw)


def pool_loop(x, size, stride, reduce):
    """Pooling by definition: reduce every window of every map."""
    x = np.asarray(x)
    _, _, (oh, ow) = geometry(x.shape, size, stride)
    out = np.zeros(x.shape[:2] + (oh, ow))
    for p, q, rows, cols in windows(x.shape, size, stride):
        out[:, :, p, q] = reduce(x[:, :, rows, cols], axis=(2, 3))
    return out


def max_routing(x, dout, size, stride, mode="first"):
    """Backward of max pooling by a loop over the windows.

    ``mode``: "first" sends each window's gradient to its first maximum (the
    right answer); "all" to every entry equal to the maximum; "overwrite" is the
    right routing with ``=`` instead of ``+=`` (the last window wins).
    """
    x = np.asarray(x)
    dx = np.zeros(x.shape)
    for p, q, rows, cols in windows(x.shape, size, stride):
        for n, c in np.ndindex(x.shape[:2]):
            window = x[n, c, rows, cols]
            block = dx[n, c, rows, cols]  # a view into dx
            if mode == "all":
                block[window == window.max()] += dout[n, c, p, q]
                continue
            i, j = np.unravel_index(np.argmax(window), window.shape)
            if mode == "overwrite":
                block[i, j] = dout[n, c, p, q]
            else:
                block[i, j] += dout[n, c, p, q]
    return dx


def routing_ignoring_stride(x, dout, size):
    """Max-pool routing with the windows placed every `size` pixels."""
    (kh, kw) = pair(size)
    dx = np.zeros(x.shape)
    for n, c, p, q in np.ndindex(dout.shape):
        window = x[n, c, p * kh:p * kh + kh, q * kw:q * kw + kw]
        if window.shape == (kh, kw):
            i, j = np.unravel_index(np.argmax(window), window.shape)
            dx[n, c, p * kh + i, q * kw + j] += dout[n, c, p, q]
    return dx


def max_routing_by_taps_overwriting(x, dout, size, stride):
    """A vectorized max-pool backward over the taps, assigning with a mask (no +=)."""
    x = np.asarray(x)
    (kh, kw), (sh, sw), (oh, ow) = geometry(x.shape, size, stride)
    out = pool_loop(x, size, stride, np.max)
    dx = np.zeros(x.shape)
    free = np.ones(out.shape, bool)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + sh * (oh - 1) + 1, sh)
            cols = slice(j, j + sw * (ow - 1) + 1, sw)
            hit = (x[:, :, rows, cols] == out) & free
            free &= ~hit
            target = dx[:, :, rows, cols]
            target[hit] = dout[hit]
    return dx


def spread(dout, x_shape, size, stride, divide=True, overwrite=False):
    """Backward of average pooling by a loop over the windows."""
    (kh, kw), _, _ = geometry(x_shape, size, stride)
    share = np.asarray(dout, dtype=float) / (kh * kw if divide else 1)
    dx = np.zeros(x_shape)
    for p, q, rows, cols in windows(x_shape, size, stride):
        if overwrite:
            dx[:, :, rows, cols] = share[:, :, p, q, None, None]
        else:
            dx[:, :, rows, cols] += share[:, :, p, q, None, None]
    return dx


def kron_upsample(x, size):
    """``x ⊗ 1`` on the last two axes, by numpy.kron (scipy.linalg.kron is gone)."""
    x = np.asarray(x)
    kh, kw = pair(size)
    ones = np.ones((1,) * (x.ndim - 2) + (kh, kw), dtype=x.dtype)
    return np.kron(x, ones)


def fit_to(array, shape):
    """``array`` cut or zero-padded (at the end) to ``shape``."""
    out = np.zeros(shape, dtype=array.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(array.shape, shape))
    out[common] = array[common]
    return out


def distinct_values(rng, shape):
    """Random values that are at least 0.1 apart: every window has a single maximum."""
    count = int(np.prod(shape))
    values = rng.permutation(count) * 0.1 - 0.05 * count
    return (values + rng.uniform(0, 0.02, count)).reshape(shape)


def random_pooling_cases(rng, count, distinct=True, with_dout=False):
    cases = []
    for i in range(count):
        shape, size, stride = SETTINGS[i % len(SETTINGS)]
        x = distinct_values(rng, shape) if distinct else rng.normal(size=shape)
        inputs = {"x": x, "size": size}
        if stride is not None:
            inputs["stride"] = stride
        if with_dout:
            _, _, out_hw = geometry(shape, size, stride)
            inputs["dout"] = rng.normal(size=shape[:2] + out_hw)
        label = f"random case {i}: size={size!r}, stride={stride if stride else size!r}"
        cases.append(Case(label, inputs))
    return cases


class _PoolingCheck(Check):
    module = "cnnlab.pooling"

    def function_of_module(self, name):
        """Another function of the module under test, looked up at call time."""
        return getattr(importlib.import_module(self.module), name)


# ------------------------------------------------------------------ upsample
@register
class Upsample(_PoolingCheck):
    name = "pooling.upsample"
    function = "upsample"
    reference_name = "numpy.kron(x, ones)"
    check_dtype = True

    def examples(self):
        return [Case("the lecture's sensitivity map, 2x2 blocks",
                     {"x": LECTURE_DELTA, "size": 2})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            ndim = (2, 4, 3)[i % 3]
            shape = tuple(int(n) for n in rng.integers(1, 4, size=ndim))
            if ndim == 2:
                shape = (int(rng.integers(2, 4)), int(rng.integers(3, 5)))  # non-square
            size = int(rng.integers(2, 4)) if i % 2 else (int(rng.integers(1, 4)),
                                                          int(rng.integers(2, 4)))
            if i % 4 == 1:
                size = (2, 3)  # rectangular blocks, so that swapping kh and kw shows
            x = rng.integers(-9, 10, size=shape) if i % 3 == 0 else rng.normal(size=shape)
            cases.append(Case(f"random case {i}", {"x": x, "size": size}))
        return cases

    def call(self, x, size):
        return {"out": np.asarray(self.target()(x, as_arg(size)))}

    def reference(self, x, size):
        return {"out": kron_upsample(x, size)}

    def mistakes(self, x, size):
        kh, kw = pair(size)
        x = np.asarray(x)
        tiled = np.tile(x, (1,) * (x.ndim - 2) + (kh, kw))
        return [
            ("np.tile repeats the whole array side by side: each entry must become its own "
             "kh x kw block (np.kron(x, np.ones((kh, kw))), or np.repeat along each axis)",
             {"out": tiled}),
            ("the block is kw x kh instead of kh x kw: size = (kh, kw) gives kh rows",
             {"out": kron_upsample(x, (kw, kh))}),
        ]


# ------------------------------------------------------------------ forwards
@register
class MaxPool2dForward(_PoolingCheck):
    name = "pooling.max_pool2d_forward"
    function = "max_pool2d_forward"
    reference_name = "a loop over the windows taking np.max"

    def examples(self):
        return [
            Case("the lecture's 4x4 example, 2x2 windows",
                 {"x": LECTURE_X.reshape(1, 1, 4, 4), "size": 2}),
            Case("overlapping 3x3 windows, stride 2",
                 {"x": np.arange(35.0).reshape(1, 1, 5, 7) % 11, "size": 3, "stride": 2}),
        ]

    def random_cases(self, rng, count):
        return random_pooling_cases(rng, count, distinct=False)

    def call(self, x, size, stride=None):
        out, _ = self.target()(x, as_arg(size), None if stride is None else as_arg(stride))
        return {"out": np.asarray(out)}

    def reference(self, x, size, stride=None):
        return {"out": pool_loop(x, size, stride, np.max)}

    def mistakes(self, x, size, stride=None):
        found = [("that is the mean of each window (average pooling): take the maximum",
                  {"out": pool_loop(x, size, stride, np.mean)})]
        if stride is not None and pair(stride) != pair(size):
            found.append(("the stride was ignored: windows start every `stride` pixels, "
                          "not every `size` pixels", {"out": pool_loop(x, size, None, np.max)}))
        return found


@register
class AvgPool2dForward(_PoolingCheck):
    name = "pooling.avg_pool2d_forward"
    function = "avg_pool2d_forward"
    reference_name = "a loop over the windows taking np.mean"

    def examples(self):
        return [
            Case("the lecture's 4x4 example, 2x2 windows",
                 {"x": LECTURE_X.reshape(1, 1, 4, 4), "size": 2}),
            Case("overlapping 3x3 windows, stride 2",
                 {"x": np.arange(35.0).reshape(1, 1, 5, 7) % 11, "size": 3, "stride": 2}),
        ]

    def random_cases(self, rng, count):
        return random_pooling_cases(rng, count, distinct=False)

    def call(self, x, size, stride=None):
        out, _ = self.target()(x, as_arg(size), None if stride is None else as_arg(stride))
        return {"out": np.asarray(out)}

    def reference(self, x, size, stride=None):
        return {"out": pool_loop(x, size, stride, np.mean)}

    def mistakes(self, x, size, stride=None):
        found = [("that is the sum of each window: divide by the window area kh * kw",
                  {"out": pool_loop(x, size, stride, np.sum)}),
                 ("that is the maximum of each window (max pooling): take the mean",
                  {"out": pool_loop(x, size, stride, np.max)})]
        if stride is not None and pair(stride) != pair(size):
            found.append(("the stride was ignored: windows start every `stride` pixels, "
                          "not every `size` pixels", {"out": pool_loop(x, size, None, np.mean)}))
        return found


# ------------------------------------------------------------------ backwards
class _PoolingBackward(_PoolingCheck):
    """Calls the forward and the backward of the module under test."""

    forward = ""

    def call(self, x, dout, size, stride=None):
        forward = self.function_of_module(self.forward)
        _, cache = forward(x, as_arg(size), None if stride is None else as_arg(stride))
        return {"dx": np.asarray(self.target()(dout, cache))}


@register
class MaxPool2dBackward(_PoolingBackward):
    name = "pooling.max_pool2d_backward"
    function = "max_pool2d_backward"
    forward = "max_pool2d_forward"
    reference_name = "a loop over the windows routing each gradient to np.argmax"

    def examples(self):
        centre = np.zeros((1, 1, 5, 5))
        centre[0, 0, 2, 2] = 9.0  # the maximum of all four overlapping windows
        centre[0, 0, 0, 0] = 1.0
        shared = (np.arange(35.0).reshape(1, 1, 5, 7) * 7 % 17) / 10
        shared[0, 0, 2, 4] = 9.0  # the maximum of four of the six windows
        return [
            Case("the lecture's 4x4 example and sensitivity [[1, 3], [2, 4]]",
                 {"x": LECTURE_X.reshape(1, 1, 4, 4),
                  "dout": LECTURE_DELTA.reshape(1, 1, 2, 2), "size": 2}),
            Case("the lecture's routing picture",
                 {"x": ROUTING_X.reshape(1, 1, 4, 4),
                  "dout": LECTURE_DELTA.reshape(1, 1, 2, 2), "size": 2}),
            Case("overlapping 3x3 windows, stride 2, one maximum shared by four windows",
                 {"x": shared, "dout": np.arange(1.0, 7.0).reshape(1, 1, 2, 3),
                  "size": 3, "stride": 2}),
            Case("overlapping 3x3 windows, stride 2, one maximum shared by all four windows",
                 {"x": centre, "dout": np.array([[[[1.0, 2.0], [3.0, 4.0]]]]),
                  "size": 3, "stride": 2}),
            Case("a tie: two equal maxima in each window",
                 {"x": np.array([[[[1.0, 5.0, 5.0, 2.0], [5.0, 0.0, 3.0, 5.0]]]]),
                  "dout": np.array([[[[1.0, 10.0]]]]), "size": 2}),
        ]

    def random_cases(self, rng, count):
        return random_pooling_cases(rng, count, distinct=True, with_dout=True)

    def reference(self, x, dout, size, stride=None):
        return {"dx": max_routing(x, dout, size, stride)}

    def mistakes(self, x, dout, size, stride=None):
        x = np.asarray(x)
        (kh, kw), _, _ = geometry(x.shape, size, stride)
        return [
            ("the windows start every `stride` pixels (cache['stride']), not every `size` "
             "pixels", {"dx": routing_ignoring_stride(x, dout, size)}),
            ("δ was routed to every cell of the window: route it only to the argmax "
             "(the cell that held the maximum)",
             {"dx": spread(dout, x.shape, size, stride, divide=False)}),
            ("δ was spread evenly over the window, as in average pooling: max pooling "
             "sends all of it to the maximum", {"dx": spread(dout, x.shape, size, stride)}),
            ("overlapping windows: add the gradients, don't overwrite (a cell that is the "
             "maximum of several windows receives the sum of their δ)",
             {"dx": max_routing(x, dout, size, stride, mode="overwrite")}),
            ("overlapping windows: add the gradients, don't overwrite (a cell that is the "
             "maximum of several windows receives the sum of their δ)",
             {"dx": max_routing_by_taps_overwriting(x, dout, size, stride)}),
            ("ties: when several entries equal the maximum, route δ only to the first of "
             "them in row-major order (as np.argmax does), not to all of them",
             {"dx": max_routing(x, dout, size, stride, mode="all")}),
        ]


@register
class AvgPool2dBackward(_PoolingBackward):
    name = "pooling.avg_pool2d_backward"
    function = "avg_pool2d_backward"
    forward = "avg_pool2d_forward"
    reference_name = "a loop over the windows adding δ / (kh * kw) to each cell"

    def examples(self):
        return [
            Case("the lecture's sensitivity [[1, 3], [2, 4]], 2x2 windows",
                 {"x": np.zeros((1, 1, 4, 4)), "dout": LECTURE_DELTA.reshape(1, 1, 2, 2),
                  "size": 2}),
            Case("overlapping 3x3 windows, stride 2",
                 {"x": np.zeros((1, 1, 5, 5)), "dout": np.array([[[[1.0, 2.0], [3.0, 4.0]]]]),
                  "size": 3, "stride": 2}),
        ]

    def random_cases(self, rng, count):
        return random_pooling_cases(rng, count, distinct=False, with_dout=True)

    def reference(self, x, dout, size, stride=None):
        return {"dx": spread(dout, np.shape(x), size, stride)}

    def mistakes(self, x, dout, size, stride=None):
        shape = np.shape(x)
        (kh, kw), _, _ = geometry(shape, size, stride)
        upsampled = kron_upsample(np.asarray(dout, dtype=float), size) / (kh * kw)
        return [
            ("each cell of a window gets δ / (kh * kw): divide by the window area",
             {"dx": spread(dout, shape, size, stride, divide=False)}),
            ("Kronecker upsampling is the backward only when the windows tile the input "
             "(stride == size): with overlapping windows or gaps, add each window's share "
             "δ / (kh * kw) into the cells of that window",
             {"dx": fit_to(upsampled, shape)}),
            ("overlapping windows: add the gradients, don't overwrite",
             {"dx": spread(dout, shape, size, stride, overwrite=True)}),
        ]
