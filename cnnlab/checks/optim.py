"""Checks for :mod:`cnnlab.optim`: one parameter's SGD update, and the optimizer.

The reference runs PyTorch's formulation of SGD written out step by step::

    g = grad + weight_decay * w
    v = momentum * v + g
    w = w - lr * v                 (Nesterov: w - lr * (g + momentum * v))

over a few steps with a learning rate that changes from step to step (as under a
schedule), so that a velocity that is not kept between steps, a learning rate
folded into the velocity or a decay applied in the wrong place all show. The
optimizer check adds the rule that biases (1-D arrays) are not decayed.
"""

from __future__ import annotations

import numpy as np

from cnnlab.checks._core import Case, Check, register


def sgd_reference(param, grads, lrs, momentum, weight_decay, nesterov, *, use_momentum=True,
                  keep_velocity=True, use_decay=True, decay_outside=False, use_nesterov=True,
                  lr_in_velocity=False, in_place=True, sign=1.0):
    """Parameter and velocity after the steps; the keywords make the plausible mistakes."""
    p = np.array(param, dtype=float)
    v = np.zeros_like(p)
    momentum = momentum if use_momentum else 0.0
    for grad, lr in zip(np.asarray(grads, dtype=float), np.asarray(lrs, dtype=float)):
        g = grad + weight_decay * p if use_decay and not decay_outside else grad
        if momentum == 0:
            step = g
        else:
            velocity = momentum * v + (lr * g if lr_in_velocity else g)
            if keep_velocity:
                v = velocity
            if nesterov and use_nesterov:
                step = g + momentum * velocity
            else:
                step = velocity
        update = step if lr_in_velocity and momentum else lr * step
        if decay_outside:
            update = update + lr * weight_decay * p
        if in_place:
            p = p - sign * update
    return p, v


class _OptimCheck(Check):
    module = "cnnlab.optim"
    rtol, atol = 1e-9, 1e-12


