"""Layers of modern convolutional networks: 1×1 convolution, global average pooling,
leaky ReLU, He and Glorot initialisation, batch normalisation and dropout.

Every layer is a pair ``out, cache = *_forward(...)`` / ``dx, ... = *_backward(dout,
cache)`` on ``(N, C, H, W)`` arrays, as in :mod:`cnnlab.layers.dense`.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
input checks, signatures, docstrings and the caches' layout are given.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab._validate import as_real_array, check_cache, check_real, checked_dout

__all__ = [
    "batchnorm2d_backward",
    "batchnorm2d_forward",
    "conv1x1_forward",
    "dropout_backward",
    "dropout_forward",
    "fans",
    "global_avg_pool_backward",
    "global_avg_pool_forward",
    "glorot_init",
    "he_init",
    "leaky_relu_backward",
    "leaky_relu_forward",
]

MODES = ("train", "eval")


def _mode(mode) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    return mode


def _number(value, name: str, low=None, high=None, high_open=False) -> float:
    """``value`` as a finite float in ``[low, high]`` (or ``[low, high)``)."""
    value = check_real(value, name)
    if (low is not None and value < low) or (high is not None and (
            value > high or (high_open and value == high))):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value}")
    return value


def _seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed must be None or a non-negative int, got {seed!r}")
    return None if seed is None else int(seed)


# ------------------------------------------------------------------ 1x1 convolution


def conv1x1_forward(x, w, b):
    """A 1×1 convolution: at every pixel, a fully connected layer across the channels.

    ``out[n, f, i, j] = sum_c w[f, c, 0, 0] * x[n, c, i, j] + b[f]``: the same as
    ``conv2d_forward(x, w, b)`` with a 1×1 kernel, computed as one matrix product
    (or ``einsum``) over the channel axis.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input feature maps.
    w : array_like, shape (F, C, 1, 1)
        One 1×1 kernel of ``C`` weights per output channel (PyTorch's layout).
    b : array_like, shape (F,)
        One bias per output channel.

    Returns
    -------
    out : ndarray, shape (N, F, H, W)
    cache : dict
        ``{"x": x, "w": w}``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``w`` not of shape ``(F, C, 1, 1)`` with ``x``'s ``C``, or
        ``b`` not of shape ``(F,)``.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> w = np.array([[1.0, 1.0], [1.0, -1.0]]).reshape(2, 2, 1, 1)
    >>> conv1x1_forward(x, w, np.array([0.0, 10.0]))[0]
    array([[[[ 4.,  6.],
             [ 8., 10.]],
    <BLANKLINE>
            [[ 6.,  6.],
             [ 6.,  6.]]]])
    """
    x = as_real_array(x, "x", ndim=4)
    w = as_real_array(w, "w", ndim=4)
    b = as_real_array(b, "b")
    if w.shape[1:] != (x.shape[1], 1, 1):
        raise ValueError(f"w must have shape (F, C, 1, 1) with C = {x.shape[1]} channels of x, "
                         f"got shape {w.shape}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape (F,) = ({w.shape[0]},), got shape {b.shape}")
    # BEGIN SOLUTION
    n, c, h, width = x.shape
    out = (w[:, :, 0, 0] @ x.reshape(n, c, h * width)).reshape(n, -1, h, width)
    out = out + b.reshape(1, -1, 1, 1)
    # END SOLUTION
    return out, {"x": x, "w": w}


# ------------------------------------------------------------------ global average pooling


def global_avg_pool_forward(x):
    """Global average pooling: the mean of every feature map, ``(N, C, H, W)`` to ``(N, C)``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)

    Returns
    -------
    out : ndarray, shape (N, C)
        ``out[n, c]`` is the mean of ``x[n, c]`` over its ``H·W`` positions.
    cache : dict
        ``{"shape": x.shape}``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real 4-D array.

    Examples
    --------
    >>> global_avg_pool_forward(np.arange(8.0).reshape(1, 2, 2, 2))[0]
    array([[1.5, 5.5]])
    """
    x = as_real_array(x, "x", ndim=4)
    # BEGIN SOLUTION
    out = x.mean(axis=(2, 3))
    # END SOLUTION
    return out, {"shape": x.shape}


def global_avg_pool_backward(dout, cache):
    """Backward of global average pooling: each position gets ``dout[n, c] / (H·W)``.

    Parameters
    ----------
    dout : array_like, shape (N, C)
    cache : dict
        The cache of :func:`global_avg_pool_forward`, ``{"shape": (N, C, H, W)}``.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)

    Raises
    ------
    ValueError
        If ``cache`` is not a global-average-pooling cache or ``dout`` is not ``(N, C)``.

    Examples
    --------
    >>> _, cache = global_avg_pool_forward(np.zeros((1, 1, 2, 2)))
    >>> global_avg_pool_backward(np.array([[4.0]]), cache)
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    check_cache(cache, "global_avg_pool_forward", ("shape",))
    shape = tuple(int(s) for s in cache["shape"])
    if len(shape) != 4:
        raise ValueError(f"cache['shape'] must be an (N, C, H, W) shape, got {shape}")
    dout = checked_dout(dout, shape[:2], "global_avg_pool_forward")
    # BEGIN SOLUTION
    n, c, h, w = shape
    dx = np.broadcast_to(dout[:, :, None, None] / (h * w), shape).copy()
    return dx
    # END SOLUTION


