"""Single-channel convolution and correlation, mirroring ``scipy.signal``.

Every function here has the name, argument order and ``mode`` semantics of its
SciPy namesake, and returns the same shape, values and dtype:

* ``'full'``: every position where the two inputs overlap at all;
* ``'same'``: the central part of ``'full'``, as large as ``in1``;
* ``'valid'``: only positions where one input lies entirely inside the other.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
input checks, signatures and docstrings are given.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab._validate import (
    as_numeric_array,
    as_pair,
    check_int,
    check_mode,
    check_valid_shapes,
)

__all__ = [
    "conv_output_size",
    "convolution_matrix",
    "convolution_matrix2d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "dilate_kernel",
    "fftconvolve",
    "pad2d",
]


def sliding_dot(padded: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Slide ``kernel`` over every position of ``padded`` and sum the products.

    ``out[k] = sum_n padded[k + n] * kernel[n]`` (with ``k`` and ``n`` multi-indices).
    No flip, no conjugation, no padding: callers decide those. This is the one
    vectorization trick the exercises need: ``sliding_window_view`` gives every
    window as a view (no copy), and ``tensordot`` sums the products of each.

    Examples
    --------
    >>> sliding_dot(np.array([1, 2, 3, 4]), np.array([1, 10]))
    array([21, 32, 43])
    """
    windows = sliding_window_view(padded, kernel.shape)
    return np.tensordot(windows, kernel, axes=kernel.ndim)


def _checked_pair(in1, in2, ndim: int, mode, names=("in1", "in2")):
    """Validate the common arguments of the convolution functions."""
    mode = check_mode(mode)
    in1 = as_numeric_array(in1, names[0], ndim=ndim)
    in2 = as_numeric_array(in2, names[1], ndim=ndim)
    if mode == "valid":
        check_valid_shapes(in1, in2, names)
    common = np.result_type(in1, in2)
    return in1.astype(common, copy=False), in2.astype(common, copy=False), mode


