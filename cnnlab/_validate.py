"""Input checks shared by every cnnlab module.

Each helper raises ``ValueError`` whose message names the offending argument,
says what was expected and shows what was given, so that a student sees
``stride must be a positive int or a pair of positive ints, got 0`` instead of a
traceback from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np

MODES = ("full", "same", "valid")


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_numeric_array(value, name: str, ndim: int | tuple[int, ...] | None = None,
                     allow_empty: bool = False, layout: str = "") -> np.ndarray:
    """Return ``value`` as a NumPy array of integers, floats or complex numbers.

    ``ndim`` is the required number of dimensions (an int or a tuple of allowed
    values), ``layout`` (e.g. ``"(N, C, H, W)"``) what its axes mean, for the message;
    ``allow_empty=False`` refuses arrays with a zero-length axis.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name} must be a numeric array, got {_describe(value)} ({exc})"
        ) from None
    if array.dtype.kind not in "iufc":
        raise ValueError(
            f"{name} must be a numeric (integer, float or complex) array, got dtype {array.dtype}"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            wanted = " or ".join(f"{d}-D" for d in allowed) + (f" {layout}" if layout else "")
            raise ValueError(f"{name} must be {wanted}, got an array with ndim={array.ndim} "
                             f"(shape {array.shape})")
    if not allow_empty and array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def as_real_array(value, name: str, ndim: int | tuple[int, ...] | None = None,
                  layout: str = "") -> np.ndarray:
    """Return ``value`` as a non-empty real (integer or float) array; see
    :func:`as_numeric_array` for ``ndim`` and ``layout``."""
    array = as_numeric_array(value, name, ndim=ndim, layout=layout)
    if array.dtype.kind == "c":
        raise ValueError(f"{name} must be a real (integer or float) array, got dtype "
                         f"{array.dtype}")
    return array


def check_cache(cache, forward: str, keys: tuple[str, ...]) -> None:
    """Check that ``cache`` is a dict with ``keys``, as returned by ``forward``."""
    if not isinstance(cache, dict) or not all(key in cache for key in keys):
        raise ValueError(f"cache must be the cache returned by {forward}, a dict with keys "
                         f"{keys}, got {type(cache).__name__}")


def checked_dout(dout, shape: tuple[int, ...], forward: str | None = None,
                 ndim: int | None = None, layout: str = "") -> np.ndarray:
    """Return ``dout`` as a real array of the forward output's ``shape``.

    ``forward`` names the forward function in the message (else "the forward output");
    ``ndim`` and ``layout`` as in :func:`as_numeric_array`.
    """
    dout = as_real_array(dout, "dout", ndim=ndim, layout=layout)
    if dout.shape != tuple(shape):
        output = f"{forward}'s output" if forward else "the forward output"
        raise ValueError(f"dout must have the shape of {output} {tuple(shape)}, "
                         f"got {dout.shape}")
    return dout


def check_valid_shapes(in1: np.ndarray, in2: np.ndarray, names=("in1", "in2"),
                       axes=None) -> bool:
    """For 'valid' mode: check that one input is at least as large as the other along
    every axis of ``axes`` (default: all); return True if ``in1`` is the larger one."""
    axes = range(in1.ndim) if axes is None else axes
    in1_larger = all(in1.shape[a] >= in2.shape[a] for a in axes)
    in2_larger = all(in2.shape[a] >= in1.shape[a] for a in axes)
    if not (in1_larger or in2_larger):
        raise ValueError(
            f"{names[0]} and {names[1]}: for 'valid' mode one must be at least as large "
            f"as the other in every dimension, got shapes {in1.shape} and {in2.shape}"
        )
    return in1_larger


def check_mode(mode) -> str:
    """Return ``mode`` if it is one of 'full', 'same' or 'valid'."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be 'full', 'same' or 'valid', got {_describe(mode)}")
    return mode


def check_int(value, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_real(value, name: str) -> float:
    """Return ``value`` as a float, refusing bools, non-numbers, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not np.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def as_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """Return an int-or-pair argument (``stride=2`` or ``stride=(2, 1)``) as a pair of ints."""
    kind = "positive int" if minimum == 1 else f"int >= {minimum}"
    message = f"{name} must be a {kind} or a pair of them, got {_describe(value)}"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(message)
        items = value
    else:
        items = (value, value)
    pair = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < minimum:
            raise ValueError(message)
        pair.append(int(item))
    return pair[0], pair[1]