# ------------------------------------------------------------------ leaky ReLU


def leaky_relu_forward(x, negative_slope=0.01):
    """Leaky ReLU: ``x`` where ``x > 0``, ``negative_slope * x`` elsewhere.

    Parameters
    ----------
    x : array_like, any shape
    negative_slope : float, optional
        The slope for negative inputs (PyTorch's default 0.01), at least 0.

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
        ``{"x": x, "negative_slope": negative_slope}``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real array or ``negative_slope`` is not a finite
        number ≥ 0.

    Examples
    --------
    >>> leaky_relu_forward(np.array([-2.0, 0.0, 3.0]), 0.1)[0]
    array([-0.2,  0. ,  3. ])
    """
    x = as_real_array(x, "x")
    negative_slope = _number(negative_slope, "negative_slope", low=0.0)
    # BEGIN SOLUTION
    out = np.where(x > 0, x, negative_slope * x)
    # END SOLUTION
    return out, {"x": x, "negative_slope": negative_slope}


def leaky_relu_backward(dout, cache):
    """Backward of leaky ReLU: ``dout`` where ``x > 0``, ``negative_slope * dout`` elsewhere.

    The derivative at exactly ``x = 0`` is taken as ``negative_slope`` (as in PyTorch).

    Parameters
    ----------
    dout : array_like, shape of ``x``
    cache : dict
        The cache of :func:`leaky_relu_forward`.

    Returns
    -------
    dx : ndarray, shape of ``dout``

    Raises
    ------
    ValueError
        If ``cache`` is not a leaky-ReLU cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> _, cache = leaky_relu_forward(np.array([-2.0, 0.0, 3.0]), 0.1)
    >>> leaky_relu_backward(np.array([5.0, 5.0, 5.0]), cache)
    array([0.5, 0.5, 5. ])
    """
    check_cache(cache, "leaky_relu_forward", ("x", "negative_slope"))
    x = np.asarray(cache["x"])
    dout = checked_dout(dout, x.shape, "leaky_relu_forward")
    # BEGIN SOLUTION
    return np.where(x > 0, dout, cache["negative_slope"] * dout)
    # END SOLUTION


