"""Checks for :mod:`cnnlab.gradcheck`: numerical gradients and the relative error.

A function cannot travel to the sandboxed autograder as data, so the check of
``numerical_gradient`` builds a fixed function from arrays that can:

    f(X) = sum(W * tanh(A @ X))        (or W * tanh(A @ X) with an upstream gradient df)

and compares the numerical gradient with the analytic one,
``A.T @ (W * (1 - tanh(A @ X)**2))`` (times ``df``). The weights are large enough
that the function is strongly curved: a one-sided difference is then off by
``h/2 * f''``, far more than the tolerance, while the central difference is off
by ``h**2/6 * f'''`` and round-off, far less.
"""

from __future__ import annotations

import numpy as np

from cnnlab.checks._core import Case, Check, register

STEP = 1e-5  # numerical_gradient's default h, used to predict the wrong answers



def analytic_gradient(A, W, X, df=None):
    Z = A @ X
    G = W * (1.0 - np.tanh(Z) ** 2)
    if df is not None:
        G = G * df
    return A.T @ G


def scalar_function(A, W, X, df=None):
    """The scalar whose gradient is checked: sum(f(X)) or sum(f(X) * df)."""
    values = W * np.tanh(A @ X)
    return np.sum(values if df is None else values * df)


def one_sided(A, W, X, df=None, step=STEP, backward=False):
    """A forward (or backward) difference, for the hint about one-sided differences."""
    X = np.array(X, dtype=float)
    base = scalar_function(A, W, X, df)
    grad = np.zeros(X.shape)
    for index in np.ndindex(X.shape):
        moved = X.copy()
        moved[index] += -step if backward else step
        change = scalar_function(A, W, moved, df) - base
        grad[index] = -change / step if backward else change / step
    return grad


