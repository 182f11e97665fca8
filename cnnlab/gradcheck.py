"""Numerical gradients, to check the backward passes of the layers.

A backward pass is right when its analytic gradient agrees with the central
difference

    df/dx[i] ≈ (f(x + h e_i) - f(x - h e_i)) / (2 h)

to about ``1e-7`` relative error in float64 (the difference itself is off by
``O(h²)`` plus round-off of order ``1e-16 / h``). For a layer whose output is an
array, the scalar differentiated is ``sum(f(x) * df)`` for a random upstream
gradient ``df``: its gradient is exactly what the layer's backward returns when
given ``dout = df``.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
input checks, signatures and docstrings are given.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab._validate import as_numeric_array

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(f, x, h=1e-5, df=None):
    """Central-difference gradient of ``f()`` with respect to the array ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed *in place*, one
    entry at a time: ``x[i] + h``, then ``x[i] - h``, then restored bit for bit
    (also if ``f`` raises). The derivative along entry ``i`` is

    ``(g(x + h e_i) - g(x - h e_i)) / ((x[i] + h) - (x[i] - h))``

    with ``g = f`` if ``df`` is None, else ``g = sum(f() * df)``. The denominator is
    the step as actually stored in ``x``'s dtype (which is ``2 h`` up to rounding;
    exactly so matters for float32 inputs).

    Parameters
    ----------
    f : callable
        ``f()`` returns a scalar (if ``df`` is None) or an array of ``df``'s shape.
        It must read the current values of ``x``.
    x : numpy.ndarray of floats, any shape
        The input to differentiate with respect to; modified during the call and
        restored afterwards.
    h : float, optional
        Step size.
    df : array_like, optional
        Upstream gradient, the shape of ``f()``'s output (CS231n's
        ``eval_numerical_gradient_array``).

    Returns
    -------
    ndarray of float64, shape of ``x``
        The numerical gradient.

    Raises
    ------
    ValueError
        If ``f`` is not callable, ``x`` is not a writable floating-point NumPy
        array, ``h`` is not a positive finite number, ``f()`` does not return a
        scalar (without ``df``) or an array of ``df``'s shape (with ``df``).

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> np.round(numerical_gradient(lambda: np.sum(x ** 2), x), 6)
    array([ 2., -4.,  6.])
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> np.round(numerical_gradient(lambda: W @ x[:2], W, df=np.array([1.0, 10.0])), 6)
    array([[  1.,  -2.],
           [ 10., -20.]])
    >>> x
    array([ 1., -2.,  3.])
    """
    if not callable(f):
        raise ValueError(f"f must be a callable taking no arguments, got {type(f).__name__}")
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = f"an array of dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"x must be a floating-point numpy.ndarray (it is perturbed in place), "
                         f"got {kind}")
    if not x.flags.writeable:
        raise ValueError("x must be writable (it is perturbed in place), got a read-only array")
    if (isinstance(h, bool) or not isinstance(h, numbers.Real) or not np.isfinite(h)
            or h <= 0):
        raise ValueError(f"h must be a positive finite number, got {h!r}")
    value = np.asarray(f())
    if df is None:
        if value.ndim != 0:
            raise ValueError(f"f must return a scalar when df is None, got an array of shape "
                             f"{value.shape}; pass df (the upstream gradient) for an "
                             "array-valued f")
    else:
        df = as_numeric_array(df, "df", allow_empty=True)
        if df.shape != value.shape:
            raise ValueError(f"df must have the shape of f()'s output {value.shape}, "
                             f"got {df.shape}")
    # BEGIN SOLUTION
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index].copy()
        try:
            x[index] = original + h
            upper = float(x[index])
            f_plus = np.array(f(), dtype=np.float64)  # a copy: f may return a buffer it reuses
            x[index] = original - h
            lower = float(x[index])
            f_minus = np.array(f(), dtype=np.float64)
        finally:
            x[index] = original
        change = f_plus - f_minus
        if df is not None:
            change = np.sum(change * df)
        grad[index] = change / (upper - lower)
    return grad
    # END SOLUTION


def relative_error(a, b, eps=1e-8):
    """Largest elementwise relative error between two arrays.

    ``max_i |a[i] - b[i]| / max(|a[i]| + |b[i]|, eps)``

    The floor ``eps`` keeps entries where both values are (nearly) zero from
    dividing by zero: two zeros have error 0, and entries much smaller than
    ``eps`` count in absolute rather than relative terms. Rules of thumb for
    float64 gradient checks: below ``1e-7`` is right, above ``1e-2`` is wrong.

    Parameters
    ----------
    a, b : array_like
        Numeric arrays (or scalars) of the same shape.
    eps : float, optional
        Floor of the denominator (CS231n's ``rel_error`` uses ``1e-8``).

    Returns
    -------
    float
        The largest relative error (NaN if an entry is NaN).

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric array, the shapes differ, or ``eps``
        is not a positive finite number.

    Examples
    --------
    >>> relative_error([1.0, 2.0], [1.0, 3.0])
    0.2
    >>> relative_error(np.zeros(3), np.zeros(3))
    0.0
    """
    a = as_numeric_array(a, "a")
    b = as_numeric_array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if (isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps)
            or eps <= 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    # BEGIN SOLUTION
    a = a.astype(np.float64) if a.dtype.kind in "iu" else a
    b = b.astype(np.float64) if b.dtype.kind in "iu" else b
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps)))
    # END SOLUTION
