"""The checks of problem set 3 (dense layers, LeNet5, SGD, training).

Every check passes on the reference package, fails on a stub, and fails on every
plausible wrong version in tests/wrong_versions/{layers,lenet,optim,train}.py,
with the hint written for that mistake. The references themselves are checked
against central differences, against the lecture's and the docstrings' numbers,
and for not calling any exercise of cnnlab.
"""

from __future__ import annotations

import importlib
import json

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
from tests.wrong_versions import layers as wrong_layers
from tests.wrong_versions import lenet as wrong_lenet
from tests.wrong_versions import optim as wrong_optim
from tests.wrong_versions import train as wrong_train

DENSE = ["linear_forward", "linear_backward", "relu_forward", "relu_backward", "tanh_forward",
         "tanh_backward", "sigmoid_forward", "sigmoid_backward", "flatten", "flatten_backward",
         "softmax_cross_entropy"]
CHECKS = [f"layers.{name}" for name in DENSE] + [
    "lenet.lenet_forward", "lenet.lenet_backward", "optim.sgd_update", "optim.SGD", "train.fit"]

WRONG = {**wrong_layers.WRONG_DENSE, **wrong_lenet.WRONG, **wrong_optim.WRONG,
         **wrong_train.WRONG}

# Random cases for the second run of a check: fewer where a case is slow.
COUNT = {"lenet.lenet_forward": 8, "lenet.lenet_backward": 8, "train.fit": 1}

# The hint (a regular expression) each wrong version must get.
HINTS = {
    ("layers.linear_forward", "bias missing"): r"the bias is missing",
    ("layers.linear_backward", "dw transposed (dout.T @ x)"): r"dw must have w's shape",
    ("layers.linear_backward", "dw = x @ dout (x not transposed)"): r"x must be transposed",
    ("layers.linear_backward", "db not summed over the batch"): r"db must have shape \(M,\)",
    ("layers.linear_backward", "db averaged over the batch"): r"db: sum δ over the batch; its mean",
    ("layers.linear_backward", "db summed over the units"): r"db: sum δ over the batch \(axis 0\)",
    ("layers.linear_backward", "dx = dout @ w (w not transposed)"): r"linear_backward raised",
    ("layers.relu_forward", "np.max instead of np.maximum"): r"np\.maximum\(x, 0\), elementwise",
    ("layers.relu_backward", "gradient passed where x < 0 (out >= 0)"):
        r"the gradient must be 0 where the unit was off",
    ("layers.relu_backward", "dout times out"): r"not by the output",
    ("layers.tanh_forward", "exp formula (overflows)"): r"exp\(800\) overflows",
    ("layers.tanh_backward", "1 - tanh(out)**2 (cache taken for x)"):
        r"the cache holds out = tanh\(x\), not x",
    ("layers.tanh_backward", "1 - out (square missing)"): r"the square is missing",
    ("layers.sigmoid_forward", "sign of the exponent flipped"): r"sign of the exponent",
    ("layers.sigmoid_forward", "e^x / (1 + e^x) (overflows)"): r"exp\(800\) overflows",
    ("layers.sigmoid_backward", "(1 - s) factor missing"): r"the factor \(1 - σ\) is missing",
    ("layers.sigmoid_backward", "sigmoid of the cache (cache taken for x)"):
        r"the cache holds out = σ\(x\), not x",
    ("layers.flatten", "channels last"): r"do not move the channel axis",
    ("layers.flatten", "ravel: no batch axis"): r"keep the batch axis",
    ("layers.flatten_backward", "Fortran order"): r"not Fortran order",
    ("layers.flatten_backward", "not reshaped"): r"get back the input's shape",
    ("layers.softmax_cross_entropy", "not divided by N"):
        r"divide by N: the loss is the mean over the batch",
    ("layers.softmax_cross_entropy", "gradient not divided by N"): r"divide it by N too",
    ("layers.softmax_cross_entropy", "no max subtraction (overflow)"):
        r"Subtract each row's maximum",
    ("layers.softmax_cross_entropy", "gradient sign flipped"): r"the sign of the gradient",
    ("lenet.lenet_forward", "activation on the scores"): r"must not go through the activation",
    ("lenet.lenet_forward", "no activation after the convolutions"):
        r"activation after C1 and C3 is missing",
    ("lenet.lenet_forward", "no activation after the hidden layers"):
        r"activation after the hidden fully connected layers is missing",
    ("lenet.lenet_forward", "average pooling before the activation"):
        r"apply the activation before the pooling",
    ("lenet.lenet_forward", "flattened channels last"): r"flatten each image in C order",
    ("lenet.lenet_forward", "input not prepared"): r"lenet_forward raised",
    ("lenet.lenet_backward", "activations skipped"): r"the activations' backward is missing",
    ("lenet.lenet_backward", "conv activations skipped"):
        r"activations after C1 and C3 .* is missing",
    ("lenet.lenet_backward", "hidden activations skipped"):
        r"activations after the hidden layers .* is missing",
    ("lenet.lenet_backward", "caches walked in forward order"): r"lenet_backward raised",
    ("optim.sgd_update", "no momentum"): r"param moved as in plain gradient descent",
    ("optim.sgd_update", "velocity rebound, not updated in place"):
        r"update velocity in place",
    ("optim.sgd_update", "param rebound, not updated in place"): r"param did not change",
    ("optim.sgd_update", "weight decay ignored"): r"the weight decay is ignored",
    ("optim.sgd_update", "weight decay outside the momentum"):
        r"the weight decay belongs in g, before the momentum",
    ("optim.sgd_update", "nesterov ignored"): r"Nesterov momentum is ignored",
    ("optim.sgd_update", "lr folded into the velocity"): r"keep lr out of the velocity",
    ("optim.SGD", "weight decay applied to the biases"): r"biases \(1-D arrays\) must not be "
                                                          r"decayed",
    ("optim.SGD", "momentum ignored"): r"the momentum is ignored",
    ("train.fit", "updates copies of the parameters"): r"the loss did not move from ln 10",
    ("train.fit", "gradient ascent"): r"the loss went up or became NaN",
}

