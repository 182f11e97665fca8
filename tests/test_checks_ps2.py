"""The checks of problem set 2 (pooling, conv layer backprop, gradient checking).

What every check must do (pass on the reference, fail on a stub and on each wrong version
of tests/wrong_versions/{pooling,layers,gradcheck}.py with its hint) is in
tests/test_check_contract.py. Here: the references against the lecture's numbers and
central differences, and what is particular to a check of this problem set.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cnnlab.checks import check, get_check
from cnnlab.checks.conv import conv_backward_loop, conv_reference, pair
from tests.wrong_versions import gradcheck as wrong_gradcheck
from tests.wrong_versions import plant


def test_backward_checks_fail_when_only_the_backward_is_wrong(monkeypatch):
    # the forward of the module is called too, but it is the backward that is judged
    plant(monkeypatch, "pooling.max_pool2d_backward",
          lambda ref: lambda dout, cache: np.zeros(cache["x"].shape))
    with pytest.raises(AssertionError, match="max_pool2d_backward is wrong"):
        check("pooling.max_pool2d_backward")
    plant(monkeypatch, "layers.conv2d_backward",
          lambda ref: lambda dout, cache: (lambda dx, dw, db: (dx, dw, 0 * db))(
              *ref(dout, cache)))
    with pytest.raises(AssertionError, match="db: values differ"):
        check("layers.conv2d_backward")


# ------------------------------------------------------------------ the references


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
    plant(monkeypatch, "gradcheck.numerical_gradient",
          lambda ref: wrong_gradcheck.central_difference(restore=False))
    assert chk.call(**case.inputs)["entries_of_x_not_restored"] == case.inputs["X"].size
    for key, value in before.items():
        np.testing.assert_array_equal(case.inputs[key], value)


def convolution_matrix_of_the_layer(x_shape, w, stride, padding):
    """The matrix of conv2d (input flattened -> output flattened), one basis image at a time,
    from the checks' forward reference (SciPy correlations)."""
    columns = []
    for index in range(int(np.prod(x_shape))):
        basis = np.zeros(int(np.prod(x_shape)))
        basis[index] = 1.0
        columns.append(conv_reference(basis.reshape(x_shape), w, np.zeros(w.shape[0]), stride,
                                      padding, 1).ravel())
    return np.stack(columns, axis=1)


def test_conv_transpose2d_reference_is_the_transposed_matrix_of_the_convolution():
    """On every case of the check: reference = Tᵀ input, with T the matrix of the conv2d
    (weight read as conv2d's (F, C, KH, KW)) whose output has the input's shape."""
    chk = get_check("layers.conv_transpose2d")
    for case in chk.cases(seed=0, count=14):
        inputs = case.inputs
        x, w = np.asarray(inputs["input"], dtype=float), np.asarray(inputs["weight"], float)
        stride, padding = inputs.get("stride", 1), inputs.get("padding", 0)
        want = chk.reference(**inputs)["out"]
        if "bias" in inputs:
            want = want - np.asarray(inputs["bias"]).reshape(1, -1, 1, 1)
        n, c_out = x.shape[0], w.shape[1]
        image = (1, c_out) + want.shape[2:]
        T = convolution_matrix_of_the_layer(image, w, stride, padding)
        assert T.shape[0] == int(np.prod(x.shape[1:])), case.label  # the shapes fit exactly
        for i in range(n):
            np.testing.assert_allclose(want[i].ravel(), T.T @ x[i].ravel(), atol=1e-12,
                                       err_msg=case.label)


def test_conv_transpose2d_reference_reproduces_the_lecture_and_the_notebook():
    chk = get_check("layers.conv_transpose2d")
    stride_one, stride_two, padded = chk.examples()
    np.testing.assert_array_equal(chk.reference(**stride_one.inputs)["out"][0, 0],
                                  [[1, 5, 6], [5, 21, 20], [6, 20, 16]])  # = δ * K, full
    np.testing.assert_array_equal(chk.reference(**stride_two.inputs)["out"][0, 0],
                                  [[1, 2, 3, 6], [3, 4, 9, 12], [2, 4, 4, 8], [6, 8, 12, 16]])
    # stride 2, padding 1, 3x3 kernel: (3 - 1) * 2 - 2 + 3 = 5 pixels a side
    assert chk.reference(**padded.inputs)["out"].shape == (1, 1, 5, 5)
    for case in chk.cases(seed=1, count=7):
        stride, padding = pair(case.inputs.get("stride", 1)), pair(case.inputs.get("padding", 0))
        h, w = np.shape(case.inputs["input"])[2:]
        kh, kw = np.shape(case.inputs["weight"])[2:]
        assert chk.reference(**case.inputs)["out"].shape[2:] == (
            (h - 1) * stride[0] - 2 * padding[0] + kh, (w - 1) * stride[1] - 2 * padding[1] + kw)


def test_conv_transpose2d_mistakes_differ_from_the_reference_where_they_apply():
    chk = get_check("layers.conv_transpose2d")
    hints = set()
    for case in chk.cases(seed=0, count=14):
        right = chk.reference(**case.inputs)
        hints.update(hint.split(":")[0] for hint, _ in chk.wrong_answers(case, right))
    assert hints == {"the kernel was not rotated", "the stride was ignored",
                     "the padding was ignored", "the padding was added",
                     "the padding was cut off one side only", "the bias is missing",
                     "weight is (C_in, C_out, KH, KW), as in PyTorch"}