@register
class SgdUpdate(_OptimCheck):
    name = "optim.sgd_update"
    function = "sgd_update"
    reference_name = "PyTorch's SGD written out step by step"

    def examples(self):
        return [Case("the docstring's two steps (lr 0.5, momentum 0.9)", {
                    "param": np.array([1.0, 2.0]), "grads": np.array([[1.0, -1.0], [1.0, -1.0]]),
                    "lrs": np.array([0.5, 0.5]), "momentum": 0.9, "weight_decay": 0.0,
                    "nesterov": 0}),
                Case("three steps with momentum 0.9, weight decay 0.1 and a falling learning "
                     "rate", {
                    "param": np.array([[1.0, -2.0], [0.5, 3.0]]),
                    "grads": np.array([[[1.0, 0.0], [-1.0, 2.0]], [[0.5, 0.5], [0.0, 1.0]],
                                       [[-1.0, 1.0], [2.0, 0.0]]]),
                    "lrs": np.array([0.1, 0.05, 0.02]), "momentum": 0.9, "weight_decay": 0.1,
                    "nesterov": 0})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = tuple(int(n) for n in rng.integers(1, 5, size=1 + i % 3))
            steps = int(rng.integers(2, 6))
            momentum = (0.9, 0.5, 0.0, 0.9)[i % 4]
            weight_decay = (0.0, 0.1, 0.01)[i % 3]
            nesterov = int(momentum > 0 and i % 5 in (1, 3))
            lrs = rng.uniform(0.01, 0.5, size=steps)
            if i % 2:
                lrs = np.sort(lrs)[::-1].copy()  # falling, as under a schedule
            cases.append(Case(
                f"random case {i}: {steps} steps, momentum {momentum}, weight decay "
                f"{weight_decay}, nesterov {bool(nesterov)}", {
                    "param": rng.normal(size=shape), "grads": rng.normal(size=(steps, *shape)),
                    "lrs": lrs, "momentum": momentum, "weight_decay": weight_decay,
                    "nesterov": nesterov}))
        return cases

    def call(self, param, grads, lrs, momentum, weight_decay, nesterov):
        p = np.array(param, dtype=np.float64)  # private copies, updated in place
        v = np.zeros_like(p)
        update = self.target()
        for grad, lr in zip(np.asarray(grads, dtype=np.float64), lrs):
            update(p, grad, v, float(lr), momentum=float(momentum),
                   weight_decay=float(weight_decay), nesterov=bool(nesterov))
        out = {"param": p}
        if momentum > 0:  # with momentum 0 the velocity buffer is not used
            out["velocity"] = v
        return out

    def reference(self, param, grads, lrs, momentum, weight_decay, nesterov):
        p, v = sgd_reference(param, grads, lrs, momentum, weight_decay, nesterov)
        return {"param": p, "velocity": v} if momentum > 0 else {"param": p}

    def mistakes(self, param, grads, lrs, momentum, weight_decay, nesterov):
        def wrong(**mistake):
            p, v = sgd_reference(param, grads, lrs, momentum, weight_decay, nesterov, **mistake)
            return {"param": p, "velocity": v} if momentum > 0 else {"param": p}

        return [
            ("param did not change: update it in place (param -= ...); param = param - ... "
             "makes a new array that the model never sees", wrong(in_place=False)),
            ("param moved as in plain gradient descent and velocity stayed 0: update velocity "
             "in place (velocity *= momentum; velocity += g), since the optimizer keeps it "
             "from one step to the next (velocity = ... only renames a new array)",
             wrong(keep_velocity=False)),
            ("the momentum is ignored: velocity = momentum * velocity + g, then "
             "param -= lr * velocity", wrong(use_momentum=False)),
            ("the weight decay is ignored: g = grad + weight_decay * param",
             wrong(use_decay=False)),
            ("the weight decay belongs in g, before the momentum: g = grad + weight_decay * "
             "param, then velocity = momentum * velocity + g", wrong(decay_outside=True)),
            ("Nesterov momentum is ignored: with nesterov=True, param -= lr * (g + momentum * "
             "velocity)", wrong(use_nesterov=False)),
            ("keep lr out of the velocity (PyTorch's formulation): velocity = momentum * "
             "velocity + g, then param -= lr * velocity", wrong(lr_in_velocity=True)),
            ("the step goes uphill: subtract it, param -= lr * velocity", wrong(sign=-1.0)),
        ]


@register
class Sgd(_OptimCheck):
    name = "optim.SGD"
    function = "SGD"
    reference_name = "PyTorch's SGD written out step by step, without decay of the biases"

    def examples(self):
        return [Case("a weight matrix and a bias, three steps, momentum 0.9, weight decay 0.1", {
            "w": np.array([[1.0, -2.0], [0.5, 3.0]]), "b": np.array([1.0, -1.0]),
            "grads_w": np.array([[[1.0, 0.0], [-1.0, 2.0]], [[0.5, 0.5], [0.0, 1.0]],
                                 [[-1.0, 1.0], [2.0, 0.0]]]),
            "grads_b": np.array([[1.0, 2.0], [0.5, -0.5], [0.0, 1.0]]),
            "lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "nesterov": 0})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            rows, cols = (int(n) for n in rng.integers(1, 5, size=2))
            steps = int(rng.integers(2, 5))
            momentum = (0.9, 0.0, 0.5)[i % 3]
            weight_decay = (0.1, 0.01, 0.0, 0.05)[i % 4]
            nesterov = int(momentum > 0 and i % 2 == 1)
            cases.append(Case(
                f"random case {i}: {steps} steps, momentum {momentum}, weight decay "
                f"{weight_decay}, nesterov {bool(nesterov)}", {
                    "w": rng.normal(size=(rows, cols)), "b": rng.normal(size=cols),
                    "grads_w": rng.normal(size=(steps, rows, cols)),
                    "grads_b": rng.normal(size=(steps, cols)),
                    "lr": float(rng.uniform(0.01, 0.3)), "momentum": momentum,
                    "weight_decay": weight_decay, "nesterov": nesterov}))
        return cases

    def call(self, w, b, grads_w, grads_b, lr, momentum, weight_decay, nesterov):
        params = {"w": np.array(w, dtype=np.float64), "b": np.array(b, dtype=np.float64)}
        optimizer = self.target()(params, lr=float(lr), momentum=float(momentum),
                                  weight_decay=float(weight_decay), nesterov=bool(nesterov))
        for gw, gb in zip(grads_w, grads_b):
            optimizer.step({"w": np.array(gw), "b": np.array(gb)})
        return {"w": params["w"], "b": params["b"]}

    def reference(self, w, b, grads_w, grads_b, lr, momentum, weight_decay, nesterov):
        lrs = np.full(len(grads_w), float(lr))
        return {"w": sgd_reference(w, grads_w, lrs, momentum, weight_decay, nesterov)[0],
                "b": sgd_reference(b, grads_b, lrs, momentum, 0.0, nesterov)[0]}

    def mistakes(self, w, b, grads_w, grads_b, lr, momentum, weight_decay, nesterov):
        lrs = np.full(len(grads_w), float(lr))
        return [
            ("the biases (1-D arrays) must not be decayed: SGD.decays(name) is False for them",
             {"b": sgd_reference(b, grads_b, lrs, momentum, weight_decay, nesterov)[0]}),
            ("the momentum is ignored", {
                "w": sgd_reference(w, grads_w, lrs, momentum, weight_decay, nesterov,
                                   use_momentum=False)[0],
                "b": sgd_reference(b, grads_b, lrs, momentum, 0.0, nesterov,
                                   use_momentum=False)[0]}),
        ]