WRONG_CASES = [(name, label, make) for name, variants in WRONG.items()
               for label, make in variants]


def module_of(name):
    return importlib.import_module(f"cnnlab.{name.split('.')[0]}")


def patch(monkeypatch, name, version):
    module, function = module_of(name), name.split(".")[1]
    monkeypatch.setattr(module, function, version(getattr(module, function)))


def stub(*args, **kwargs):
    raise NotImplementedError


# ------------------------------------------------------------------ the reference passes
@pytest.mark.parametrize("name", CHECKS)
def test_check_passes_on_the_reference(name, capsys):
    check(name)
    check(name, seed=2024, count=COUNT.get(name, 40))
    assert capsys.readouterr().out.count("✔") == 2


def test_every_check_is_registered_and_has_wrong_versions():
    for name in CHECKS:
        chk = get_check(name)
        assert chk.name == name and chk.module == f"cnnlab.{name.split('.')[0]}"
        assert callable(getattr(module_of(name), chk.function))
        assert WRONG.get(name), f"{name} has no wrong versions"
    assert set(WRONG) == set(CHECKS)


# ------------------------------------------------------------------ a stub fails
@pytest.mark.parametrize("name", CHECKS)
def test_check_fails_on_a_stub(name, monkeypatch):
    monkeypatch.setattr(module_of(name), name.split(".")[1], stub)
    function = name.split(".")[1]
    expected = ("not implemented yet" if name == "train.fit"
                else f"`{function}` is not implemented yet \\(exercise ")
    with pytest.raises(AssertionError, match=expected):
        check(name)


@pytest.mark.parametrize("exercise", ["lenet.lenet_forward", "lenet.lenet_backward",
                                      "optim.sgd_update"])