# ------------------------------------------------------------------ initialisation


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight array of this package.

    A fully connected layer's ``w`` has shape ``(D, M)`` (see ``linear_forward``):
    ``fan_in = D``, ``fan_out = M``. A convolution's ``w`` has shape ``(F, C, kh, kw)``:
    every output sees ``C·kh·kw`` inputs and every input reaches ``F·kh·kw`` outputs.

    Examples
    --------
    >>> fans((400, 120)), fans((16, 6, 5, 5))
    ((400, 120), (150, 400))
    """
    if not isinstance(shape, tuple) or len(shape) not in (2, 4) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
            for s in shape):
        raise ValueError(f"shape must be a tuple of 2 or 4 positive ints, (D, M) or "
                         f"(F, C, kh, kw), got {shape!r}")
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    f, c, kh, kw = (int(s) for s in shape)
    return c * kh * kw, f * kh * kw


def he_init(shape, seed=None):
    """He (Kaiming) initialisation for ReLU layers: normal, mean 0, std ``sqrt(2 / fan_in)``.

    Draw with ``np.random.default_rng(seed).normal(0.0, std, size=shape)``, and take
    ``fan_in`` from :func:`fans`.

    Parameters
    ----------
    shape : tuple of ints
        ``(D, M)`` for a fully connected layer or ``(F, C, kh, kw)`` for a convolution.
    seed : int or None, optional

    Returns
    -------
    ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        If ``shape`` is not a tuple of 2 or 4 positive ints, or ``seed`` is not None or a
        non-negative int.

    Examples
    --------
    >>> w = he_init((16, 6, 5, 5), seed=0)
    >>> w.shape, round(float(w.std()), 2), round((2 / 150) ** 0.5, 2)
    ((16, 6, 5, 5), 0.12, 0.12)
    """
    fans(shape)
    seed = _seed(seed)
    # BEGIN SOLUTION
    fan_in, _ = fans(shape)
    return np.random.default_rng(seed).normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    # END SOLUTION


def glorot_init(shape, seed=None):
    """Glorot (Xavier) initialisation: uniform on ``[-a, a]``, ``a = sqrt(6 / (fan_in + fan_out))``.

    Draw with ``np.random.default_rng(seed).uniform(-a, a, size=shape)``, with the fans
    of :func:`fans`. The variance is ``a**2 / 3 = 2 / (fan_in + fan_out)``.

    Parameters
    ----------
    shape : tuple of ints
        ``(D, M)`` or ``(F, C, kh, kw)``.
    seed : int or None, optional

    Returns
    -------
    ndarray of float64, shape ``shape``

    Raises
    ------
    ValueError
        As :func:`he_init`.

    Examples
    --------
    >>> w = glorot_init((400, 120), seed=0)
    >>> bool(np.abs(w).max() <= (6 / 520) ** 0.5)
    True
    """
    fans(shape)
    seed = _seed(seed)
    # BEGIN SOLUTION
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape)
    # END SOLUTION


# ------------------------------------------------------------------ batch normalisation


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, mode="train",
                        momentum=0.1, eps=1e-5):
    """Batch normalisation of feature maps (PyTorch's ``BatchNorm2d``), one channel at a time.

    **Train mode**: with ``mu`` and ``var`` the mean and the (biased) variance of each
    channel over the batch and the positions (axes 0, 2 and 3, ``M = N·H·W`` numbers),
    ``x_hat = (x - mu) / sqrt(var + eps)`` and ``out = gamma * x_hat + beta`` (per
    channel). The running statistics are updated **in place**:
    ``running_mean = (1 - momentum) * running_mean + momentum * mu`` and
    ``running_var = (1 - momentum) * running_var + momentum * var * M / (M - 1)``
    (the unbiased variance, as in PyTorch).

    **Eval mode**: the running statistics take the place of ``mu`` and ``var``, and
    nothing is updated.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    gamma, beta : array_like, shape (C,)
        Scale and shift, one per channel.
    running_mean, running_var : ndarray of floats, shape (C,)
        The running statistics, updated in place in train mode.
    mode : {"train", "eval"}, optional
    momentum : float, optional
        In ``[0, 1]``.
    eps : float, optional
        Added to the variance, > 0.

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : dict
        ``{"mode": mode, "x_hat": x_hat, "inv_std": 1 / sqrt(var + eps), "gamma": gamma}``
        (``inv_std`` of shape ``(C,)``; in eval mode from the running variance).

    Raises
    ------
    ValueError
        If ``x`` is not a real 4-D array; ``gamma``, ``beta``, ``running_mean`` or
        ``running_var`` is not of shape ``(C,)`` (the running statistics must be float
        arrays, to be updated in place); ``mode``, ``momentum`` or ``eps`` is invalid; or,
        in train mode, ``N·H·W < 2``.

    Examples
    --------
    >>> x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1)
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> out, _ = batchnorm2d_forward(x, np.ones(1), np.zeros(1), mean, var, eps=0.0)
    >>> np.round(out.ravel(), 4)
    array([-1.3416, -0.4472,  0.4472,  1.3416])
    >>> mean, np.round(var, 4)
    (array([0.4]), array([1.5667]))
    """
    x = as_real_array(x, "x", ndim=4)
    c = x.shape[1]
    gamma, beta = as_real_array(gamma, "gamma", ndim=1), as_real_array(beta, "beta", ndim=1)
    for name, value in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                        ("running_var", running_var)):
        if np.shape(value) != (c,):
            raise ValueError(f"{name} must have shape (C,) = ({c},), one entry per channel of "
                             f"x, got shape {np.shape(value)}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            dtype = f" of dtype {value.dtype}" if hasattr(value, "dtype") else ""
            raise ValueError(f"{name} must be a float ndarray (it is updated in place), got "
                             f"{type(value).__name__}{dtype}")
    mode = _mode(mode)
    momentum = _number(momentum, "momentum", 0.0, 1.0)
    eps = _number(eps, "eps", 0.0)
    if mode == "train" and x.shape[0] * x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"x must hold at least 2 values per channel in train mode "
                         f"(N·H·W >= 2), got shape {x.shape}")
    # BEGIN SOLUTION
    if mode == "train":
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mu = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * m / (m - 1)
    else:
        mu, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)
    out = gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)
    return out, {"mode": mode, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}
    # END SOLUTION


def batchnorm2d_backward(dout, cache):
    """Backward of :func:`batchnorm2d_forward`: ``(dx, dgamma, dbeta)``.

    With sums over axes 0, 2, 3 (``M = N·H·W`` terms), ``dbeta = sum(dout)`` and
    ``dgamma = sum(dout * x_hat)``. In train mode ``mu`` and ``var`` depend on ``x``, and

    ``dx = gamma * inv_std / M * (M * dout - sum(dout) - x_hat * sum(dout * x_hat))``;

    in eval mode they are constants and ``dx = gamma * inv_std * dout``.

    Parameters
    ----------
    dout : array_like, shape (N, C, H, W)
    cache : dict
        The cache of :func:`batchnorm2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)

    Raises
    ------
    ValueError
        If ``cache`` is not a batch-norm cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1)
    >>> _, cache = batchnorm2d_forward(x, np.ones(1), np.zeros(1), np.zeros(1), np.ones(1))
    >>> dx, dgamma, dbeta = batchnorm2d_backward(np.ones((4, 1, 1, 1)), cache)
    >>> np.abs(dx).max() < 1e-12, dbeta
    (np.True_, array([4.]))
    """
    check_cache(cache, "batchnorm2d_forward", ("mode", "x_hat", "inv_std", "gamma"))
    x_hat = np.asarray(cache["x_hat"])
    dout = checked_dout(dout, x_hat.shape, "batchnorm2d_forward")
    mode = _mode(cache["mode"])
    # BEGIN SOLUTION
    axes = (0, 2, 3)
    scale = (np.asarray(cache["gamma"]) * np.asarray(cache["inv_std"])).reshape(1, -1, 1, 1)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    if mode == "eval":
        return scale * dout, dgamma, dbeta
    m = x_hat.shape[0] * x_hat.shape[2] * x_hat.shape[3]
    dx = scale / m * (m * dout - dbeta.reshape(1, -1, 1, 1)
                      - x_hat * dgamma.reshape(1, -1, 1, 1))
    return dx, dgamma, dbeta
    # END SOLUTION


# ------------------------------------------------------------------ dropout


def dropout_forward(x, p=0.5, mode="train", seed=None):
    """Inverted dropout: in train mode, zero each entry with probability ``p`` and divide the
    survivors by ``1 - p``; in eval mode, return ``x`` unchanged.

    The mask is ``np.random.default_rng(seed).random(x.shape) >= p`` (True: kept), so that
    a seed gives one mask.

    Parameters
    ----------
    x : array_like, any shape
    p : float, optional
        Probability of dropping an entry, in ``[0, 1)``.
    mode : {"train", "eval"}, optional
    seed : int or None, optional

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
        ``{"mode": mode, "p": p, "mask": mask}`` (``mask`` is None in eval mode).

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real array, ``p`` is not in ``[0, 1)``, ``mode`` is not
        'train' or 'eval', or ``seed`` is not None or a non-negative int.

    Examples
    --------
    >>> out, cache = dropout_forward(np.ones(6), p=0.5, seed=0)
    >>> out
    array([2., 0., 0., 0., 2., 2.])
    >>> dropout_forward(np.ones(3), p=0.5, mode="eval")[0]
    array([1., 1., 1.])
    """
    x = as_real_array(x, "x")
    p = _number(p, "p", 0.0, 1.0, high_open=True)
    mode = _mode(mode)
    seed = _seed(seed)
    # BEGIN SOLUTION
    if mode == "eval":
        return x.copy(), {"mode": mode, "p": p, "mask": None}
    mask = np.random.default_rng(seed).random(x.shape) >= p
    out = x * mask / (1.0 - p)
    return out, {"mode": mode, "p": p, "mask": mask}
    # END SOLUTION


def dropout_backward(dout, cache):
    """Backward of inverted dropout: ``dout * mask / (1 - p)`` in train mode, ``dout`` in eval.

    Parameters
    ----------
    dout : array_like
    cache : dict
        The cache of :func:`dropout_forward`.

    Returns
    -------
    dx : ndarray, shape of ``dout``

    Raises
    ------
    ValueError
        If ``cache`` is not a dropout cache or ``dout`` does not have the mask's shape.

    Examples
    --------
    >>> _, cache = dropout_forward(np.ones(6), p=0.5, seed=0)
    >>> dropout_backward(np.arange(6.0), cache)
    array([ 0.,  0.,  0.,  0.,  8., 10.])
    """
    check_cache(cache, "dropout_forward", ("mode", "p", "mask"))
    mode = _mode(cache["mode"])
    dout = as_real_array(dout, "dout")
    if mode == "train":
        dout = checked_dout(dout, np.shape(cache["mask"]), "dropout_forward")
    # BEGIN SOLUTION
    if mode == "eval":
        return dout.copy()
    return dout * cache["mask"] / (1.0 - cache["p"])
    # END SOLUTION
