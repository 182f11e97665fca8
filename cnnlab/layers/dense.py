"""Fully connected layers, activations, flattening and the softmax cross-entropy loss.

Every layer is a pair of functions: ``*_forward(x, ...)`` returns ``(out, cache)``
and ``*_backward(dout, cache)`` returns the gradient(s), where ``dout`` is the
gradient of the loss with respect to ``out`` (the "sensitivity" ``δ`` of the
lecture) and ``cache`` holds what the forward pass saved for the backward pass.

The fully connected layer computes ``z = x @ w + b`` for a batch of row vectors
``x`` of shape ``(N, D)``. With ``δ = ∂J/∂z`` (shape ``(N, M)``), the lecture's
equations read, batched:

* ``∂J/∂x = δ @ w.T`` (the sensitivity handed to the layer below),
* ``∂J/∂w = x.T @ δ`` (``a^(l-1) (δ^l)^T``, summed over the batch),
* ``∂J/∂b = δ`` summed over the batch.

An activation ``a = f(z)`` multiplies the sensitivity by ``f'(z)``, elementwise.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
input checks, signatures, docstrings and the caches' layout are given.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_numeric_array, as_real_array, check_cache, checked_dout

__all__ = [
    "flatten",
    "flatten_backward",
    "flatten_forward",
    "linear_backward",
    "linear_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_cross_entropy",
    "tanh_backward",
    "tanh_forward",
]


# --------------------------------------------------------------------------- linear


def linear_forward(x, w, b):
    """Forward pass of a fully connected (affine) layer: ``out = x @ w + b``.

    Parameters
    ----------
    x : array_like, shape (N, D)
        A batch of ``N`` input vectors (flatten images first, see :func:`flatten_forward`).
    w : array_like, shape (D, M)
        Weights: column ``m`` holds the weights of output unit ``m``.
    b : array_like, shape (M,)
        One bias per output unit.

    Returns
    -------
    out : ndarray, shape (N, M)
        ``x @ w + b``, dtype ``numpy.result_type(x, w, b)`` (float32 stays float32).
    cache : dict
        ``{"x": x, "w": w}``, for :func:`linear_backward`.

    Raises
    ------
    ValueError
        If ``x`` or ``w`` is not a non-empty real 2-D array, ``x.shape[1] != w.shape[0]``
        or ``b`` does not have shape ``(M,)``.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    >>> out, cache = linear_forward(x, w, np.array([0.0, 1.0, 10.0]))
    >>> out
    array([[ 2.,  5.,  9.],
           [ 5.,  9.,  7.],
           [ 8., 13.,  5.]])
    """
    x = as_real_array(x, "x", ndim=2)
    w = as_real_array(w, "w", ndim=2)
    b = as_real_array(b, "b")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has D={x.shape[1]} features per row but w expects D={w.shape[0]}: "
                         f"x.shape[1] must equal w.shape[0], got x.shape={x.shape} and "
                         f"w.shape={w.shape}")
    if b.shape != (w.shape[1],):
        raise ValueError(f"b must have shape (M,) = ({w.shape[1]},), one bias per column of w, "
                         f"got shape {b.shape}")
    # BEGIN SOLUTION
    out = x @ w + b
    # END SOLUTION
    cache = {"x": x, "w": w}
    return out, cache


def linear_backward(dout, cache):
    """Backward pass of a fully connected layer.

    Parameters
    ----------
    dout : array_like, shape (N, M)
        Upstream gradient ``δ = ∂J/∂out``.
    cache : dict
        The cache returned by :func:`linear_forward`.

    Returns
    -------
    dx : ndarray, shape (N, D)
        ``δ @ w.T``.
    dw : ndarray, shape (D, M)
        ``x.T @ δ`` (summed over the batch).
    db : ndarray, shape (M,)
        ``δ`` summed over the batch.

    Raises
    ------
    ValueError
        If ``cache`` is not a linear-layer cache or ``dout`` does not have the
        forward output's shape.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> w = np.array([[1.0, -1.0, 0.0], [2.0, 0.0, 1.0]])
    >>> _, cache = linear_forward(x, w, np.zeros(3))
    >>> dx, dw, db = linear_backward(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]), cache)
    >>> dx
    array([[ 1.,  2.],
           [-1.,  1.]])
    >>> dw
    array([[1., 3., 3.],
           [2., 4., 4.]])
    >>> db
    array([1., 1., 1.])
    """
    check_cache(cache, "linear_forward", ("x", "w"))
    dout = checked_dout(dout, (cache["x"].shape[0], cache["w"].shape[1]), "linear_forward")
    # BEGIN SOLUTION
    x, w = cache["x"], cache["w"]
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
    # END SOLUTION


# ---------------------------------------------------------------------- activations


def relu_forward(x):
    """Rectified linear unit: ``out = max(x, 0)``, elementwise.

    Parameters
    ----------
    x : array_like, any shape
        Input (pre-activations ``z``).

    Returns
    -------
    out : ndarray, shape of ``x``
        ``numpy.maximum(x, 0)``, ``x``'s dtype.
    cache : dict
        ``{"out": out}``: the unit is active where ``out > 0``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real array.

    Examples
    --------
    >>> relu_forward(np.array([-2.0, 0.0, 3.0]))[0]
    array([0., 0., 3.])
    """
    x = as_real_array(x, "x")
    # BEGIN SOLUTION
    out = np.maximum(x, 0)
    # END SOLUTION
    return out, {"out": out}


def relu_backward(dout, cache):
    """Backward of ReLU: ``dx = dout * (x > 0)``.

    The derivative at exactly ``x = 0`` is taken as 0 (as in PyTorch).

    Parameters
    ----------
    dout : array_like
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`relu_forward`.

    Returns
    -------
    dx : ndarray, shape of ``dout``
        ``dout`` where the unit was active, 0 elsewhere; ``dout``'s dtype.

    Raises
    ------
    ValueError
        If ``cache`` is not a ReLU cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> _, cache = relu_forward(np.array([-2.0, 0.0, 3.0]))
    >>> relu_backward(np.array([5.0, 5.0, 5.0]), cache)
    array([0., 0., 5.])
    """
    check_cache(cache, "relu_forward", ("out",))
    dout = checked_dout(dout, cache["out"].shape, "relu_forward")
    # BEGIN SOLUTION
    return np.where(cache["out"] > 0, dout, 0).astype(dout.dtype, copy=False)
    # END SOLUTION


def tanh_forward(x):
    """Hyperbolic tangent activation: ``out = tanh(x)``, elementwise.

    Parameters
    ----------
    x : array_like, any shape
        Input (pre-activations).

    Returns
    -------
    out : ndarray, shape of ``x``
        ``numpy.tanh(x)`` (float; float32 stays float32).
    cache : dict
        ``{"out": out}``: the derivative is ``1 - out**2``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real array.

    Examples
    --------
    >>> np.round(tanh_forward(np.array([-1.0, 0.0, 2.0]))[0], 4)
    array([-0.7616,  0.    ,  0.964 ])
    """
    x = as_real_array(x, "x")
    # BEGIN SOLUTION
    out = np.tanh(x)
    # END SOLUTION
    return out, {"out": out}


def tanh_backward(dout, cache):
    """Backward of tanh: ``dx = dout * (1 - tanh(x)**2)``.

    Parameters
    ----------
    dout : array_like
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`tanh_forward`.

    Returns
    -------
    dx : ndarray, shape of ``dout``

    Raises
    ------
    ValueError
        If ``cache`` is not a tanh cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> _, cache = tanh_forward(np.array([0.0, 1.0]))
    >>> np.round(tanh_backward(np.array([1.0, 1.0]), cache), 4)
    array([1.   , 0.42])
    """
    check_cache(cache, "tanh_forward", ("out",))
    dout = checked_dout(dout, cache["out"].shape, "tanh_forward")
    # BEGIN SOLUTION
    out = cache["out"]
    return dout * (1 - out * out)
    # END SOLUTION


def sigmoid_forward(x):
    """Logistic sigmoid: ``out = 1 / (1 + exp(-x))``, elementwise.

    Computed as ``exp(-log(1 + exp(-x)))`` with ``numpy.logaddexp``, which neither
    overflows for large negative ``x`` nor rounds small outputs to 0 too early.

    Parameters
    ----------
    x : array_like, any shape
        Input (pre-activations).

    Returns
    -------
    out : ndarray, shape of ``x``
        Values in ``[0, 1]`` (float; float32 stays float32).
    cache : dict
        ``{"out": out}``: the derivative is ``out * (1 - out)``.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty real array.

    Examples
    --------
    >>> np.round(sigmoid_forward(np.array([-1000.0, 0.0, 2.0]))[0], 4)
    array([0.    , 0.5   , 0.8808])
    """
    x = as_real_array(x, "x")
    # BEGIN SOLUTION
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    out = np.exp(-np.logaddexp(0, -x))
    # END SOLUTION
    return out, {"out": out}


def sigmoid_backward(dout, cache):
    """Backward of the sigmoid: ``dx = dout * out * (1 - out)``.

    Parameters
    ----------
    dout : array_like
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`sigmoid_forward`.

    Returns
    -------
    dx : ndarray, shape of ``dout``

    Raises
    ------
    ValueError
        If ``cache`` is not a sigmoid cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> _, cache = sigmoid_forward(np.array([0.0]))
    >>> sigmoid_backward(np.array([1.0]), cache)
    array([0.25])
    """
    check_cache(cache, "sigmoid_forward", ("out",))
    dout = checked_dout(dout, cache["out"].shape, "sigmoid_forward")
    # BEGIN SOLUTION
    out = cache["out"]
    return dout * out * (1 - out)
    # END SOLUTION


# ------------------------------------------------------------------------- flatten


def flatten(x):
    """Flatten every sample of a batch into a row vector: ``(N, ...)`` to ``(N, D)``.

    Parameters
    ----------
    x : array_like, at least 1-D
        A batch whose first axis indexes the samples.

    Returns
    -------
    ndarray, shape (N, D)
        ``x.reshape(N, -1)``: a view when ``x`` is contiguous, C order
        (channel, then row, then column for ``(N, C, H, W)`` feature maps).

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty numeric array of at least 1 dimension.

    Examples
    --------
    >>> flatten(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """
    x = as_numeric_array(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (the batch axis), got a scalar {x!r}")
    # BEGIN SOLUTION
    return x.reshape(x.shape[0], -1)
    # END SOLUTION


def flatten_forward(x):
    """Forward of the flattening layer between the convolutions and the dense layers.

    Parameters
    ----------
    x : array_like, shape (N, ...)
        A batch of feature maps.

    Returns
    -------
    out : ndarray, shape (N, D)
        :func:`flatten` of ``x``.
    cache : dict
        ``{"shape": x.shape}``, for :func:`flatten_backward`.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty numeric array of at least 1 dimension.

    Examples
    --------
    >>> out, cache = flatten_forward(np.arange(8).reshape(2, 2, 2))
    >>> out
    array([[0, 1, 2, 3],
           [4, 5, 6, 7]])
    """
    out = flatten(x)
    return out, {"shape": np.shape(x)}


def flatten_backward(dout, cache):
    """Backward of flattening: reshape the gradient back to the input's shape.

    Parameters
    ----------
    dout : array_like, shape (N, D)
        Upstream gradient.
    cache : dict
        The cache returned by :func:`flatten_forward`.

    Returns
    -------
    dx : ndarray, the shape of the forward input

    Raises
    ------
    ValueError
        If ``cache`` is not a flatten cache or ``dout`` has the wrong shape.

    Examples
    --------
    >>> _, cache = flatten_forward(np.zeros((2, 3, 4, 4)))
    >>> flatten_backward(np.ones((2, 48)), cache).shape
    (2, 3, 4, 4)
    """
    check_cache(cache, "flatten_forward", ("shape",))
    shape = tuple(cache["shape"])
    dout = checked_dout(dout, (shape[0], int(np.prod(shape[1:], dtype=np.int64))),
                         "flatten_forward")
    # BEGIN SOLUTION
    return dout.reshape(shape)
    # END SOLUTION


# ---------------------------------------------------------------------------- loss


def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy loss of a batch, and its gradient.

    With ``p = softmax(scores)`` row by row, the loss is
    ``J = -(1/N) sum_n log p[n, y[n]]`` and its gradient is
    ``∂J/∂scores = (p - onehot(y)) / N`` (the lecture's output sensitivity
    ``1(y = i) - p(y = i)``, with the opposite sign since we minimize ``J``).
    Computed stably: the row maximum is subtracted before exponentiating and
    ``log p = s - log(sum(exp(s)))`` (log-sum-exp), so large scores neither
    overflow nor give ``log(0)``.

    Parameters
    ----------
    scores : array_like, shape (N, C)
        Unnormalized class scores (logits), real.
    y : array_like of ints, shape (N,)
        True labels, each in ``0 .. C-1``.

    Returns
    -------
    loss : float
        The mean cross-entropy, as a Python float.
    dscores : ndarray, shape (N, C)
        Gradient of the loss with respect to ``scores`` (float; float32 stays float32).

    Raises
    ------
    ValueError
        If ``scores`` is not a non-empty real 2-D array, ``y`` is not a 1-D integer
        array of length N, or a label is outside ``0 .. C-1``.

    Examples
    --------
    >>> loss, dscores = softmax_cross_entropy(np.array([[2.0, 1.0, 0.1]]), np.array([0]))
    >>> round(loss, 4)
    0.417
    >>> np.round(dscores, 4)
    array([[-0.341 ,  0.2424,  0.0986]])
    >>> loss, _ = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    >>> loss
    1000.0
    """
    scores = as_real_array(scores, "scores", ndim=2)
    y = as_numeric_array(y, "y", ndim=1)
    if y.dtype.kind not in "iu":
        raise ValueError(f"y must be an array of integer class labels, got dtype {y.dtype}")
    n, classes = scores.shape
    if y.shape[0] != n:
        raise ValueError(f"y must have one label per row of scores: scores has N={n} rows, "
                         f"got {y.shape[0]} labels")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"y must hold class labels in 0..{classes - 1} (scores has C={classes} "
                         f"columns), got y[{first}]={int(y[first])}")
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    # BEGIN SOLUTION
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_sum
    loss = -float(log_probs[rows, y].mean(dtype=np.float64))
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores
    # END SOLUTION
