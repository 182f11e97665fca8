"""Checks for :mod:`cnnlab.signal`, against ``scipy.signal`` and ``scipy.linalg``."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.signal

from cnnlab.checks._core import Case, Check, register

MODES = ("full", "same", "valid")
LECTURE_1D = (np.array([1, 2, 3, 4, 5]), np.array([1, 2, 3]))
LECTURE_2D = (np.arange(1, 10).reshape(3, 3), np.array([[1, 2], [3, 4]]))


def random_array(rng, shape, dtype):
    values = rng.integers(-9, 10, size=shape)
    if dtype == "complex":
        return values + 1j * rng.integers(-9, 10, size=shape)
    return values.astype(dtype)


def crop(full, start, shape):
    return full[tuple(slice(s, s + n) for s, n in zip(start, shape))]


def pair_cases(rng, count, ndim):
    """Seeded random cases of f(in1, in2, mode) with ``ndim``-dimensional inputs."""
    cases = []
    for i in range(count):
        dtype = ("float64", "int64", "complex")[i % 3]
        mode = MODES[i % 3 if i < 3 else rng.integers(3)]
        shape1 = tuple(int(n) for n in rng.integers(1, 9, size=ndim))
        shape2 = tuple(int(n) for n in rng.integers(1, 6, size=ndim))
        if i % 4 == 3:  # the second input larger than the first
            shape1, shape2 = shape2, shape1
        if mode == "valid":  # SciPy refuses shapes where neither fits in the other
            shape2 = tuple(min(a, b) for a, b in zip(shape1, shape2))
        cases.append(Case(f"random case {i}", {
            "in1": random_array(rng, shape1, dtype),
            "in2": random_array(rng, shape2, dtype),
            "mode": mode,
        }))
    return cases


class _PairCheck(Check):
    """Checks of f(in1, in2, mode) against the SciPy function of the same name."""

    module = "cnnlab.signal"
    ndim = 1
    check_dtype = True
    scipy_function = None

    def examples(self):
        in1, in2 = LECTURE_1D if self.ndim == 1 else LECTURE_2D
        return [Case(f"lecture example, mode={m!r}", {"in1": in1, "in2": in2, "mode": m})
                for m in MODES]

    def random_cases(self, rng, count):
        return pair_cases(rng, count, self.ndim)

    def reference(self, in1, in2, mode):
        return {"out": self.scipy_function(in1, in2, mode)}


def same_alignment_mistakes(full_fn, in1, in2, mode, right_start):
    """Outputs of 'same' taken from the wrong place in 'full'."""
    if mode != "same":
        return []
    full = full_fn(in1, in2, "full")
    mistakes = []
    for shift in (-1, 1):
        start = [s + shift for s in right_start]
        if all(0 <= s <= f - n for s, f, n in zip(start, full.shape, in1.shape)):
            mistakes.append((
                "your 'same' output is shifted by one: take the centre of 'full' starting at "
                + ("(len(in2) - 1) // 2" if in1.ndim == 1 else
                   "(k - 1) // 2 for convolve2d but k // 2 for correlate2d, per axis"),
                {"out": crop(full, start, in1.shape)},
            ))
    return mistakes


@register
class Correlate(_PairCheck):
    name = "signal.correlate"
    function = "correlate"
    reference_name = "scipy.signal.correlate"
    scipy_function = staticmethod(scipy.signal.correlate)

    def mistakes(self, in1, in2, mode):
        found = [("you flipped the kernel: that is convolution, not correlation",
                  {"out": scipy.signal.convolve(in1, in2.conj(), mode)}),
                 ("in2 must be conjugated (correlate uses conj(in2)) for complex inputs",
                  {"out": scipy.signal.correlate(in1, in2.conj(), mode)})]
        start = [(n2 - 1) // 2 for n2 in in2.shape]
        return found + same_alignment_mistakes(scipy.signal.correlate, in1, in2, mode, start)


@register
class Convolve(_PairCheck):
    name = "signal.convolve"
    function = "convolve"
    reference_name = "scipy.signal.convolve"
    scipy_function = staticmethod(scipy.signal.convolve)

    def mistakes(self, in1, in2, mode):
        found = [("the kernel was not flipped: that is correlation, not convolution",
                  {"out": scipy.signal.correlate(in1, in2.conj(), mode)})]
        start = [(n2 - 1) // 2 for n2 in in2.shape]
        return found + same_alignment_mistakes(scipy.signal.convolve, in1, in2, mode, start)


@register
class Correlate2d(_PairCheck):
    name = "signal.correlate2d"
    function = "correlate2d"
    reference_name = "scipy.signal.correlate2d"
    ndim = 2
    scipy_function = staticmethod(scipy.signal.correlate2d)

    def mistakes(self, in1, in2, mode):
        found = [("you rotated the kernel: that is convolution, not correlation",
                  {"out": scipy.signal.convolve2d(in1, in2.conj(), mode)})]
        start = [n2 // 2 for n2 in in2.shape]
        return found + same_alignment_mistakes(scipy.signal.correlate2d, in1, in2, mode, start)


@register
class Convolve2d(_PairCheck):
    name = "signal.convolve2d"
    function = "convolve2d"
    reference_name = "scipy.signal.convolve2d"
    ndim = 2
    scipy_function = staticmethod(scipy.signal.convolve2d)

    def mistakes(self, in1, in2, mode):
        found = [("the kernel was not rotated by 180 degrees: that is correlation",
                  {"out": scipy.signal.correlate2d(in1, in2.conj(), mode)}),
                 ("the kernel was flipped along one axis only: rotate it by 180 degrees "
                  "(numpy.rot90(k, 2)), i.e. flip both axes",
                  {"out": scipy.signal.convolve2d(in1, in2[::-1, :], mode)})]
        start = [(n2 - 1) // 2 for n2 in in2.shape]
        return found + same_alignment_mistakes(scipy.signal.convolve2d, in1, in2, mode, start)


@register
class FFTConvolve(_PairCheck):
    name = "signal.fftconvolve"
    function = "fftconvolve"
    reference_name = "scipy.signal.fftconvolve"
    check_dtype = False
    rtol, atol = 1e-7, 1e-6
    scipy_function = staticmethod(scipy.signal.fftconvolve)

    def random_cases(self, rng, count):
        half = count // 2
        one_d = pair_cases(rng, count - half, ndim=1)
        two_d = pair_cases(rng, half, ndim=2)
        return one_d + [Case(f"random 2-D case {i}", c.inputs) for i, c in enumerate(two_d)]

    def mistakes(self, in1, in2, mode):
        n = in1.shape  # circular convolution: the FFT taken without zero-padding
        if in1.ndim == 1 and in2.shape[0] <= n[0] and mode == "same":
            circular = np.fft.ifft(np.fft.fft(in1, n[0]) * np.fft.fft(in2, n[0]))
            return [("that is circular convolution: zero-pad both inputs to the full size "
                     "len(in1) + len(in2) - 1 before the FFT", {"out": circular})]
        return []


@register
class ConvolutionMatrix(Check):
    name = "signal.convolution_matrix"
    module = "cnnlab.signal"
    function = "convolution_matrix"
    reference_name = "scipy.linalg.convolution_matrix"

    def examples(self):
        return [Case(f"lecture kernel, n=5, mode={m!r}", {"a": LECTURE_1D[1], "n": 5, "mode": m})
                for m in MODES]

    def random_cases(self, rng, count):
        return [Case(f"random case {i}", {
            "a": rng.normal(size=int(rng.integers(1, 7))),
            "n": int(rng.integers(1, 8)),
            "mode": MODES[i % 3],
        }) for i in range(count)]

    def reference(self, a, n, mode):
        return {"out": scipy.linalg.convolution_matrix(a, n, mode)}

    def mistakes(self, a, n, mode):
        return [("the columns hold the kernel unflipped (that matrix correlates)",
                 {"out": scipy.linalg.convolution_matrix(a[::-1], n, mode)})]


@register
class ConvolutionMatrix2d(Check):
    name = "signal.convolution_matrix2d"
    module = "cnnlab.signal"
    function = "convolution_matrix2d"
    reference_name = "scipy.signal.convolve2d applied to every basis image"

    def examples(self):
        return [Case(f"lecture kernel on 3x3 images, mode={m!r}",
                     {"kernel": LECTURE_2D[1], "shape": (3, 3), "mode": m}) for m in MODES]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = tuple(int(n) for n in rng.integers(2, 6, size=2))
            kernel_shape = tuple(int(n) for n in rng.integers(1, 4, size=2))
            if i % 3 == 2:  # 'valid' needs one of image and kernel to fit in the other
                kernel_shape = tuple(min(a, b) for a, b in zip(shape, kernel_shape))
            cases.append(Case(f"random case {i}", {"kernel": rng.normal(size=kernel_shape),
                                                   "shape": shape, "mode": MODES[i % 3]}))
        return cases

    def call(self, kernel, shape, mode):
        return {"out": np.asarray(self.target()(kernel, tuple(shape), mode))}

    def reference(self, kernel, shape, mode):
        shape = tuple(int(n) for n in shape)
        basis = np.eye(shape[0] * shape[1]).reshape(-1, *shape)
        columns = [scipy.signal.convolve2d(e, kernel, mode).ravel() for e in basis]
        return {"out": np.stack(columns, axis=1)}


@register
class ConvOutputSize(Check):
    name = "signal.conv_output_size"
    module = "cnnlab.signal"
    function = "conv_output_size"
    reference_name = "PyTorch's output-size formula"

    def examples(self):
        return [
            Case("32x32 input, 5x5 kernel", {"n": 32, "kernel_size": 5}),
            Case("7x7 input, 3x3 kernel, stride 2", {"n": 7, "kernel_size": 3, "stride": 2}),
            Case("7x7 input, 3x3 kernel, stride 3 (floor)", {"n": 7, "kernel_size": 3,
                                                              "stride": 3}),
            Case("28x28 input, 5x5 kernel, padding 2", {"n": 28, "kernel_size": 5,
                                                         "padding": 2}),
        ]

    def random_cases(self, rng, count):
        cases = []
        while len(cases) < count:
            n, k, s, p, d = (int(v) for v in (rng.integers(1, 40), rng.integers(1, 8),
                                             rng.integers(1, 5), rng.integers(0, 4),
                                             rng.integers(1, 4)))
            if n + 2 * p >= d * (k - 1) + 1:
                cases.append(Case(f"random case {len(cases)}", {
                    "n": n, "kernel_size": k, "stride": s, "padding": p, "dilation": d}))
        return cases

    def reference(self, n, kernel_size, stride=1, padding=0, dilation=1):
        return {"out": np.asarray((n + 2 * padding - dilation * (kernel_size - 1) - 1)
                                  // stride + 1)}

    def mistakes(self, n, kernel_size, stride=1, padding=0, dilation=1):
        return [("the dilation is missing: a dilated kernel spans dilation*(k-1)+1 samples",
                 {"out": np.asarray((n + 2 * padding - kernel_size) // stride + 1)}),
                ("padding is added on both sides: use 2*padding",
                 {"out": np.asarray((n + padding - dilation * (kernel_size - 1) - 1)
                                    // stride + 1)})]


@register
class Pad2d(Check):
    name = "signal.pad2d"
    module = "cnnlab.signal"
    function = "pad2d"
    reference_name = "numpy.pad"
    check_dtype = True

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = tuple(int(n) for n in rng.integers(1, 5, size=2 + i % 3))
            padding = int(rng.integers(0, 3)) if i % 2 else tuple(int(p) for p in
                                                                  rng.integers(0, 3, size=2))
            cases.append(Case(f"random case {i}", {"x": random_array(rng, shape, "int64"),
                                                   "padding": padding}))
        return cases

    def call(self, x, padding):
        padding = tuple(padding) if np.ndim(padding) else padding
        return {"out": np.asarray(self.target()(x, padding))}

    def reference(self, x, padding):
        ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
        return {"out": np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)])}


@register
class DilateKernel(Check):
    name = "signal.dilate_kernel"
    module = "cnnlab.signal"
    function = "dilate_kernel"
    reference_name = "a kernel with dilation-1 zeros between its taps"
    check_dtype = True

    def examples(self):
        return [Case("lecture 1-D kernel, dilation 2", {"kernel": LECTURE_1D[1], "dilation": 2}),
                Case("lecture 2-D kernel, dilation 2", {"kernel": LECTURE_2D[1], "dilation": 2})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            ndim = 1 + i % 2
            kernel = random_array(rng, tuple(int(n) for n in rng.integers(1, 5, size=ndim)),
                                  "int64")
            cases.append(Case(f"random case {i}", {"kernel": kernel,
                                                   "dilation": int(rng.integers(1, 4))}))
        return cases

    def reference(self, kernel, dilation):
        # Dilation by d is a correlation that reads every d-th sample: build it by
        # scattering the taps to multiples of d.
        shape = tuple(dilation * (k - 1) + 1 for k in kernel.shape)
        out = np.zeros(shape, kernel.dtype)
        for index in np.ndindex(kernel.shape):
            out[tuple(dilation * i for i in index)] = kernel[index]
        return {"out": out}

    def mistakes(self, kernel, dilation):
        shape = tuple(dilation * k for k in kernel.shape)
        out = np.zeros(shape, kernel.dtype)
        out[tuple(slice(None, None, dilation) for _ in shape)] = kernel
        return [("there are trailing zeros: a kernel of k taps dilated by d is d*(k-1)+1 long",
                 {"out": out})]