def test_training_check_names_the_missing_exercise(exercise, monkeypatch):
    monkeypatch.setattr(module_of(exercise), exercise.split(".")[1], stub)
    with pytest.raises(AssertionError, match=r"training needs stub .* not implemented yet"):
        check("train.fit")


def test_backward_check_says_when_the_forward_is_missing(monkeypatch):
    monkeypatch.setattr(module_of("lenet.lenet_forward"), "lenet_forward", stub)
    with pytest.raises(AssertionError, match="needs the caches of your lenet_forward"):
        check("lenet.lenet_backward")


# ------------------------------------------------------------------ wrong versions fail
@pytest.mark.parametrize("name, label, make", WRONG_CASES,
                         ids=[f"{n}-{label}" for n, label, _ in WRONG_CASES])
def test_wrong_version_fails_with_its_hint(name, label, make, monkeypatch):
    patch(monkeypatch, name, make)
    with pytest.raises(AssertionError, match=HINTS[(name, label)]):
        check(name)  # the visible test already catches it
    with pytest.raises(AssertionError):
        check(name, seed=31337, count=COUNT.get(name, 40))


def test_every_wrong_version_has_an_expected_hint():
    assert set(HINTS) == {(name, label) for name, label, _ in WRONG_CASES}


def test_training_check_fails_when_the_update_is_wrong(monkeypatch):
    """A wrong sgd_update breaks training too (here: a step uphill)."""
    original = module_of("optim.sgd_update").sgd_update

    def uphill(param, grad, velocity, *args, **kwargs):
        original(param, -np.asarray(grad), velocity, *args, **kwargs)

    monkeypatch.setattr(module_of("optim.sgd_update"), "sgd_update", uphill)
    with pytest.raises(AssertionError, match="the loss went up or became NaN"):
        check("train.fit")


def test_lenet_backward_check_blames_a_wrong_forward(monkeypatch):
    patch(monkeypatch, "lenet.lenet_forward", wrong_lenet.forward_with(act_on_scores=True))
    with pytest.raises(AssertionError, match="the scores of your lenet_forward are wrong"):
        check("lenet.lenet_backward")


# ------------------------------------------------------------------ the references
@pytest.mark.parametrize("name", CHECKS)
def test_references_do_not_use_the_exercises(name, monkeypatch):
    """Every exercise of cnnlab stubbed: the references still compute."""
    for module_name in ("cnnlab.pooling", "cnnlab.layers", "cnnlab.layers.conv",
                        "cnnlab.layers.dense", "cnnlab.gradcheck", "cnnlab.signal",
                        "cnnlab.lenet", "cnnlab.optim"):
        module = importlib.import_module(module_name)
        for function in getattr(module, "__all__", []):
            monkeypatch.setattr(module, function, stub)
    chk = get_check(name)
    for case in chk.cases(seed=3, count=min(COUNT.get(name, 10), 4)):
        for value in chk.reference(**case.inputs).values():
            assert np.all(np.isfinite(np.asarray(value, dtype=float)))


def _json_safe(value):
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, tuple):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


@pytest.mark.parametrize("name", CHECKS)
def test_case_inputs_can_cross_a_process_boundary(name):
    chk = get_check(name)
    for case in chk.cases(seed=0) + chk.cases(seed=9, count=COUNT.get(name, 40)):
        for key, value in case.inputs.items():
            assert _json_safe(value), f"{name}: input {key} of {case.label} is {type(value)}"
            if not isinstance(value, np.ndarray):
                json.dumps(value)


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
    untrained = {k: v.copy() for k, v in trained.items()}
    from cnnlab.lenet import LeNet5

    fresh = LeNet5(channels=(4, 8), hidden=(32,), input_size=28, seed=0).params
    problem = chk.compare(case, {**untrained, **fresh}, expected)
    assert problem and "did not move from ln 10" in problem
    missing = dict(trained)
    missing.pop("F5.w")
    assert "no parameter 'F5.w'" in chk.compare(case, missing, expected)
