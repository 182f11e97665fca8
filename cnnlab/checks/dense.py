"""Checks of problem set 3 (notebook 04) for :mod:`cnnlab.layers`: the dense layers.

The fully connected layer, the activations, flattening and the softmax loss of
cnnlab/layers/dense.py (registered under the group ``layers``, see
:mod:`cnnlab.checks.layers`). The references are written out as sums over the indices
(or use SciPy's special functions); no exercise of cnnlab is called. Each backward check
builds the cache itself, in the layout that the (given) code of the forward builds it,
so that each check tests one function.
"""

from __future__ import annotations

import numpy as np
import scipy.special

from cnnlab.checks._core import Case, grading_side, register
from cnnlab.checks.conv import _LayerCheck, random_matrix


def random_shape(rng, ndim, low=1, high=5):
    return tuple(int(n) for n in rng.integers(low, high, size=ndim))


def with_zeros(rng, x):
    """``x`` with about a fifth of its entries set to exactly 0 (the kink of ReLU)."""
    x = np.array(x, dtype=float)
    x[rng.random(x.shape) < 0.2] = 0.0
    return x


def not_finite_hint(right, got, hint):
    """``hint`` if an output holds NaN or inf where the right answer is finite."""
    for key, want in right.items():
        value = got.get(key)
        try:
            value = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            continue
        if value.shape == np.shape(want) and np.all(np.isfinite(want)) and \
                not np.all(np.isfinite(value)):
            return hint
    return None


# ------------------------------------------------------------------ linear layer
def linear_reference(x, w, b):
    """out[n, m] = sum_d x[n, d] w[d, m] + b[m], summed over d explicitly."""
    x, w, b = (np.asarray(v, dtype=float) for v in (x, w, b))
    return (x[:, :, None] * w[None, :, :]).sum(axis=1) + b


def linear_backward_reference(x, w, dout):
    """dx[n, d] = sum_m δ[n, m] w[d, m]; dw[d, m] = sum_n x[n, d] δ[n, m]; db = sum_n δ."""
    x, w, dout = (np.asarray(v, dtype=float) for v in (x, w, dout))
    dx = (dout[:, None, :] * w[None, :, :]).sum(axis=2)
    dw = (x[:, :, None] * dout[:, None, :]).sum(axis=0)
    return dx, dw, dout.sum(axis=0)