def correlate(in1, in2, mode="full"):
    """Cross-correlate two 1-D arrays, like ``scipy.signal.correlate``.

    ``z[k] = sum_n in1[n + k] * conj(in2[n])``: the kernel slides without flipping.

    Parameters
    ----------
    in1 : array_like, 1-D
        First input (the signal).
    in2 : array_like, 1-D
        Second input (the kernel); conjugated if complex.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output (see the module docstring). In 'same' mode the output
        has ``len(in1)`` samples, taken from 'full' starting at ``(len(in2) - 1) // 2``.

    Returns
    -------
    ndarray
        The correlation, with dtype ``numpy.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 1-D array, or ``mode`` is unknown.

    Examples
    --------
    >>> correlate([1, 2, 3, 4, 5], [1, 2, 3])
    array([ 3,  8, 14, 20, 26, 14,  5])
    >>> correlate([1, 2, 3, 4, 5], [1, 2, 3], mode="valid")
    array([14, 20, 26])
    """
    in1, in2, mode = _checked_pair(in1, in2, 1, mode)
    # BEGIN SOLUTION
    n1, n2 = in1.size, in2.size
    if mode == "valid" and n2 > n1:
        # Correlation is not commutative: swap, then reverse and conjugate back.
        return correlate(in2, in1, "valid")[::-1].conj()
    out_len = {"full": n1 + n2 - 1, "same": n1, "valid": n1 - n2 + 1}[mode]
    before = {"full": n2 - 1, "same": n2 - 1 - (n2 - 1) // 2, "valid": 0}[mode]
    after = out_len + n2 - 1 - n1 - before
    return sliding_dot(np.pad(in1, (before, after)), in2.conj())
    # END SOLUTION


def convolve(in1, in2, mode="full"):
    """Convolve two 1-D arrays, like ``scipy.signal.convolve``.

    ``z[k] = sum_n in1[n] * in2[k - n]``: the kernel is flipped, then slid.
    Convolution is commutative, so the inputs may come in either order.

    Parameters
    ----------
    in1 : array_like, 1-D
        First input.
    in2 : array_like, 1-D
        Second input.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output. In 'same' mode the output has ``len(in1)`` samples,
        taken from 'full' starting at ``(len(in2) - 1) // 2``.

    Returns
    -------
    ndarray
        The convolution, with dtype ``numpy.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 1-D array, or ``mode`` is unknown.

    Examples
    --------
    >>> convolve([1, 2, 3, 4, 5], [1, 2, 3])
    array([ 1,  4, 10, 16, 22, 22, 15])
    >>> convolve([1, 2, 3, 4, 5], [1, 2, 3], mode="same")
    array([ 4, 10, 16, 22, 22])
    """
    in1, in2, mode = _checked_pair(in1, in2, 1, mode)
    # BEGIN SOLUTION
    # Convolution is correlation with the flipped kernel; the conjugate cancels
    # the one correlate applies.
    return correlate(in1, in2[::-1].conj(), mode)
    # END SOLUTION


def correlate2d(in1, in2, mode="full"):
    """Cross-correlate two 2-D arrays with zero fill, like ``scipy.signal.correlate2d``.

    ``z[i, j] = sum_{m, n} in1[i + m, j + n] * conj(in2[m, n])``.

    Parameters
    ----------
    in1 : array_like, 2-D
        First input (the image).
    in2 : array_like, 2-D
        Second input (the kernel); conjugated if complex.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output. In 'same' mode the output has ``in1``'s shape, taken
        from 'full' starting at ``in2.shape[axis] // 2`` along each axis (note:
        ``convolve2d`` starts at ``(in2.shape[axis] - 1) // 2``; the two differ
        for even-sized kernels).

    Returns
    -------
    ndarray
        The correlation, with dtype ``numpy.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 2-D array, ``mode`` is unknown, or
        in 'valid' mode neither input is at least as large as the other in every
        dimension.

    Examples
    --------
    >>> correlate2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 2], [3, 4]], mode="valid")
    array([[37, 47],
           [67, 77]])
    """
    in1, in2, mode = _checked_pair(in1, in2, 2, mode)
    # BEGIN SOLUTION
    if mode == "valid" and in2.size > in1.size:
        # SciPy swaps the inputs and flips the result back (without conjugating).
        return correlate2d(in2, in1, "valid")[::-1, ::-1]
    pads = []
    for n1, n2 in zip(in1.shape, in2.shape):
        out_len = {"full": n1 + n2 - 1, "same": n1, "valid": n1 - n2 + 1}[mode]
        before = {"full": n2 - 1, "same": n2 - 1 - n2 // 2, "valid": 0}[mode]
        pads.append((before, out_len + n2 - 1 - n1 - before))
    return sliding_dot(np.pad(in1, pads), in2.conj())
    # END SOLUTION


def convolve2d(in1, in2, mode="full"):
    """Convolve two 2-D arrays with zero fill, like ``scipy.signal.convolve2d``.

    ``z[i, j] = sum_{m, n} in1[m, n] * in2[i - m, j - n]``: the kernel is rotated
    by 180 degrees (``numpy.rot90(in2, 2)``), then slid.

    Parameters
    ----------
    in1 : array_like, 2-D
        First input.
    in2 : array_like, 2-D
        Second input.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output. In 'same' mode the output has ``in1``'s shape, taken
        from 'full' starting at ``(in2.shape[axis] - 1) // 2`` along each axis.

    Returns
    -------
    ndarray
        The convolution, with dtype ``numpy.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 2-D array, ``mode`` is unknown, or
        in 'valid' mode neither input is at least as large as the other in every
        dimension.

    Examples
    --------
    >>> convolve2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 2], [3, 4]])
    array([[ 1,  4,  7,  6],
           [ 7, 23, 33, 24],
           [19, 53, 63, 42],
           [21, 52, 59, 36]])
    """
    in1, in2, mode = _checked_pair(in1, in2, 2, mode)
    # BEGIN SOLUTION
    if mode == "valid" and in2.size > in1.size:
        in1, in2 = in2, in1  # convolution is commutative
    pads = []
    for n1, n2 in zip(in1.shape, in2.shape):
        out_len = {"full": n1 + n2 - 1, "same": n1, "valid": n1 - n2 + 1}[mode]
        before = {"full": n2 - 1, "same": n2 - 1 - (n2 - 1) // 2, "valid": 0}[mode]
        pads.append((before, out_len + n2 - 1 - n1 - before))
    return sliding_dot(np.pad(in1, pads), np.rot90(in2, 2))
    # END SOLUTION


def fftconvolve(in1, in2, mode="full"):
    """Convolve two 1-D or 2-D arrays through the FFT, like ``scipy.signal.fftconvolve``.

    By the convolution theorem, convolution is a product of spectra:
    ``in1 * in2 = ifft(fft(in1) * fft(in2))`` once both are zero-padded to the
    full output size (so that the circular convolution the FFT computes does
    not wrap around).

    Parameters
    ----------
    in1 : array_like, 1-D or 2-D
        First input.
    in2 : array_like, with the same number of dimensions as ``in1``
        Second input.
    mode : {'full', 'same', 'valid'}, optional
        Size of the output; 'same' and 'valid' are centred on 'full'.

    Returns
    -------
    ndarray
        The convolution: float (or complex) even for integer inputs, with
        round-off of order ``1e-15`` times the largest value.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 1-D or 2-D array, the two differ
        in dimensions, ``mode`` is unknown, or in 'valid' mode neither input is
        at least as large as the other in every dimension.

    Examples
    --------
    >>> np.round(fftconvolve([1, 2, 3, 4, 5], [1, 2, 3]), 10)
    array([ 1.,  4., 10., 16., 22., 22., 15.])
    """
    mode = check_mode(mode)
    in1 = as_numeric_array(in1, "in1", ndim=(1, 2))
    in2 = as_numeric_array(in2, "in2", ndim=in1.ndim)
    # Like SciPy, axes where either input has length 1 need no FFT: there the
    # product simply broadcasts, and only the other axes count for 'valid'.
    fft_axes = tuple(a for a in range(in1.ndim) if 1 not in (in1.shape[a], in2.shape[a]))
    if mode == "valid" and not check_valid_shapes(in1, in2, axes=fft_axes):
        in1, in2 = in2, in1  # convolution is commutative
    # BEGIN SOLUTION
    if not fft_axes:
        full = in1 * in2
    else:
        fft_shape = [in1.shape[a] + in2.shape[a] - 1 for a in fft_axes]
        if np.iscomplexobj(in1) or np.iscomplexobj(in2):
            forward, inverse = np.fft.fftn, np.fft.ifftn
        else:
            forward, inverse = np.fft.rfftn, np.fft.irfftn
        spectrum = forward(in1, fft_shape, fft_axes) * forward(in2, fft_shape, fft_axes)
        full = inverse(spectrum, fft_shape, fft_axes)
    if mode == "full":
        return full
    if mode == "same":
        out_shape = in1.shape
    else:
        out_shape = [in1.shape[a] - in2.shape[a] + 1 if a in fft_axes else full.shape[a]
                     for a in range(full.ndim)]
    starts = [(f - o) // 2 for f, o in zip(full.shape, out_shape)]
    return full[tuple(slice(s, s + o) for s, o in zip(starts, out_shape))].copy()
    # END SOLUTION


def convolution_matrix(a, n, mode="full"):
    """Toeplitz matrix of convolution with ``a``, like ``scipy.linalg.convolution_matrix``.

    ``convolution_matrix(a, n, mode) @ v`` equals ``numpy.convolve(a, v, mode)``
    for every ``v`` of length ``n``.

    Parameters
    ----------
    a : array_like, 1-D
        The kernel, of length ``m``.
    n : int
        Length of the vectors the matrix multiplies.
    mode : {'full', 'same', 'valid'}, optional
        NumPy's modes (as in SciPy): the matrix has ``m + n - 1`` rows ('full'),
        ``max(m, n)`` rows ('same') or ``max(m, n) - min(m, n) + 1`` rows ('valid').

    Returns
    -------
    ndarray, shape (rows, n)
        Entry ``[i, j]`` is ``a[i + start - j]`` (zero outside ``a``), where
        ``start`` is where the mode's rows begin inside 'full'.

    Raises
    ------
    ValueError
        If ``a`` is not a non-empty numeric 1-D array, ``n`` is not a positive
        integer, or ``mode`` is unknown.

    Examples
    --------
    >>> convolution_matrix([1, 2, 3], 4, mode="valid")
    array([[3, 2, 1, 0],
           [0, 3, 2, 1]])
    """
    mode = check_mode(mode)
    a = as_numeric_array(a, "a", ndim=1)
    n = check_int(n, "n", minimum=1)
    # BEGIN SOLUTION
    m = a.size
    rows = {"full": m + n - 1, "same": max(m, n), "valid": max(m, n) - min(m, n) + 1}[mode]
    start = {"full": 0, "same": (min(m, n) - 1) // 2, "valid": min(m, n) - 1}[mode]
    index = np.arange(rows)[:, None] + start - np.arange(n)[None, :]
    inside = (index >= 0) & (index < m)
    return np.where(inside, a[np.clip(index, 0, m - 1)], 0).astype(a.dtype)
    # END SOLUTION


def convolution_matrix2d(kernel, shape, mode="full"):
    """Build the matrix of 2-D convolution with ``kernel`` (MATLAB's ``convmtx2``).

    ``T @ x.ravel()`` equals ``convolve2d(x, kernel, mode).ravel()`` for every
    array ``x`` of the given shape: a convolution layer is a (sparse, weight-
    shared) fully connected layer.

    Parameters
    ----------
    kernel : array_like, 2-D
        The kernel, of shape ``(kh, kw)``.
    shape : tuple of 2 ints
        Shape ``(h, w)`` of the images the matrix multiplies.
    mode : {'full', 'same', 'valid'}, optional
        As in :func:`convolve2d`.

    Returns
    -------
    ndarray, shape (out_h * out_w, h * w)
        The convolution matrix, with the kernel's dtype.

    Raises
    ------
    ValueError
        If ``kernel`` is not a non-empty numeric 2-D array, ``shape`` is not a pair
        of positive ints, ``mode`` is unknown, or in 'valid' mode neither the image
        nor the kernel is at least as large as the other in every dimension.

    Examples
    --------
    >>> T = convolution_matrix2d([[1, 2], [3, 4]], (3, 3))
    >>> T.shape
    (16, 9)
    >>> x = np.arange(1, 10).reshape(3, 3)
    >>> (T @ x.ravel()).reshape(4, 4)[2, 2]
    np.int64(63)
    """
    mode = check_mode(mode)
    kernel = as_numeric_array(kernel, "kernel", ndim=2)
    if not isinstance(shape, (tuple, list)):
        raise ValueError(f"shape must be a pair of positive ints (h, w), got {shape!r}")
    shape = as_pair(shape, "shape")
    _checked_pair(np.zeros(shape), kernel, 2, mode, names=("shape", "kernel"))
    # BEGIN SOLUTION
    index_maps = []
    for n, k in zip(shape, kernel.shape):
        out_len = {"full": n + k - 1, "same": n, "valid": max(n, k) - min(n, k) + 1}[mode]
        start = {"full": 0, "same": (k - 1) // 2, "valid": min(n, k) - 1}[mode]
        # index[p, i]: which kernel tap links output p to input i along this axis
        index = np.arange(out_len)[:, None] + start - np.arange(n)[None, :]
        index_maps.append((np.clip(index, 0, k - 1), (index >= 0) & (index < k)))
    (rows, row_ok), (cols, col_ok) = index_maps
    taps = kernel[rows[:, None, :, None], cols[None, :, None, :]]
    inside = row_ok[:, None, :, None] & col_ok[None, :, None, :]
    matrix = np.where(inside, taps, 0).astype(kernel.dtype)
    out_h, out_w = rows.shape[0], cols.shape[0]
    return matrix.reshape(out_h * out_w, shape[0] * shape[1])
    # END SOLUTION


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1, strict=False):
    """Length of a convolution's output along one axis (PyTorch's formula).

    ``floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``

    Parameters
    ----------
    n : int
        Input length.
    kernel_size : int
        Kernel length (before dilation).
    stride : int, optional
        Step between windows.
    padding : int, optional
        Zeros added on each side.
    dilation : int, optional
        Spacing between kernel taps; 1 means none.
    strict : bool, optional
        If True, refuse a stride that leaves input positions unvisited at the end
        (the floor drops them), instead of silently flooring.

    Returns
    -------
    int
        The output length.

    Raises
    ------
    ValueError
        If an argument is not an integer in range, the (dilated) kernel does not
        fit in the padded input, or ``strict`` and the stride does not fit.

    Examples
    --------
    >>> conv_output_size(32, 5)
    28
    >>> conv_output_size(7, 3, stride=2)
    3
    >>> conv_output_size(7, 3, stride=3)
    2
    """
    n = check_int(n, "n", minimum=1)
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
    stride = check_int(stride, "stride", minimum=1)
    padding = check_int(padding, "padding", minimum=0)
    dilation = check_int(dilation, "dilation", minimum=1)
    _check_window_fits(n, kernel_size, stride, padding, dilation, strict)
    # BEGIN SOLUTION
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    # END SOLUTION


def _check_window_fits(n, kernel_size, stride, padding, dilation, strict):
    span = dilation * (kernel_size - 1) + 1
    room = n + 2 * padding - span
    if room < 0:
        raise ValueError(
            f"kernel_size: the kernel spans {span} samples (kernel_size={kernel_size}, "
            f"dilation={dilation}), more than the padded input's {n + 2 * padding} "
            f"(n={n}, padding={padding})"
        )
    if strict and room % stride:
        raise ValueError(
            f"stride={stride} does not fit: n + 2*padding - span = {room} is not a "
            f"multiple of the stride, so the last {room % stride} input position(s) "
            "would never be visited"
        )


def pad2d(x, padding, value=0):
    """Pad the last two axes of ``x`` with a constant, like ``torch.nn.functional.pad``.

    Parameters
    ----------
    x : array_like, at least 2-D
        Input, e.g. an image ``(H, W)`` or a batch ``(N, C, H, W)``.
    padding : int or pair of ints
        Zeros added on each side of the height and width axes:
        ``p`` or ``(ph, pw)``.
    value : scalar, optional
        Fill value.

    Returns
    -------
    ndarray
        Shape ``(..., H + 2*ph, W + 2*pw)``, same dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not a numeric array of at least 2 dimensions or ``padding`` is
        not a non-negative int or pair.

    Examples
    --------
    >>> pad2d(np.ones((1, 2), dtype=int), 1)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    x = as_numeric_array(x, "x", allow_empty=True)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions, got ndim={x.ndim}")
    ph, pw = as_pair(padding, "padding", minimum=0)
    # BEGIN SOLUTION
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(x, widths, constant_values=value)
    # END SOLUTION


def dilate_kernel(kernel, dilation):
    """Insert ``dilation - 1`` zeros between the taps of a kernel.

    A kernel of length ``k`` becomes ``dilation * (k - 1) + 1`` long; correlating
    with the dilated kernel is the same as a dilated ("atrous") correlation.
    A 1-D kernel is dilated along its axis, an array of 2 or more dimensions along
    its last two axes.

    Parameters
    ----------
    kernel : array_like, 1-D or more
        The kernel(s).
    dilation : int or pair of ints
        Spacing between taps; 1 returns a copy of the kernel.

    Returns
    -------
    ndarray
        The dilated kernel, same dtype.

    Raises
    ------
    ValueError
        If ``kernel`` is not a non-empty numeric array or ``dilation`` is not a
        positive int (or pair, for 2-D).

    Examples
    --------
    >>> dilate_kernel([1, 2, 3], 2)
    array([1, 0, 2, 0, 3])
    >>> dilate_kernel([[1, 2], [3, 4]], 2)
    array([[1, 0, 2],
           [0, 0, 0],
           [3, 0, 4]])
    """
    kernel = as_numeric_array(kernel, "kernel", ndim=None)
    if kernel.ndim == 0:
        raise ValueError("kernel must have at least 1 dimension, got a scalar")
    if kernel.ndim == 1:
        steps = (check_int(dilation, "dilation", minimum=1),)
    else:
        steps = as_pair(dilation, "dilation")
    # BEGIN SOLUTION
    axes = kernel.shape[-len(steps):]
    dilated_shape = kernel.shape[:-len(steps)] + tuple(d * (k - 1) + 1 for d, k in zip(steps, axes))
    out = np.zeros(dilated_shape, dtype=kernel.dtype)
    out[(...,) + tuple(slice(None, None, d) for d in steps)] = kernel
    return out
    # END SOLUTION
