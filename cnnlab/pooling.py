"""Pooling layers and the Kronecker upsampling that back-propagates through them.

Arrays follow PyTorch's layout: a batch of feature maps is ``(N, C, H, W)``.
Every forward returns ``(out, cache)`` and every backward takes ``(dout, cache)``.

A pooling window of ``size = (kh, kw)`` moves by ``stride = (sh, sw)`` (by default
the window size, so windows tile the input without overlapping). The output has

    OH = floor((H - kh) / sh) + 1,   OW = floor((W - kw) / sw) + 1

rows and columns, as in ``torch.nn.functional.max_pool2d``: rows and columns that
no whole window reaches are dropped, and get zero gradient.

The vectorization trick used throughout: the ``kh * kw`` strided slices
``x[:, :, i::sh, j::sw]`` (cropped to ``OH x OW``) hold, at position ``(p, q)``,
tap ``(i, j)`` of window ``(p, q)``. A pooling is a reduction over these few
slices, and its backward adds into the same slices of ``dx``: loops run over the
window's taps, never over pixels or images.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
input checks, signatures, docstrings and the caches are given.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_numeric_array, as_pair, as_real_array, check_cache, checked_dout

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "upsample",
]


def _checked_pooling(x, size, stride):
    """Validate the arguments of a pooling forward; return ``x, size, stride``."""
    x = as_real_array(x, "x", ndim=4)
    size = as_pair(size, "size")
    stride = size if stride is None else as_pair(stride, "stride")
    height, width = x.shape[2:]
    if size[0] > height or size[1] > width:
        raise ValueError(
            f"size: the {size[0]}x{size[1]} pooling window does not fit in the "
            f"{height}x{width} input (x.shape={x.shape})"
        )
    return x, size, stride


def _checked_backward(dout, cache, forward: str, keys: tuple[str, ...]):
    """Check that ``cache`` comes from ``forward`` and that ``dout`` has the output's shape."""
    check_cache(cache, forward, keys)
    return checked_dout(dout, cache["out_shape"], ndim=4)


def upsample(x, size):
    """Kronecker upsampling of the last two axes: ``up(x) = x ⊗ 1_{kh x kw}``.

    Every entry is repeated into a ``kh x kw`` block. On a 2-D array this is
    ``numpy.kron(x, numpy.ones((kh, kw)))``; leading axes (e.g. ``N, C``) are
    kept. It is the backward of average pooling with non-overlapping windows
    (up to the factor ``1 / (kh * kw)``).

    Parameters
    ----------
    x : array_like, at least 2-D
        Input of shape ``(..., H, W)``.
    size : int or pair of ints
        Block size ``n`` (an ``n x n`` block) or ``(kh, kw)``.

    Returns
    -------
    ndarray
        Shape ``(..., H * kh, W * kw)``, same dtype as ``x``;
        ``out[..., i, j] = x[..., i // kh, j // kw]``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty numeric array of at least 2 dimensions or
        ``size`` is not a positive int or pair of them.

    Examples
    --------
    The lecture's sensitivity map, upsampled for a 2x2 pooling:

    >>> upsample(np.array([[1, 3], [2, 4]]), 2)
    array([[1, 1, 3, 3],
           [1, 1, 3, 3],
           [2, 2, 4, 4],
           [2, 2, 4, 4]])
    >>> upsample(np.ones((2, 3, 1, 2)), (2, 1)).shape
    (2, 3, 2, 2)
    """
    x = as_numeric_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions, got ndim={x.ndim} "
                         f"(shape {x.shape})")
    kh, kw = as_pair(size, "size")
    # BEGIN SOLUTION
    return np.repeat(np.repeat(x, kh, axis=-2), kw, axis=-1)
    # END SOLUTION