@register
class LinearForward(_LayerCheck):
    name = "layers.linear_forward"
    function = "linear_forward"
    reference_name = "the sum over d of x[n, d] w[d, m], plus b[m]"

    def examples(self):
        return [Case("the docstring's 3 rows, 2 features, 3 units", {
            "x": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
            "w": np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]),
            "b": np.array([0.0, 1.0, 10.0])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            n, d, m = random_shape(rng, 3, 1, 7)
            integer = i % 4 == 3
            cases.append(Case(f"random case {i}: N={n}, D={d}, M={m}", {
                "x": random_matrix(rng, (n, d), integer), "w": random_matrix(rng, (d, m), integer),
                "b": random_matrix(rng, (m,), integer)}))
        return cases

    def call(self, x, w, b):
        out, _ = self.target()(x, w, b)
        return {"out": np.asarray(out)}

    def reference(self, x, w, b):
        return {"out": linear_reference(x, w, b)}

    def mistakes(self, x, w, b):
        return [("the bias is missing: out = x @ w + b, b added to every row",
                 {"out": linear_reference(x, w, np.zeros(np.shape(b)))}),
                ("the bias is subtracted: out = x @ w + b",
                 {"out": linear_reference(x, w, -np.asarray(b, dtype=float))})]


@register
class LinearBackward(_LayerCheck):
    name = "layers.linear_backward"
    function = "linear_backward"
    reference_name = "the chain rule written as sums over the batch and the units"

    def examples(self):
        return [Case("the docstring's 2 rows, 2 features, 3 units", {
            "x": np.array([[1.0, 2.0], [3.0, 4.0]]),
            "w": np.array([[1.0, -1.0, 0.0], [2.0, 0.0, 1.0]]),
            "dout": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            n, d, m = random_shape(rng, 3, 2, 6)
            if i % 3 == 0:  # square: the transposed mistakes have the right shapes
                d = m = n
            integer = i % 4 == 3
            cases.append(Case(f"random case {i}: N={n}, D={d}, M={m}", {
                "x": random_matrix(rng, (n, d), integer), "w": random_matrix(rng, (d, m), integer),
                "dout": random_matrix(rng, (n, m), integer)}))
        return cases

    def call(self, x, w, dout):
        cache = {"x": np.asarray(x), "w": np.asarray(w)}  # what linear_forward stores
        dx, dw, db = self.target()(dout, cache)
        return {"dx": np.asarray(dx), "dw": np.asarray(dw), "db": np.asarray(db)}

    def reference(self, x, w, dout):
        dx, dw, db = linear_backward_reference(x, w, dout)
        return {"dx": dx, "dw": dw, "db": db}

    def mistakes(self, x, w, dout):
        x, w, dout = (np.asarray(v, dtype=float) for v in (x, w, dout))
        found = [
            ("dw must have w's shape (D, M): dw = x.T @ δ (that is its transpose, δ.T @ x)",
             {"dw": dout.T @ x}),
            ("db: sum δ over the batch (axis 0), one number per output unit",
             {"db": dout.sum(axis=1)}),
            ("db: sum δ over the batch; its mean is the gradient of the mean over the batch, "
             "but the mean is already in δ", {"db": dout.mean(axis=0)}),
            ("db: sum δ over the batch, not only its first row", {"db": dout[0]}),
            ("db must have shape (M,): sum δ over the batch (axis 0)", {"db": dout}),
        ]
        if x.shape[1] == dout.shape[0]:
            found.append(("dw = x.T @ δ: x must be transposed (x @ δ only has the right shape "
                          "by accident here)", {"dw": x @ dout}))
        if w.shape[0] == w.shape[1]:
            found.append(("dx = δ @ w.T: w must be transposed", {"dx": dout @ w}))
        return found


# ------------------------------------------------------------------ activations
def activation_cases(rng, count, large=False):
    cases = []
    for i in range(count):
        shape = random_shape(rng, 1 + i % 4, 1, 5)
        if i % 5 == 4:
            x = rng.integers(-3, 4, size=shape)
        else:
            x = with_zeros(rng, rng.normal(0.0, 2.0, size=shape))
        if large and i % 3 == 2:
            x = np.asarray(x, dtype=float) * 300.0  # |x| in the hundreds: exp overflows
        cases.append(Case(f"random case {i}", {"x": x}))
    return cases


def with_dout(rng, cases):
    for case in cases:
        case.inputs["dout"] = rng.normal(size=np.shape(case.inputs["x"]))
    return cases


class _ActivationCheck(_LayerCheck):
    large = False  # include inputs in the hundreds (where a naive exp overflows)

    def random_cases(self, rng, count):
        return activation_cases(rng, count, self.large)

    def call(self, x):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out, _ = self.target()(x)
        return {"out": np.asarray(out)}


class _ActivationBackward(_LayerCheck):
    """A backward whose cache, the activation's output ``out``, is part of each case (a
    student's release must not compute it: that is the forward exercise)."""

    def random_cases(self, rng, count):
        return with_dout(rng, activation_cases(rng, count))

    @grading_side
    def cases(self, seed=0, count=None):
        return [Case(c.label, {**c.inputs, "out": self.cached(c.inputs["x"])})
                for c in super().cases(seed, count)]

    @grading_side
    def cached(self, x) -> np.ndarray:
        """The activation's output, which the (given) forward code stores as the cache."""
        raise NotImplementedError

    def call(self, x, dout, out):
        dx = self.target()(dout, {"out": out})
        return {"dx": np.asarray(dx)}


@register
class ReluForward(_ActivationCheck):
    name = "layers.relu_forward"
    function = "relu_forward"
    reference_name = "x where x > 0, else 0"

    def examples(self):
        return [Case("the docstring's [-2, 0, 3]", {"x": np.array([-2.0, 0.0, 3.0])})]

    def reference(self, x):
        x = np.asarray(x)
        return {"out": np.where(x > 0, x, 0)}

    def mistakes(self, x):
        x = np.asarray(x)
        return [("np.max(x, 0) is the largest entry along axis 0: ReLU is np.maximum(x, 0), "
                 "elementwise", {"out": np.max(x, 0)}),
                ("ReLU keeps the positive entries and zeroes the negative ones, not the other "
                 "way round", {"out": np.minimum(x, 0)}),
                ("the negative entries must become 0, not their absolute value",
                 {"out": np.abs(x)})]


@register
class ReluBackward(_ActivationBackward):
    name = "layers.relu_backward"
    function = "relu_backward"
    reference_name = "dout where x > 0, else 0"

    def examples(self):
        return [Case("the docstring's [-2, 0, 3] with dout 5", {
            "x": np.array([-2.0, 0.0, 3.0]), "dout": np.array([5.0, 5.0, 5.0])})]

    @grading_side
    def cached(self, x):
        return np.maximum(x, 0)

    def reference(self, x, dout, out=None):
        return {"dx": np.where(np.asarray(x) > 0, dout, 0.0)}

    def mistakes(self, x, dout, out=None):
        x, dout = np.asarray(x), np.asarray(dout, dtype=float)
        return [("the gradient must be 0 where the unit was off (x <= 0; the derivative at "
                 "exactly 0 is taken as 0): dout * (out > 0). Note that out >= 0 everywhere",
                 {"dx": dout}),
                ("multiply dout by the derivative (1 where x > 0, else 0), not by the output",
                 {"dx": dout * np.maximum(x, 0)}),
                ("the mask alone is the local derivative: multiply it by dout",
                 {"dx": (x > 0).astype(float)})]


@register
class TanhForward(_ActivationCheck):
    name = "layers.tanh_forward"
    function = "tanh_forward"
    reference_name = "numpy.tanh"
    large = True

    def examples(self):
        return [Case("the docstring's [-1, 0, 2]", {"x": np.array([-1.0, 0.0, 2.0])}),
                Case("large inputs", {"x": np.array([-800.0, -20.0, 0.0, 20.0, 800.0])})]

    def reference(self, x):
        return {"out": np.tanh(np.asarray(x, dtype=float))}

    def mistakes(self, x):
        x = np.asarray(x, dtype=float)
        return [("that is the sigmoid: tanh(x) = (e^x - e^-x) / (e^x + e^-x), values in "
                 "(-1, 1)", {"out": scipy.special.expit(x)})]

    def diagnose(self, case, got, right, wrong=None):
        return not_finite_hint(right, got, (
            "NaN or inf for large |x|: exp(800) overflows, so (e^x - e^-x) / (e^x + e^-x) "
            "gives inf / inf; use np.tanh")) or super().diagnose(case, got, right, wrong)


@register
class TanhBackward(_ActivationBackward):
    name = "layers.tanh_backward"
    function = "tanh_backward"
    reference_name = "dout * (1 - tanh(x)**2)"

    def examples(self):
        return [Case("the docstring's [0, 1] with dout 1", {
            "x": np.array([0.0, 1.0]), "dout": np.array([1.0, 1.0])})]

    @grading_side
    def cached(self, x):
        return np.tanh(np.asarray(x, dtype=float))

    def reference(self, x, dout, out=None):
        return {"dx": np.asarray(dout) * (1.0 - np.tanh(np.asarray(x, dtype=float)) ** 2)}

    def mistakes(self, x, dout, out=None):
        out, dout = self.cached(x), np.asarray(dout, dtype=float)
        return [("the cache holds out = tanh(x), not x: the derivative is 1 - out**2, not "
                 "1 - tanh(out)**2", {"dx": dout * (1.0 - np.tanh(out) ** 2)}),
                ("the derivative of tanh is 1 - tanh(x)**2: the square is missing",
                 {"dx": dout * (1.0 - out)}),
                ("that is the derivative of the sigmoid, out * (1 - out); tanh's is "
                 "1 - out**2", {"dx": dout * out * (1.0 - out)}),
                ("multiply the local derivative 1 - out**2 by dout",
                 {"dx": 1.0 - out ** 2})]


@register
class SigmoidForward(_ActivationCheck):
    name = "layers.sigmoid_forward"
    function = "sigmoid_forward"
    reference_name = "scipy.special.expit"
    large = True
    rtol, atol = 1e-7, 1e-12

    def examples(self):
        return [Case("the docstring's [-1000, 0, 2]", {"x": np.array([-1000.0, 0.0, 2.0])}),
                Case("large inputs of both signs", {"x": np.array([-800.0, -30.0, 30.0, 800.0])})]

    def reference(self, x):
        return {"out": scipy.special.expit(np.asarray(x, dtype=float))}

    def mistakes(self, x):
        x = np.asarray(x, dtype=float)
        return [("σ(x) = 1 / (1 + exp(-x)): the sign of the exponent is flipped",
                 {"out": scipy.special.expit(-x)}),
                ("that is tanh: the sigmoid is 1 / (1 + exp(-x)), values in (0, 1)",
                 {"out": np.tanh(x)})]

    def diagnose(self, case, got, right, wrong=None):
        return not_finite_hint(right, got, (
            "NaN or inf for large |x|: exp(800) overflows (e^x / (1 + e^x) is inf / inf); "
            "use the docstring's exp(-logaddexp(0, -x)), or 1 / (1 + exp(-x))")) or \
            super().diagnose(case, got, right, wrong)


@register
class SigmoidBackward(_ActivationBackward):
    name = "layers.sigmoid_backward"
    function = "sigmoid_backward"
    reference_name = "dout * σ(x) * (1 - σ(x))"

    def examples(self):
        return [Case("the docstring's x = 0 with dout 1", {
            "x": np.array([0.0]), "dout": np.array([1.0])})]

    @grading_side
    def cached(self, x):
        return scipy.special.expit(np.asarray(x, dtype=float))

    def reference(self, x, dout, out=None):
        s = self.cached(x)
        return {"dx": np.asarray(dout) * s * (1.0 - s)}

    def mistakes(self, x, dout, out=None):
        s, dout = self.cached(x), np.asarray(dout, dtype=float)
        return [("the factor (1 - σ) is missing: σ'(x) = σ(x) (1 - σ(x)) = out * (1 - out)",
                 {"dx": dout * s}),
                ("the cache holds out = σ(x), not x: the derivative is out * (1 - out), not "
                 "σ(out) (1 - σ(out))",
                 {"dx": dout * scipy.special.expit(s) * (1.0 - scipy.special.expit(s))}),
                ("the factor σ is missing: σ'(x) = out * (1 - out)", {"dx": dout * (1.0 - s)}),
                ("multiply the local derivative out * (1 - out) by dout",
                 {"dx": s * (1.0 - s)})]


# ------------------------------------------------------------------ flatten
FLATTEN_SHAPES = [(2, 3, 4, 4), (3, 5), (4,), (2, 2, 3), (1, 2, 3, 2), (3, 1, 2, 5)]


def flatten_loop(x):
    """Row n lists x[n]'s entries in C order: the last index runs fastest."""
    x = np.asarray(x)
    rows = [[x[(n, *index)] for index in np.ndindex(x.shape[1:])] for n in range(x.shape[0])]
    return np.array(rows, dtype=x.dtype).reshape(x.shape[0], -1)


def unflatten_loop(dout, shape):
    dout = np.asarray(dout)
    dx = np.zeros(shape, dtype=dout.dtype)
    for n in range(shape[0]):
        for k, index in enumerate(np.ndindex(tuple(shape[1:]))):
            dx[(n, *index)] = dout[n, k]
    return dx


@register
class Flatten(_LayerCheck):
    name = "layers.flatten"
    function = "flatten"
    reference_name = "each sample's entries listed in C order"

    def examples(self):
        return [Case("two 2x2x2 arrays", {"x": np.arange(16).reshape(2, 2, 2, 2)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = FLATTEN_SHAPES[i % len(FLATTEN_SHAPES)]
            x = rng.integers(-9, 10, size=shape) if i % 2 else rng.normal(size=shape)
            cases.append(Case(f"random case {i}: shape {shape}", {"x": x}))
        return cases

    def call(self, x):
        return {"out": np.asarray(self.target()(x))}

    def reference(self, x):
        return {"out": flatten_loop(x)}

    def mistakes(self, x):
        x = np.asarray(x)
        n = x.shape[0]
        found = [("keep the batch axis: the result is (N, D), one row per sample, not one "
                  "long vector", {"out": x.ravel()}),
                 ("the rows must be the samples: x.reshape(N, -1), not x.reshape(-1, N)",
                  {"out": x.reshape(-1, n)}),
                 ("that is Fortran (column-major) order: list the entries in C order "
                  "(channel, then row, then column)", {"out": x.reshape(n, -1, order="F")})]
        if x.ndim == 4:
            found.append(("do not move the channel axis: flatten (N, C, H, W) in C order, "
                          "channel, then row, then column", {
                              "out": x.transpose(0, 2, 3, 1).reshape(n, -1)}))
        return found


@register
class FlattenBackward(_LayerCheck):
    name = "layers.flatten_backward"
    function = "flatten_backward"
    reference_name = "each row's entries put back in C order"

    def examples(self):
        return [Case("two rows of 8 back to (2, 2, 2, 2)", {
            "dout": np.arange(16.0).reshape(2, 8), "shape": (2, 2, 2, 2)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = FLATTEN_SHAPES[i % len(FLATTEN_SHAPES)]
            size = int(np.prod(shape[1:], dtype=np.int64))
            cases.append(Case(f"random case {i}: shape {shape}", {
                "dout": rng.normal(size=(shape[0], size)), "shape": tuple(shape)}))
        return cases

    def call(self, dout, shape):
        return {"dx": np.asarray(self.target()(dout, {"shape": tuple(shape)}))}

    def reference(self, dout, shape):
        return {"dx": unflatten_loop(dout, tuple(shape))}

    def mistakes(self, dout, shape):
        dout, shape = np.asarray(dout), tuple(shape)
        found = [("the gradient must get back the input's shape: dout.reshape(cache['shape'])",
                  {"dx": dout}),
                 ("reshape in C order, the order flatten used, not Fortran order",
                  {"dx": dout.reshape(shape, order="F")})]
        if len(shape) == 4:
            n, c, h, w = shape
            found.append(("flatten listed the entries channel first (C order): reshape to "
                          "(N, C, H, W) directly, not to (N, H, W, C)", {
                              "dx": dout.reshape(n, h, w, c).transpose(0, 3, 1, 2)}))
        return found


# ------------------------------------------------------------------ softmax cross-entropy
def softmax_ce_reference(scores, y):
    """Mean cross-entropy and its gradient, from SciPy's (stable) log_softmax."""
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(y)
    n = scores.shape[0]
    log_p = scipy.special.log_softmax(scores, axis=1)
    onehot = np.zeros(scores.shape)
    onehot[np.arange(n), y] = 1.0
    loss = -np.mean(log_p[np.arange(n), y])
    return np.asarray(loss), (np.exp(log_p) - onehot) / n


@register
class SoftmaxCrossEntropy(_LayerCheck):
    name = "layers.softmax_cross_entropy"
    function = "softmax_cross_entropy"
    reference_name = "scipy.special.log_softmax"
    rtol, atol = 1e-7, 1e-10

    def examples(self):
        return [Case("the docstring's scores [2, 1, 0.1], class 0", {
                    "scores": np.array([[2.0, 1.0, 0.1]]), "y": np.array([0])}),
                Case("scores 1000 and 0, class 1 (loss 1000)", {
                    "scores": np.array([[1000.0, 0.0]]), "y": np.array([1])}),
                Case("a batch of two with scores near ±1000", {
                    "scores": np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -999.0]]),
                    "y": np.array([2, 0])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            n, c = int(rng.integers(1, 7)), int(rng.integers(2, 11))
            kind = i % 4
            if kind == 0:
                scores = rng.normal(0.0, 2.0, size=(n, c))
            elif kind == 1:   # large scores: exp overflows without the max subtracted
                scores = 1000.0 + rng.normal(0.0, 5.0, size=(n, c))
            elif kind == 2:   # a wide spread: softmax underflows to 0 for some classes
                scores = rng.normal(0.0, 400.0, size=(n, c))
            else:
                scores = rng.integers(-5, 6, size=(n, c))
            cases.append(Case(f"random case {i}: N={n}, C={c}", {
                "scores": scores, "y": rng.integers(0, c, size=n)}))
        return cases

    def call(self, scores, y):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, dscores = self.target()(scores, y)
        return {"loss": np.asarray(loss, dtype=float), "dscores": np.asarray(dscores)}

    def reference(self, scores, y):
        loss, dscores = softmax_ce_reference(scores, y)
        return {"loss": loss, "dscores": dscores}

    def mistakes(self, scores, y):
        loss, dscores = softmax_ce_reference(scores, y)
        n = np.shape(scores)[0]
        probabilities = dscores * n
        probabilities[np.arange(n), np.asarray(y)] += 1.0
        return [
            ("divide by N: the loss is the mean over the batch, and its gradient is "
             "(p - onehot(y)) / N", {"loss": loss * n, "dscores": dscores * n}),
            ("the gradient of the mean loss is (p - onehot(y)) / N: divide it by N too",
             {"dscores": dscores * n}),
            ("the loss is the mean over the batch: divide the sum by N",
             {"loss": loss * n}),
            ("the sign of the gradient is flipped: ∂J/∂scores = (p - onehot(y)) / N "
             "(the lecture's 1(y = i) - p is the gradient of the log-likelihood, which is "
             "maximized; J is its negative)", {"dscores": -dscores}),
            ("the loss is -mean(log p[n, y[n]]), which is positive", {"loss": -loss}),
            ("subtract 1 at the true class: (p - onehot(y)) / N",
             {"dscores": probabilities / n}),
        ]

    def diagnose(self, case, got, right, wrong=None):
        return not_finite_hint(right, got, (
            "NaN or inf with large scores: exp(1000) overflows and log(0) is -inf. Subtract "
            "each row's maximum before exponentiating, and compute log p = s - log(sum(exp(s))) "
            "on the shifted scores (log-sum-exp) instead of log(softmax)")) or \
            super().diagnose(case, got, right, wrong)
