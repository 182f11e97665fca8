"""The checks of problem set 3 (dense layers, LeNet5, SGD, training).

What every check must do (pass on the reference, fail on a stub and on each wrong version
of tests/wrong_versions/{layers,lenet,optim,train}.py with its hint, references that call
no exercise) is in tests/test_check_contract.py. Here: the references against central
differences and the lecture's and docstrings' numbers, and the training check's messages.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from cnnlab.checks import check, get_check
from cnnlab.checks.lenet import (
    CLASSIC,
    CONFIGS,
    make_params,
    param_shapes,
    reference_backward,
    reference_forward,
    reference_loss,
)
from tests.wrong_versions import lenet as wrong_lenet
from tests.wrong_versions import plant


def module_of(name):
    return importlib.import_module(f"cnnlab.{name.split('.')[0]}")


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("exercise", ["lenet.lenet_forward", "lenet.lenet_backward",
                                      "optim.sgd_update"])
def test_training_check_names_the_missing_exercise(exercise, monkeypatch):
    monkeypatch.setattr(module_of(exercise), exercise.split(".")[1], stub)
    with pytest.raises(AssertionError, match=r"training needs stub .* not implemented yet"):
        check("train.fit")


def test_backward_check_says_when_the_forward_is_missing(monkeypatch):
    monkeypatch.setattr(module_of("lenet.lenet_forward"), "lenet_forward", stub)
    with pytest.raises(AssertionError, match="needs the tape of your lenet_forward"):
        check("lenet.lenet_backward")


def test_training_check_fails_when_the_update_is_wrong(monkeypatch):
    """A wrong sgd_update breaks training too (here: a step uphill)."""
    original = module_of("optim.sgd_update").sgd_update

    def uphill(param, grad, velocity, *args, **kwargs):
        original(param, -np.asarray(grad), velocity, *args, **kwargs)

    monkeypatch.setattr(module_of("optim.sgd_update"), "sgd_update", uphill)
    with pytest.raises(AssertionError, match="the loss went up or became NaN"):
        check("train.fit")


def test_lenet_backward_check_blames_a_wrong_forward(monkeypatch):
    plant(monkeypatch, "lenet.lenet_forward", wrong_lenet.forward_with(act_on_scores=True))
    with pytest.raises(AssertionError, match="the scores of your lenet_forward are wrong"):
        check("lenet.lenet_backward")


# ------------------------------------------------------------------ the references


def central_differences(function, x, indices, h=1e-6):
    grad = []
    for index in indices:
        saved = x[index]
        x[index] = saved + h
        plus = function()
        x[index] = saved - h
        minus = function()
        x[index] = saved
        grad.append((plus - minus) / (2 * h))
    return np.array(grad)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-{c[4]}")
def test_lenet_backward_reference_matches_central_differences(config):
    activation, pooling, channels, hidden, input_size = config
    rng = np.random.default_rng(21)
    x = rng.uniform(0.0, 1.0, size=(2, 28, 28))
    dscores = rng.normal(size=(2, 10))
    params = make_params(5, channels, hidden, input_size)
    _, tape = reference_forward(params, x, activation, pooling, hidden, input_size)
    grads = reference_backward(params, tape, dscores, activation)

    def objective():
        scores, _ = reference_forward(params, x, activation, pooling, hidden, input_size)
        return np.sum(scores * dscores)

    for name, value in params.items():
        flat = [tuple(int(i) for i in np.unravel_index(k, value.shape))
                for k in rng.choice(value.size, size=min(value.size, 6), replace=False)]
        numeric = central_differences(objective, value, flat)
        np.testing.assert_allclose([grads[name][i] for i in flat], numeric, rtol=1e-5,
                                   atol=1e-7, err_msg=name)


def test_reference_network_has_lenet5s_shapes_and_matches_the_package():
    from cnnlab.lenet import LeNet5

    activation, pooling, channels, hidden, input_size = CLASSIC
    model = LeNet5(dtype=np.float64)
    assert {k: v.shape for k, v in model.params.items()} == param_shapes(channels, hidden,
                                                                         input_size)
    assert sum(np.prod(s) for s in param_shapes(channels, hidden, input_size).values()) == 61706
    params = make_params(3, channels, hidden, input_size)
    for name, value in params.items():
        model.params[name][...] = value
    x = np.random.default_rng(4).integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    y = np.array([3, 1, 4])
    reference, _ = reference_forward(params, x, activation, pooling, hidden, input_size)
    np.testing.assert_allclose(model.forward(x), reference, rtol=1e-9, atol=1e-12)
    assert np.isclose(model.loss(x, y)[0], reference_loss(params, x, y, activation, pooling,
                                                          hidden, input_size))


def test_dense_references_reproduce_the_docstrings():
    linear = get_check("layers.linear_forward")
    np.testing.assert_array_equal(linear.reference(**linear.examples()[0].inputs)["out"],
                                  [[2, 5, 9], [5, 9, 7], [8, 13, 5]])
    backward = get_check("layers.linear_backward").reference(
        **get_check("layers.linear_backward").examples()[0].inputs)
    np.testing.assert_array_equal(backward["dx"], [[1, 2], [-1, 1]])
    np.testing.assert_array_equal(backward["dw"], [[1, 3, 3], [2, 4, 4]])
    np.testing.assert_array_equal(backward["db"], [1, 1, 1])
    softmax = get_check("layers.softmax_cross_entropy")
    first, large, _ = (softmax.reference(**c.inputs) for c in softmax.examples())
    assert round(float(first["loss"]), 4) == 0.417
    np.testing.assert_allclose(first["dscores"], [[-0.341, 0.2424, 0.0986]], atol=1e-4)
    assert float(large["loss"]) == 1000.0
    sgd = get_check("optim.sgd_update")
    right = sgd.reference(**sgd.examples()[0].inputs)
    np.testing.assert_allclose(right["param"], [-0.45, 3.45])
    np.testing.assert_allclose(right["velocity"], [1.9, -1.9])


def test_softmax_reference_matches_central_differences():
    chk = get_check("layers.softmax_cross_entropy")
    for case in chk.cases(seed=6, count=8):
        scores = np.array(case.inputs["scores"], dtype=float)
        y = case.inputs["y"]
        right = chk.reference(scores=scores, y=y)

        def loss(scores=scores, y=y):
            return float(chk.reference(scores=scores, y=y)["loss"])

        indices = list(np.ndindex(scores.shape))
        numeric = central_differences(loss, scores, indices, h=1e-5)
        np.testing.assert_allclose([right["dscores"][i] for i in indices], numeric, atol=1e-6)


def test_training_check_is_judged_by_the_reference_loss():
    """compare() recomputes the loss; untrained weights fail, trained ones pass."""
    chk = get_check("train.fit")
    case = chk.examples()[0]
    expected = chk.reference(**case.inputs)
    trained = chk.call(**case.inputs)
    assert chk.compare(case, trained, expected) is None
    from cnnlab.checks.train import CONFIG
    x, y = case.inputs["x"], case.inputs["y"]  # measured as the plain-NumPy LeNet5 would
    assert np.isclose(chk.training_loss(trained, x, y), reference_loss(
        trained, x, y, CONFIG["activation"], CONFIG["pooling"], CONFIG["hidden"],
        CONFIG["input_size"]), rtol=1e-9, atol=0)
    untrained = {k: v.copy() for k, v in trained.items()}
    from cnnlab.lenet import LeNet5

    fresh = LeNet5(channels=(4, 8), hidden=(32,), input_size=28, seed=0).params
    problem = chk.compare(case, {**untrained, **fresh}, expected)
    assert problem and "did not move from ln 10" in problem
    missing = dict(trained)
    missing.pop("F5.w")
    assert "no parameter 'F5.w'" in chk.compare(case, missing, expected)