def max_pool2d_forward(x, size=2, stride=None):
    """Max pooling: the largest value of each ``kh x kw`` window.

    ``out[n, c, p, q] = max_{i < kh, j < kw} x[n, c, p * sh + i, q * sw + j]``,
    like ``torch.nn.functional.max_pool2d(x, size, stride)``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input feature maps (integers or floats).
    size : int or pair of ints, optional
        Window size ``k`` or ``(kh, kw)``.
    stride : int or pair of ints, optional
        Step between windows ``(sh, sw)``; defaults to ``size``. A stride smaller
        than the window gives overlapping windows.

    Returns
    -------
    out : ndarray, shape (N, C, OH, OW)
        ``OH = (H - kh) // sh + 1``, ``OW = (W - kw) // sw + 1``; same dtype as ``x``.
    cache : dict
        ``{"x": x, "out": out, "out_shape": out.shape, "size": (kh, kw),
        "stride": (sh, sw)}``, for :func:`max_pool2d_backward`.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real 4-D array, ``size`` or ``stride`` is not
        a positive int or pair, or the window is larger than the input.

    Examples
    --------
    >>> x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    >>> out, cache = max_pool2d_forward(x.reshape(1, 1, 4, 4))
    >>> out[0, 0]
    array([[6, 8],
           [3, 4]])
    >>> max_pool2d_forward(np.zeros((2, 3, 7, 9)), size=3, stride=2)[0].shape
    (2, 3, 3, 4)
    """
    x, size, stride = _checked_pooling(x, size, stride)
    # BEGIN SOLUTION
    (kh, kw), (sh, sw) = size, stride
    oh = (x.shape[2] - kh) // sh + 1
    ow = (x.shape[3] - kw) // sw + 1
    # tap(i, j)[n, c, p, q] is x[n, c, p * sh + i, q * sw + j]: tap (i, j) of every window.
    def tap(i, j):
        return x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    out = tap(0, 0).copy()
    for i in range(kh):
        for j in range(kw):
            if i or j:
                np.maximum(out, tap(i, j), out=out)
    # END SOLUTION
    cache = {"x": x, "out": out, "out_shape": out.shape, "size": size, "stride": stride}
    return out, cache


def max_pool2d_backward(dout, cache):
    """Backward of max pooling: each window's gradient goes to its maximum.

    ``dx[n, c, p * sh + i, q * sw + j] += dout[n, c, p, q]`` for the tap ``(i, j)``
    holding the maximum of window ``(p, q)``; every other entry gets nothing
    ("in max pooling the unit which was chosen as the max receives all the
    error"). Where windows overlap, the gradients of the windows add up.

    **Ties**: if several entries of a window equal its maximum, the whole
    gradient goes to the *first* of them in row-major order inside the window
    (smallest ``i``, then smallest ``j``), as NumPy's ``argmax`` would pick. The
    result is still a valid subgradient, and the total gradient is conserved.
    A window whose maximum is NaN passes no gradient.

    Parameters
    ----------
    dout : array_like, shape (N, C, OH, OW)
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`max_pool2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Gradient with respect to ``x``, dtype ``numpy.result_type(x, dout)``.

    Raises
    ------
    ValueError
        If ``cache`` is not a max-pooling cache or ``dout`` does not have the
        forward output's shape.

    Examples
    --------
    The lecture's 4x4 input, with the sensitivity ``[[1, 3], [2, 4]]`` above it:

    >>> x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    >>> _, cache = max_pool2d_forward(x.reshape(1, 1, 4, 4))
    >>> max_pool2d_backward(np.array([[[[1, 3], [2, 4]]]]), cache)[0, 0]
    array([[0, 0, 0, 0],
           [0, 1, 0, 3],
           [2, 0, 0, 0],
           [0, 0, 0, 4]])
    """
    keys = ("x", "out", "out_shape", "size", "stride")
    dout = _checked_backward(dout, cache, "max_pool2d_forward", keys)
    # BEGIN SOLUTION
    x, out = cache["x"], cache["out"]
    (kh, kw), (sh, sw) = cache["size"], cache["stride"]
    oh, ow = out.shape[2:]
    def tap(a, i, j):
        return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    free = np.ones(out.shape, dtype=bool)  # windows whose maximum has not been found yet
    overlap = sh < kh or sw < kw  # can a pixel be the maximum of several windows?
    for i in range(kh):  # taps in row-major order: the first maximum wins
        for j in range(kw):
            hit = tap(x, i, j) == out
            hit &= free
            free ^= hit
            target = tap(dx, i, j)  # a view: writing into it writes into dx
            if overlap:
                target += dout * hit
            else:  # each pixel is in one window at most: write, no temporary, no add
                np.multiply(dout, hit, out=target)
    return dx
    # END SOLUTION


