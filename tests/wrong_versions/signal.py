"""Plausible mistakes in cnnlab.signal exercises."""

import numpy as np
import scipy.signal


def crop_same(full, in1_shape, starts):
    return full[tuple(slice(s, s + n) for s, n in zip(starts, in1_shape))]


def same_shifted(full_function, start_rule):
    """A 'same' mode that takes the centre from the wrong place for even kernels."""
    def wrong(in1, in2, mode="full"):
        in1, in2 = np.asarray(in1), np.asarray(in2)
        if mode != "same":
            return full_function(in1, in2, mode)
        full = full_function(in1, in2, "full")
        return crop_same(full, in1.shape, [start_rule(n) for n in in2.shape])
    return wrong


def circular_fftconvolve(in1, in2, mode="full"):
    in1, in2 = np.asarray(in1), np.asarray(in2)
    shape = [max(a, b) for a, b in zip(in1.shape, in2.shape)]
    axes = tuple(range(in1.ndim))
    out = np.fft.ifftn(np.fft.fftn(in1, shape, axes) * np.fft.fftn(in2, shape, axes),
                       axes=axes).real
    return out if mode != "same" else out[tuple(slice(0, n) for n in in1.shape)]


def correlation_matrix(a, n, mode="full"):
    import scipy.linalg
    return scipy.linalg.convolution_matrix(np.asarray(a)[::-1], n, mode)


def correlation_matrix2d(kernel, shape, mode="full"):
    basis = np.eye(shape[0] * shape[1]).reshape(-1, *shape)
    return np.stack([scipy.signal.correlate2d(e, kernel, mode).ravel() for e in basis], axis=1)


def output_size_without_dilation(n, kernel_size, stride=1, padding=0, dilation=1, strict=False):
    return (n + 2 * padding - kernel_size) // stride + 1


def output_size_ceil(n, kernel_size, stride=1, padding=0, dilation=1, strict=False):
    return -(-(n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1


def pad_one_side(x, padding, value=0):
    ph, pw = (padding, padding) if np.ndim(padding) == 0 else padding
    x = np.asarray(x)
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, 2 * ph), (0, 2 * pw)])


def pad_every_axis(x, padding, value=0):
    ph = padding if np.ndim(padding) == 0 else padding[0]
    return np.pad(np.asarray(x), ph)


def dilate_with_trailing_zeros(kernel, dilation):
    kernel = np.asarray(kernel)
    out = np.zeros(tuple(dilation * k for k in kernel.shape), kernel.dtype)
    out[tuple(slice(None, None, dilation) for _ in kernel.shape)] = kernel
    return out


def scipy_instead(name, transform=lambda k: k):
    """A version that calls the SciPy function ``name`` with a transformed kernel."""
    function = getattr(scipy.signal, name)
    return lambda ref: lambda in1, in2, mode="full": function(in1, transform(np.asarray(in2)),
                                                              mode)


WRONG = {
    "signal.correlate": [
        ("flipped kernel", scipy_instead("convolve")),
        ("'same' off by one", lambda ref: same_shifted(scipy.signal.correlate, lambda n: n // 2)),
    ],
    "signal.convolve": [
        ("unflipped kernel", scipy_instead("correlate")),
        ("'same' off by one", lambda ref: same_shifted(scipy.signal.convolve, lambda n: n // 2)),
    ],
    "signal.correlate2d": [
        ("rotated kernel",
         scipy_instead("convolve2d")),
        ("convolve2d's 'same' alignment",
         lambda ref: same_shifted(scipy.signal.correlate2d, lambda n: (n - 1) // 2)),
    ],
    "signal.convolve2d": [
        ("unrotated kernel",
         scipy_instead("correlate2d")),
        ("kernel flipped along one axis only",
         scipy_instead("convolve2d", lambda k: k[::-1, :])),
        ("correlate2d's 'same' alignment",
         lambda ref: same_shifted(scipy.signal.convolve2d, lambda n: n // 2)),
    ],
    "signal.fftconvolve": [
        ("circular convolution (no zero padding)", lambda ref: circular_fftconvolve),
        ("'same' off by one", lambda ref: same_shifted(scipy.signal.fftconvolve, lambda n: n // 2)),
    ],
    "signal.convolution_matrix": [("correlation matrix", lambda ref: correlation_matrix)],
    "signal.convolution_matrix2d": [("correlation matrix", lambda ref: correlation_matrix2d)],
    "signal.conv_output_size": [
        ("dilation ignored", lambda ref: output_size_without_dilation),
        ("ceiling instead of floor", lambda ref: output_size_ceil),
    ],
    "signal.pad2d": [
        ("padding on one side only", lambda ref: pad_one_side),
        ("padding every axis", lambda ref: pad_every_axis),
    ],
    "signal.dilate_kernel": [("trailing zeros", lambda ref: dilate_with_trailing_zeros)],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("signal.correlate", "flipped kernel"): r"you flipped the kernel: that is convolution",
    ("signal.correlate", "'same' off by one"): r"your 'same' output is shifted by one",
    ("signal.convolve", "unflipped kernel"): r"the kernel was not flipped: that is correlation",
    ("signal.convolve", "'same' off by one"): r"your 'same' output is shifted by one",
    ("signal.correlate2d", "rotated kernel"): r"you rotated the kernel: that is convolution",
    ("signal.correlate2d", "convolve2d's 'same' alignment"):
        r"your 'same' output is shifted by one: .* k // 2 for correlate2d",
    ("signal.convolve2d", "unrotated kernel"): r"the kernel was not rotated by 180 degrees",
    ("signal.convolve2d", "kernel flipped along one axis only"):
        r"the kernel was flipped along one axis only",
    ("signal.convolve2d", "correlate2d's 'same' alignment"):
        r"your 'same' output is shifted by one: .* \(k - 1\) // 2 for convolve2d",
    ("signal.fftconvolve", "circular convolution (no zero padding)"):
        r"expected shape \(7,\), got shape \(5,\)",
    ("signal.fftconvolve", "'same' off by one"): r"values differ at 4 of 4 positions",
    ("signal.convolution_matrix", "correlation matrix"):
        r"the columns hold the kernel unflipped \(that matrix correlates\)",
    ("signal.convolution_matrix2d", "correlation matrix"): r"values differ at 36 of 144 positions",
    ("signal.conv_output_size", "dilation ignored"): r"the dilation is missing",
    ("signal.conv_output_size", "ceiling instead of floor"): r"expected 2, got 3",
    ("signal.pad2d", "padding on one side only"): r"values differ at 15 of 18 positions",
    ("signal.pad2d", "padding every axis"): r"expected shape \(6, 3\), got shape \(6, 5\)",
    ("signal.dilate_kernel", "trailing zeros"): r"there are trailing zeros",
}
