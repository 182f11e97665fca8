"""Plausible mistakes in cnnlab.gradcheck exercises."""

import numpy as np


def _scalar(f, df):
    value = np.array(f(), dtype=np.float64)
    return float(np.sum(value if df is None else value * df))


def forward_difference(f, x, h=1e-5, df=None):
    """(f(x + h) - f(x)) / h: one-sided, off by h/2 f''."""
    grad = np.zeros(x.shape)
    base = _scalar(f, df)
    for index in np.ndindex(x.shape):
        original = x[index].copy()
        x[index] = original + h
        grad[index] = (_scalar(f, df) - base) / h
        x[index] = original
    return grad


def central_difference(divisor=2.0, restore=True, use_df=True):
    """Central differences with a wrong divisor, a sloppy restore, or df ignored."""
    def numerical_gradient(f, x, h=1e-5, df=None):
        grad = np.zeros(x.shape)
        upstream = df if use_df else None
        for index in np.ndindex(x.shape):
            original = x[index].copy()
            x[index] = original + h
            plus = _scalar(f, upstream)
            x[index] = original - h
            minus = _scalar(f, upstream)
            if restore:
                x[index] = original
            grad[index] = (plus - minus) / (divisor * h)
        return grad
    return numerical_gradient


def relative_error_with(denominator):
    def relative_error(a, b, eps=1e-8):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.max(np.abs(a - b) / denominator(np.abs(a), np.abs(b), eps)))
    return relative_error


def relative_error_mean(a, b, eps=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.mean(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps)))


def relative_error_of_norms(a, b, eps=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), eps))


WRONG = {
    "gradcheck.numerical_gradient": [
        ("forward (one-sided) difference", lambda ref: forward_difference),
        ("x not restored", lambda ref: central_difference(restore=False)),
        ("divided by h instead of 2h", lambda ref: central_difference(divisor=1.0)),
        ("df ignored", lambda ref: central_difference(use_df=False)),
    ],
    "gradcheck.relative_error": [
        ("denominator max(|a|, |b|)",
         lambda ref: relative_error_with(lambda a, b, eps: np.maximum(np.maximum(a, b), eps))),
        ("denominator |a| only", lambda ref: relative_error_with(
            lambda a, b, eps: np.maximum(a, eps))),
        ("eps added instead of a floor", lambda ref: relative_error_with(
            lambda a, b, eps: a + b + eps)),
        ("no floor (0 / 0 = NaN)", lambda ref: relative_error_with(lambda a, b, eps: a + b)),
        ("mean instead of max", lambda ref: relative_error_mean),
        ("ratio of norms", lambda ref: relative_error_of_norms),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("gradcheck.numerical_gradient", "forward (one-sided) difference"):
        r"one-sided \(forward\) difference",
    ("gradcheck.numerical_gradient", "x not restored"): r"x was not restored",
    ("gradcheck.numerical_gradient", "divided by h instead of 2h"): r"divides by 2h",
    ("gradcheck.numerical_gradient", "df ignored"): r"differentiate sum\(f\(\) \* df\)",
    ("gradcheck.relative_error", "denominator max(|a|, |b|)"): r"not max\(\|a\|, \|b\|\)",
    ("gradcheck.relative_error", "denominator |a| only"): r"not \|a\| alone",
    ("gradcheck.relative_error", "eps added instead of a floor"): r"not \|a\| \+ \|b\| \+ eps",
    ("gradcheck.relative_error", "no floor (0 / 0 = NaN)"): r"floor the denominator at eps",
    ("gradcheck.relative_error", "mean instead of max"): r"not the mean",
    ("gradcheck.relative_error", "ratio of norms"): r"not a ratio of norms",
}
