"""The checks of problem set 2 (pooling, conv layer backprop, gradient checking).

Every check passes on the reference package, fails on a stub, and fails on every
plausible wrong version in tests/wrong_versions/{pooling,layers,gradcheck}.py,
with the hint written for that mistake. The references themselves are checked
against the lecture's numbers and against central differences.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import scipy.signal

from cnnlab.checks import check, get_check
from cnnlab.checks.layers import conv_backward_loop, conv_reference
from tests.wrong_versions import gradcheck as wrong_gradcheck
from tests.wrong_versions import layers as wrong_layers
from tests.wrong_versions import pooling as wrong_pooling

CHECKS = [
    "pooling.upsample",
    "pooling.max_pool2d_forward",
    "pooling.max_pool2d_backward",
    "pooling.avg_pool2d_forward",
    "pooling.avg_pool2d_backward",
    "layers.conv_delta_input",
    "layers.conv_grad_kernel",
    "layers.conv_grad_bias",
    "layers.conv2d_forward",
    "layers.conv2d_backward",
    "gradcheck.numerical_gradient",
    "gradcheck.relative_error",
]

WRONG = {**wrong_pooling.WRONG, **wrong_layers.WRONG, **wrong_gradcheck.WRONG}

# The hint (a regular expression) each wrong version must get; None: no hint, only the
# plain description of the difference (given here as what it must say instead).
HINTS = {
    ("pooling.upsample", "np.tile instead of np.kron"): r"np\.tile repeats the whole array",
    ("pooling.upsample", "kh and kw swapped"): r"kw x kh instead of kh x kw",
    ("pooling.upsample", "float block of ones (dtype changes)"): r"expected dtype int64",
    ("pooling.max_pool2d_forward", "mean instead of max"): r"average pooling",
    ("pooling.max_pool2d_forward", "stride ignored"): r"stride was ignored",
    ("pooling.avg_pool2d_forward", "sum instead of mean"): r"divide by the window area",
    ("pooling.avg_pool2d_forward", "stride ignored"): r"stride was ignored",
    ("pooling.avg_pool2d_forward", "reshape into non-overlapping blocks"):
        r"stride was ignored",
    ("pooling.max_pool2d_backward", "δ routed to every cell of the window"):
        r"δ was routed to every cell of the window: route it only to the argmax",
    ("pooling.max_pool2d_backward", "overwriting on overlapping windows (masked taps)"):
        r"overlapping windows: add the gradients, don't overwrite",
    ("pooling.max_pool2d_backward", "overwriting on overlapping windows (loop)"):
        r"overlapping windows: add the gradients, don't overwrite",
    ("pooling.max_pool2d_backward", "δ routed to every tied maximum"): r"ties:",
    ("pooling.max_pool2d_backward", "windows assumed every `size` pixels"):
        r"start every `stride` pixels",
    ("pooling.avg_pool2d_backward", "no division by the window area"):
        r"divide by the window area",
    ("pooling.avg_pool2d_backward", "Kronecker upsampling whatever the stride"):
        r"Kronecker upsampling is the backward only when the windows tile",
    ("pooling.avg_pool2d_backward", "overwriting on overlapping windows"):
        r"add the gradients, don't overwrite",
    ("layers.conv_delta_input", "'valid' instead of 'full'"): r"the 'valid' convolution",
    ("layers.conv_delta_input", "no kernel rotation (correlation)"):
        r"rotated by 180 degrees",
    ("layers.conv_delta_input", "'same' instead of 'full'"): r"the 'same' convolution",
    ("layers.conv_grad_kernel", "convolution instead of correlation"):
        r"must be a correlation of the input with δ, not a convolution",
    ("layers.conv_grad_kernel", "'full' instead of 'valid'"): r"'full' correlation",
    ("layers.conv_grad_bias", "mean instead of sum"): r"the mean of δ",
    ("layers.conv2d_forward", "convolution (flipped kernel)"): r"do not rotate the kernel",
    ("layers.conv2d_forward", "stride ignored"): r"stride was ignored",
    ("layers.conv2d_forward", "padding ignored"): r"padding was ignored",
    ("layers.conv2d_forward", "dilation ignored"): r"dilation was ignored",
    ("layers.conv2d_forward", "bias missing"): r"bias is missing",
    ("layers.conv2d_backward", "dw from a convolution"):
        r"dw: the kernel gradient must be a correlation of the input with δ",
    ("layers.conv2d_backward", "dx keeps the padding"): r"dx still has the padding",
    ("layers.conv2d_backward", "dx from a correlation"): r"full convolution δ \* K",
    ("layers.conv2d_backward", "dx overwritten on overlapping receptive fields"):
        r"add their contributions, don't overwrite",
    ("layers.conv2d_backward", "db per image"): r"db: sum δ over the batch",
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

WRONG_CASES = [(name, label, make) for name, variants in WRONG.items()
               for label, make in variants]


def patch(monkeypatch, name, version):
    group, function = name.split(".")
    module = importlib.import_module(f"cnnlab.{group}")
    original = getattr(module, function)
    monkeypatch.setattr(module, function, version(original) if callable(version) else version)


def stub(*args, **kwargs):
    raise NotImplementedError


# ------------------------------------------------------------------ the reference passes
@pytest.mark.parametrize("name", CHECKS)
def test_check_passes_on_the_reference(name, capsys):
    check(name)
    check(name, seed=2024, count=40)
    assert capsys.readouterr().out.count("✔") == 2


def test_every_check_of_the_problem_set_is_registered_and_has_wrong_versions():
    for name in CHECKS:
        chk = get_check(name)
        assert chk.name == name and chk.module == f"cnnlab.{name.split('.')[0]}"
        assert WRONG.get(name), f"{name} has no wrong versions"
    assert set(WRONG) == set(CHECKS)


# ------------------------------------------------------------------ a stub fails
@pytest.mark.parametrize("name", CHECKS)
def test_check_fails_on_a_stub(name, monkeypatch):
    group, function = name.split(".")
    monkeypatch.setattr(importlib.import_module(f"cnnlab.{group}"), function, stub)
    with pytest.raises(AssertionError, match=f"`{function}` is not implemented yet \\(exercise "):
        check(name)


# ------------------------------------------------------------------ wrong versions fail
@pytest.mark.parametrize("name, label, make", WRONG_CASES,
                         ids=[f"{n}-{label}" for n, label, _ in WRONG_CASES])
def test_wrong_version_fails_with_its_hint(name, label, make, monkeypatch):
    patch(monkeypatch, name, make)
    with pytest.raises(AssertionError, match=HINTS[(name, label)]):
        check(name)  # the visible test already catches it
    with pytest.raises(AssertionError):
        check(name, seed=31337, count=40)


def test_every_wrong_version_has_an_expected_hint():
    assert set(HINTS) == {(name, label) for name, label, _ in WRONG_CASES}


def test_backward_checks_fail_when_only_the_backward_is_wrong(monkeypatch):
    # the forward of the module is called too, but it is the backward that is judged
    patch(monkeypatch, "pooling.max_pool2d_backward",
          lambda ref: lambda dout, cache: np.zeros(cache["x"].shape))
    with pytest.raises(AssertionError, match="max_pool2d_backward is wrong"):
        check("pooling.max_pool2d_backward")
    patch(monkeypatch, "layers.conv2d_backward",
          lambda ref: lambda dout, cache: (lambda dx, dw, db: (dx, dw, 0 * db))(
              *ref(dout, cache)))
    with pytest.raises(AssertionError, match="db: values differ"):
        check("layers.conv2d_backward")


# ------------------------------------------------------------------ the references
@pytest.mark.parametrize("name", CHECKS)
def test_references_do_not_use_the_exercises(name, monkeypatch):
    """Every exercise of cnnlab stubbed: the references still compute."""
    for module_name in ("cnnlab.pooling", "cnnlab.layers", "cnnlab.layers.conv",
                        "cnnlab.gradcheck", "cnnlab.signal"):
        module = importlib.import_module(module_name)
        for function in getattr(module, "__all__", []):
            monkeypatch.setattr(module, function, stub)
    chk = get_check(name)
    for case in chk.cases(seed=3, count=10):
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
    for case in chk.cases(seed=0) + chk.cases(seed=9, count=40):
        for key, value in case.inputs.items():
            assert _json_safe(value), f"{name}: input {key} of {case.label} is {type(value)}"
            if not isinstance(value, np.ndarray):
                json.dumps(value)


def central_differences(function, x, h=1e-6):
    grad = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        plus = function()
        x[index] = saved - h
        minus = function()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


def test_conv2d_backward_reference_matches_central_differences():
    chk = get_check("layers.conv2d_backward")
    for case in chk.cases(seed=4, count=7):
        inputs = {k: (v.astype(float) if isinstance(v, np.ndarray) else v)
                  for k, v in case.inputs.items()}
        x, w, b, dout = inputs["x"], inputs["w"], inputs["b"], inputs["dout"]
        layer = {k: inputs[k] for k in ("stride", "padding", "dilation")}

        def loss(x=x, w=w, b=b, layer=layer, dout=dout):
            return np.sum(conv_reference(x, w, b, **layer) * dout)

        ref = chk.reference(**inputs)
        np.testing.assert_allclose(ref["dx"], central_differences(loss, x), atol=1e-6)
        np.testing.assert_allclose(ref["dw"], central_differences(loss, w), atol=1e-6)
        np.testing.assert_allclose(ref["db"], central_differences(loss, b), atol=1e-6)


def test_pooling_backward_references_match_central_differences():
    from cnnlab.checks.pooling import pool_loop

    for name, reduce in (("pooling.max_pool2d_backward", np.max),
                         ("pooling.avg_pool2d_backward", np.mean)):
        chk = get_check(name)
        for case in chk.cases(seed=5, count=8)[len(chk.examples()):]:  # distinct values
            x = np.array(case.inputs["x"], dtype=float)
            size, stride = case.inputs["size"], case.inputs.get("stride")
            dout = case.inputs["dout"]

            def loss(x=x, size=size, stride=stride, dout=dout, reduce=reduce):
                return np.sum(pool_loop(x, size, stride, reduce) * dout)

            np.testing.assert_allclose(chk.reference(**case.inputs)["dx"],
                                       central_differences(loss, x), atol=1e-6)


def test_references_reproduce_the_lecture():
    kernel_grad = get_check("layers.conv_grad_kernel")
    case = kernel_grad.examples()[0]
    np.testing.assert_allclose(kernel_grad.reference(**case.inputs)["out"],
                               [[20.4, 2.8], [4.9, 12.7]])
    avg = get_check("pooling.avg_pool2d_backward")
    np.testing.assert_array_equal(
        avg.reference(**avg.examples()[0].inputs)["dx"][0, 0],
        [[0.25, 0.25, 0.75, 0.75], [0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1]])
    routing = get_check("pooling.max_pool2d_backward")
    np.testing.assert_array_equal(  # the lecture's routing picture
        routing.reference(**routing.examples()[1].inputs)["dx"][0, 0],
        [[0, 0, 0, 3], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 4, 0]])
    forward = get_check("pooling.max_pool2d_forward")
    np.testing.assert_array_equal(forward.reference(**forward.examples()[0].inputs)["out"],
                                  [[[[6, 8], [3, 4]]]])
    shared = routing.examples()[2]
    assert routing.reference(**shared.inputs)["dx"][0, 0, 2, 4] == 2 + 3 + 5 + 6
    delta_input = get_check("layers.conv_delta_input")
    np.testing.assert_array_equal(
        delta_input.reference(**delta_input.examples()[0].inputs)["out"],
        [[1, 5, 6], [5, 21, 20], [6, 20, 16]])


def test_conv_backward_loop_stride_one_is_the_lecture_formulas():
    rng = np.random.default_rng(8)
    x, w = rng.normal(size=(1, 1, 6, 5)), rng.normal(size=(1, 1, 3, 2))
    dout = rng.normal(size=(1, 1, 4, 4))
    dx, dw = conv_backward_loop(x, w, dout, 1, 0, 1)
    np.testing.assert_allclose(dx[0, 0], scipy.signal.convolve2d(dout[0, 0], w[0, 0]))
    np.testing.assert_allclose(dw[0, 0], scipy.signal.correlate2d(x[0, 0], dout[0, 0], "valid"))


def test_numerical_gradient_check_catches_one_sided_differences_everywhere():
    """The curvature is high enough that a forward difference fails nearly every case."""
    from cnnlab.checks.gradcheck import analytic_gradient, one_sided

    chk = get_check("gradcheck.numerical_gradient")
    cases = chk.cases(seed=0, count=40)
    caught = 0
    for case in cases:
        exact = analytic_gradient(**case.inputs)
        tolerance = chk.atol + chk.rtol * np.abs(exact)
        caught += bool(np.any(np.abs(one_sided(**case.inputs) - exact) > tolerance))
        central = chk.call(**case.inputs)["grad"]
        assert np.all(np.abs(central - exact) < 0.2 * tolerance)  # a wide margin
    assert caught >= 0.9 * len(cases)


def test_numerical_gradient_check_leaves_the_case_data_alone(monkeypatch):
    chk = get_check("gradcheck.numerical_gradient")
    case = chk.cases(seed=1, count=3)[-1]
    before = {k: v.copy() for k, v in case.inputs.items()}
    patch(monkeypatch, "gradcheck.numerical_gradient",
          lambda ref: wrong_gradcheck.central_difference(restore=False))
    assert chk.call(**case.inputs)["entries_of_x_not_restored"] == case.inputs["X"].size
    for key, value in before.items():
        np.testing.assert_array_equal(case.inputs[key], value)