@register
class NumericalGradient(Check):
    name = "gradcheck.numerical_gradient"
    module = "cnnlab.gradcheck"
    function = "numerical_gradient"
    reference_name = "the analytic gradient of sum(W * tanh(A @ X))"
    rtol, atol = 1e-6, 1e-8

    def examples(self):
        return [Case("f(x) = sum(w * tanh(A @ x)) for a vector x of 3 entries", {
            "A": np.array([[2.0, -1.0, 0.5], [1.0, 3.0, -2.0]]),
            "W": np.array([4.0, -3.0]),
            "X": np.array([0.3, -0.2, 0.1])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            p, k = int(rng.integers(2, 5)), int(rng.integers(1, 5))
            x_shape = [(k,), (k, int(rng.integers(1, 4))), (2, k, 2)][i % 3]
            out_shape = (p,) + x_shape[1:] if len(x_shape) < 3 else (2, p, 2)
            inputs = {"A": rng.normal(0.0, 2.0, size=(p, k)),
                      "W": rng.normal(0.0, 3.0, size=out_shape),
                      "X": rng.normal(0.0, 0.3, size=x_shape)}
            if i % 2:
                inputs["df"] = rng.normal(size=out_shape)
            label = "with an upstream gradient df" if i % 2 else "scalar f"
            cases.append(Case(f"random case {i}, {label}", inputs))
        return cases

    def call(self, A, W, X, df=None):
        X = np.array(X, dtype=np.float64)  # a private copy: it is perturbed in place
        before = X.copy()

        if df is None:
            def f():
                return np.sum(W * np.tanh(A @ X))
            grad = self.target()(f, X)
        else:
            def f():
                return W * np.tanh(A @ X)
            grad = self.target()(f, X, df=df)
        # bit for bit: the same value and the same sign of zero
        not_restored = np.count_nonzero(X.view(np.int64) != before.view(np.int64))
        return {"grad": np.asarray(grad), "entries_of_x_not_restored": np.asarray(not_restored)}

    def reference(self, A, W, X, df=None):
        return {"grad": analytic_gradient(A, W, X, df),
                "entries_of_x_not_restored": np.asarray(0)}

    def diagnose(self, case, got, right, wrong=None):
        try:
            not_restored = int(np.asarray(got.get("entries_of_x_not_restored")))
        except (TypeError, ValueError):
            not_restored = 0
        if not_restored:
            return (f"x was not restored ({not_restored} of its entries changed): save each "
                    "entry before perturbing it and assign the saved value back afterwards, in "
                    "a try/finally (x[i] + h - h is not always x[i], bit for bit)")
        return super().diagnose(case, got, right, wrong)

    def mistakes(self, A, W, X, df=None):
        grad = analytic_gradient(A, W, X, df)
        found = [
            ("that looks like a one-sided (forward) difference (f(x + h) - f(x)) / h: its "
             "error is h/2 * f'', use the central difference (f(x + h) - f(x - h)) / (2h)",
             {"grad": one_sided(A, W, X, df)}),
            ("that looks like a one-sided (backward) difference (f(x) - f(x - h)) / h: use "
             "the central difference (f(x + h) - f(x - h)) / (2h)",
             {"grad": one_sided(A, W, X, df, backward=True)}),
            ("the gradient is twice too large: the central difference divides by 2h, the "
             "distance between x - h and x + h", {"grad": 2 * grad}),
            ("the gradient is half what it should be: divide by 2h, not 4h",
             {"grad": grad / 2})]
        if df is not None:
            found.append(("with df, differentiate sum(f() * df): multiply the change of f() "
                          "by df before summing", {"grad": analytic_gradient(A, W, X)}))
        return found


# ------------------------------------------------------------------ relative error
def formula(a, b, eps=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps))


@register
class RelativeError(Check):
    name = "gradcheck.relative_error"
    module = "cnnlab.gradcheck"
    function = "relative_error"
    reference_name = "max |a - b| / max(|a| + |b|, eps)"
    rtol, atol = 1e-9, 1e-15

    def examples(self):
        return [Case("[1, 2] and [1, 3]", {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 3.0])}),
                Case("two zero arrays", {"a": np.zeros(3), "b": np.zeros(3)}),
                Case("integers", {"a": np.array([[3, -4], [0, 7]]),
                                  "b": np.array([[3, -5], [0, 8]])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = tuple(int(n) for n in rng.integers(1, 5, size=1 + i % 3))
            scale = (1.0, 1e3, 1e-9, 1e-6)[i % 4]
            a = rng.normal(size=shape) * scale
            kind = i % 5
            if kind == 0:    # a gradient check that passes
                b = a * (1 + 1e-8 * rng.normal(size=shape))
            elif kind == 1:  # a gradient check that fails
                b = a + rng.normal(size=shape) * scale * 0.1
            elif kind == 2:  # some entries exactly zero in both
                a.flat[:: 2] = 0.0
                b = a.copy()
                b.flat[1:: 2] *= 1.001
            elif kind == 3:  # opposite signs
                b = -a * rng.uniform(0.5, 2.0, size=shape)
            else:            # unrelated
                b = rng.normal(size=shape) * scale
            inputs = {"a": a, "b": b}
            if i % 3 == 2:
                inputs["eps"] = (1e-3, 1e-12, 1e-6)[(i // 3) % 3]
            cases.append(Case(f"random case {i}", inputs))
        return cases

    def call(self, a, b, eps=None):
        result = self.target()(a, b) if eps is None else self.target()(a, b, eps=eps)
        return {"out": np.asarray(result)}

    def reference(self, a, b, eps=None):
        return {"out": np.asarray(formula(a, b, 1e-8 if eps is None else eps))}

    def mistakes(self, a, b, eps=None):
        eps = 1e-8 if eps is None else eps
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        diff, a_abs, b_abs = np.abs(a - b), np.abs(a), np.abs(b)
        norms = max(np.linalg.norm(a) + np.linalg.norm(b), eps)
        return [
            ("the denominator is |a| + |b| (floored at eps), not max(|a|, |b|)",
             {"out": np.asarray(np.max(diff / np.maximum(np.maximum(a_abs, b_abs), eps)))}),
            ("the denominator is |a| + |b|, not |a| alone: the relative error treats a and b "
             "alike", {"out": np.asarray(np.max(diff / np.maximum(a_abs, eps)))}),
            ("the denominator is |a| + |b|, not |b| alone: the relative error treats a and b "
             "alike", {"out": np.asarray(np.max(diff / np.maximum(b_abs, eps)))}),
            ("the floor is max(|a| + |b|, eps), not |a| + |b| + eps",
             {"out": np.asarray(np.max(diff / (a_abs + b_abs + eps)))}),
            ("take the largest elementwise error (np.max), not the mean",
             {"out": np.asarray(np.mean(diff / np.maximum(a_abs + b_abs, eps)))}),
            ("compute the error entry by entry and take the largest, not a ratio of norms",
             {"out": np.asarray(np.linalg.norm(a - b) / norms)}),
        ]

    def diagnose(self, case, got, right, wrong=None):
        try:
            value = float(np.asarray(got.get("out")))
        except (TypeError, ValueError):
            value = None
        if value is not None and np.isnan(value) and not np.isnan(right["out"]):
            return ("floor the denominator at eps: where a and b are both 0 the error is 0, "
                    "not NaN (0 / 0)")
        return super().diagnose(case, got, right, wrong)