def avg_pool2d_forward(x, size=2, stride=None):
    """Average (mean) pooling: the mean of each ``kh x kw`` window.

    ``out[n, c, p, q] = mean_{i < kh, j < kw} x[n, c, p * sh + i, q * sw + j]``,
    like ``torch.nn.functional.avg_pool2d(x, size, stride)``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input feature maps (integers or floats).
    size : int or pair of ints, optional
        Window size ``k`` or ``(kh, kw)``.
    stride : int or pair of ints, optional
        Step between windows ``(sh, sw)``; defaults to ``size``.

    Returns
    -------
    out : ndarray, shape (N, C, OH, OW)
        ``OH = (H - kh) // sh + 1``, ``OW = (W - kw) // sw + 1``. Floating point:
        ``x``'s dtype if it is a float, else float64.
    cache : dict
        ``{"x": x, "out_shape": out.shape, "size": (kh, kw), "stride": (sh, sw)}``,
        for :func:`avg_pool2d_backward`.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real 4-D array, ``size`` or ``stride`` is not
        a positive int or pair, or the window is larger than the input.

    Examples
    --------
    >>> x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    >>> avg_pool2d_forward(x.reshape(1, 1, 4, 4))[0][0, 0]
    array([[3.25, 5.25],
           [2.  , 2.  ]])
    """
    x, size, stride = _checked_pooling(x, size, stride)
    # BEGIN SOLUTION
    (kh, kw), (sh, sw) = size, stride
    oh = (x.shape[2] - kh) // sh + 1
    ow = (x.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (oh, ow), dtype=np.result_type(x.dtype, 1.0))
    for i in range(kh):
        for j in range(kw):
            out += x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    out /= kh * kw
    # END SOLUTION
    cache = {"x": x, "out_shape": out.shape, "size": size, "stride": stride}
    return out, cache


def avg_pool2d_backward(dout, cache):
    """Backward of average pooling: each window spreads its gradient evenly.

    Every entry of window ``(p, q)`` receives ``dout[n, c, p, q] / (kh * kw)``;
    where windows overlap the shares add up, and rows or columns no window
    reaches get zero. For non-overlapping windows (``stride == size``) this is
    the lecture's ``upsample(dout) / (kh * kw)``, padded with zeros to ``x``'s shape.

    Parameters
    ----------
    dout : array_like, shape (N, C, OH, OW)
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`avg_pool2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Gradient with respect to ``x``: floating point,
        ``numpy.result_type(x, dout, 1.0)``.

    Raises
    ------
    ValueError
        If ``cache`` is not an average-pooling cache or ``dout`` does not have the
        forward output's shape.

    Examples
    --------
    The lecture's sensitivity ``[[1, 3], [2, 4]]`` through a 2x2 mean pooling:

    >>> _, cache = avg_pool2d_forward(np.zeros((1, 1, 4, 4)))
    >>> avg_pool2d_backward(np.array([[[[1, 3], [2, 4]]]]), cache)[0, 0]
    array([[0.25, 0.25, 0.75, 0.75],
           [0.25, 0.25, 0.75, 0.75],
           [0.5 , 0.5 , 1.  , 1.  ],
           [0.5 , 0.5 , 1.  , 1.  ]])
    """
    keys = ("x", "out_shape", "size", "stride")
    dout = _checked_backward(dout, cache, "avg_pool2d_forward", keys)
    # BEGIN SOLUTION
    x = cache["x"]
    (kh, kw), (sh, sw) = cache["size"], cache["stride"]
    oh, ow = dout.shape[2:]
    dtype = np.result_type(x.dtype, dout.dtype, 1.0)
    share = dout.astype(dtype) / (kh * kw)
    dx = np.zeros(x.shape, dtype=dtype)
    if (sh, sw) == (kh, kw):  # windows tile the input: Kronecker upsampling
        dx[:, :, :oh * kh, :ow * kw] = upsample(share, (kh, kw))
        return dx
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += share
    return dx
    # END SOLUTION
