"""The checks of problem set 4 (notebook 05, the layers of modern CNNs).

What every check must do (pass on the reference, fail on a stub and on each wrong version
of tests/wrong_versions/modern.py with its hint) is in tests/test_check_contract.py.
Here: the checks live in cnnlab/layers/modern.py (and shapes.py) with at least two wrong
versions each, the layers match numerical gradients, and their argument checks raise
ValueErrors that name the argument.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.layers as cl
from cnnlab.checks import get_check
from cnnlab.gradcheck import numerical_gradient, relative_error
from tests.wrong_versions import modern as wrong_modern

FUNCTIONS = ["conv1x1_forward", "global_avg_pool_forward", "global_avg_pool_backward",
             "leaky_relu_forward", "leaky_relu_backward", "he_init", "glorot_init",
             "batchnorm2d_forward", "batchnorm2d_backward", "dropout_forward",
             "dropout_backward"]
CHECKS = [f"layers.{name}" for name in FUNCTIONS]
WRONG = wrong_modern.WRONG


def test_every_check_is_in_modern_py_and_has_two_wrong_versions():
    for name in CHECKS:
        chk = get_check(name)
        assert chk.module == "cnnlab.layers"
        assert chk.source_file() == "cnnlab/layers/modern.py"
        assert len(WRONG.get(name, [])) >= 2, f"{name} needs at least two wrong versions"
    assert set(WRONG) == {*CHECKS, "layers.window_geometry", "layers.layer_costs"}


# ------------------------------------------------------------------ numerical gradients
RNG = np.random.default_rng(13)


def assert_gradient(analytic, f, variable, dout, tol=1e-7):
    numeric = numerical_gradient(f, variable, df=dout)
    assert relative_error(analytic, numeric) < tol


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batchnorm_backward_matches_numerical_gradients(mode):
    x = RNG.normal(1.0, 2.0, size=(3, 2, 3, 2))
    gamma, beta = RNG.normal(size=2), RNG.normal(size=2)
    stats = (RNG.normal(size=2), RNG.uniform(0.5, 2.0, size=2))

    def forward():
        return cl.batchnorm2d_forward(x, gamma, beta, stats[0].copy(), stats[1].copy(),
                                      mode=mode)[0]

    out, cache = cl.batchnorm2d_forward(x, gamma, beta, stats[0].copy(), stats[1].copy(),
                                        mode=mode)
    dout = RNG.normal(size=out.shape)
    dx, dgamma, dbeta = cl.batchnorm2d_backward(dout, cache)
    assert_gradient(dx, forward, x, dout)
    assert_gradient(dgamma, forward, gamma, dout)
    assert_gradient(dbeta, forward, beta, dout)


def test_batchnorm_backward_reference_matches_numerical_gradients():
    from cnnlab.checks.modern import bn_backward_graph, bn_forward_reference

    chk = get_check("layers.batchnorm2d_backward")
    for case in chk.cases(seed=4, count=6):
        inputs = dict(case.inputs)
        x = np.array(inputs.pop("x"), dtype=float)
        dout = inputs.pop("dout")
        del inputs["x_hat"], inputs["inv_std"]  # the forward's cache, part of each case
        right = chk.reference(x=x, dout=dout, **inputs)

        def forward(inputs=inputs, x=x):
            return bn_forward_reference(x, inputs["gamma"], np.zeros_like(inputs["gamma"]),
                                        inputs["running_mean"], inputs["running_var"],
                                        inputs["mode"], 0.1, inputs["eps"])["out"]

        np.testing.assert_allclose(right["dx"], numerical_gradient(forward, x, df=dout),
                                   rtol=1e-5, atol=1e-8)
        assert np.array_equal(bn_backward_graph(x=x, dout=dout, **inputs)[0], right["dx"])


def test_batchnorm_train_mode_normalises_and_updates_the_running_statistics():
    x = RNG.normal(5.0, 3.0, size=(8, 3, 4, 4))
    mean, var = np.zeros(3), np.ones(3)
    out, _ = cl.batchnorm2d_forward(x, np.ones(3), np.zeros(3), mean, var, momentum=1.0)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3), ddof=1))
    # eval mode with those statistics maps the same batch (almost) the same way
    evaluated, _ = cl.batchnorm2d_forward(x, np.ones(3), np.zeros(3), mean, var, mode="eval")
    np.testing.assert_allclose(evaluated, out, rtol=0.05, atol=0.05)


def test_small_layers_match_numerical_gradients():
    x = RNG.normal(size=(2, 3, 4, 5))
    out, cache = cl.global_avg_pool_forward(x)
    dout = RNG.normal(size=out.shape)
    assert_gradient(cl.global_avg_pool_backward(dout, cache),
                    lambda: cl.global_avg_pool_forward(x)[0], x, dout)
    x = RNG.normal(size=(3, 4)) + 0.05  # away from the kink
    out, cache = cl.leaky_relu_forward(x, 0.2)
    dout = RNG.normal(size=out.shape)
    assert_gradient(cl.leaky_relu_backward(dout, cache),
                    lambda: cl.leaky_relu_forward(x, 0.2)[0], x, dout)
    x = RNG.normal(size=(3, 4, 2))
    out, cache = cl.dropout_forward(x, 0.3, seed=5)
    dout = RNG.normal(size=out.shape)
    assert_gradient(cl.dropout_backward(dout, cache),
                    lambda: cl.dropout_forward(x, 0.3, seed=5)[0], x, dout)


def test_conv1x1_equals_a_1x1_conv2d():
    x, w, b = RNG.normal(size=(2, 3, 5, 4)), RNG.normal(size=(6, 3, 1, 1)), RNG.normal(size=6)
    np.testing.assert_allclose(cl.conv1x1_forward(x, w, b)[0], cl.conv2d_forward(x, w, b)[0],
                               rtol=1e-12, atol=1e-12)


def test_dropout_keeps_the_expected_value_and_is_the_identity_in_eval():
    x = np.ones((200, 200))
    out, cache = cl.dropout_forward(x, 0.3, seed=1)
    assert abs(out.mean() - 1.0) < 0.02 and abs((out == 0).mean() - 0.3) < 0.02
    assert np.array_equal(cl.dropout_forward(x, 0.3, mode="eval")[0], x)
    assert cache["mask"].dtype == bool


def test_initialisations_have_the_right_spread():
    w = cl.he_init((64, 32, 3, 3), seed=0)
    assert abs(w.std() / np.sqrt(2 / 288) - 1) < 0.03
    w = cl.glorot_init((300, 100), seed=0)
    limit = np.sqrt(6 / 400)
    assert np.abs(w).max() <= limit and abs(w.var() / (2 / 400) - 1) < 0.03
    assert cl.fans((400, 120)) == (400, 120) and cl.fans((16, 6, 5, 5)) == (150, 400)


# ------------------------------------------------------------------ argument checks
@pytest.mark.parametrize("call, match", [
    (lambda: cl.conv1x1_forward(np.ones((1, 2, 3, 3)), np.ones((4, 3, 1, 1)), np.ones(4)),
     r"w must have shape \(F, C, 1, 1\)"),
    (lambda: cl.conv1x1_forward(np.ones((1, 2, 3, 3)), np.ones((4, 2, 1, 1)), np.ones(3)),
     r"b must have shape \(F,\)"),
    (lambda: cl.conv1x1_forward(np.ones((2, 3, 3)), np.ones((4, 2, 1, 1)), np.ones(4)),
     r"x must be 4-D"),
    (lambda: cl.global_avg_pool_forward(np.ones((2, 3))), r"x must be 4-D"),
    (lambda: cl.global_avg_pool_backward(np.ones((2, 2)), {"shape": (2, 3, 4, 4)}),
     r"dout must have the shape"),
    (lambda: cl.global_avg_pool_backward(np.ones((2, 3)), {}), r"cache must be the cache"),
    (lambda: cl.leaky_relu_forward(np.ones(3), -0.1), r"negative_slope must be in"),
    (lambda: cl.leaky_relu_forward(np.ones(3), "a"), r"negative_slope must be a finite"),
    (lambda: cl.he_init((3, 4, 5)), r"shape must be a tuple of 2 or 4 positive ints"),
    (lambda: cl.glorot_init((3, 0)), r"shape must be a tuple of 2 or 4 positive ints"),
    (lambda: cl.he_init((3, 4), seed=-1), r"seed must be None or a non-negative int"),
    (lambda: cl.batchnorm2d_forward(np.ones((2, 3, 2, 2)), np.ones(2), np.ones(3), np.zeros(3),
                                    np.ones(3)), r"gamma must have shape \(C,\)"),
    (lambda: cl.batchnorm2d_forward(np.ones((2, 3, 2, 2)), np.ones(3), np.ones(3), [0, 0, 0],
                                    np.ones(3)), r"running_mean must be a float ndarray"),
    (lambda: cl.batchnorm2d_forward(np.ones((2, 3, 2, 2)), np.ones(3), np.ones(3), np.zeros(3),
                                    np.ones(3), mode="test"), r"mode must be 'train' or 'eval'"),
    (lambda: cl.batchnorm2d_forward(np.ones((2, 3, 2, 2)), np.ones(3), np.ones(3), np.zeros(3),
                                    np.ones(3), momentum=2.0), r"momentum must be in"),
    (lambda: cl.batchnorm2d_forward(np.ones((1, 3, 1, 1)), np.ones(3), np.ones(3), np.zeros(3),
                                    np.ones(3)), r"at least 2 values per channel"),
    (lambda: cl.batchnorm2d_backward(np.ones((2, 3)), {"mode": "train", "x_hat": np.ones(
        (2, 3, 1, 1)), "inv_std": np.ones(3), "gamma": np.ones(3)}), r"dout must have the shape"),
    (lambda: cl.dropout_forward(np.ones(3), p=1.0), r"p must be in \[0.0, 1.0\)"),
    (lambda: cl.dropout_forward(np.ones(3), mode="infer"), r"mode must be 'train' or 'eval'"),
    (lambda: cl.dropout_forward(np.ones(3), seed=1.5), r"seed must be None"),
    (lambda: cl.dropout_backward(np.ones(3), {"mode": "train", "p": 0.5}),
     r"cache must be the cache returned by dropout_forward"),
])
def test_bad_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ shapes.py
def test_shape_checks_live_in_shapes_py_and_have_two_wrong_versions():
    for name in ("layers.window_geometry", "layers.layer_costs"):
        assert get_check(name).source_file() == "cnnlab/layers/shapes.py"
        assert len(WRONG[name]) >= 2


def test_layer_costs_agree_with_the_lectures_numbers():
    """The lecture's example (760 parameters) and its LeNet300 table, where it is right:
    156 and ~78k; its 2,496 for the second convolution counts a bias per input channel
    (16·(5·5 + 1)·6), the right count is 16·(6·5·5 + 1) = 2,416; its 1k for FC-10 leaves
    out the 10 biases. VGG-16: 138,357,544 parameters, as torchvision's."""
    assert cl.layer_costs([("conv", 10, 5, 1, 2)], (3, 32, 32)) == [((10, 32, 32), 760, 10240)]
    from cnnlab.checks.modern import LENET300, VGG16, parse_layers

    rows = cl.layer_costs(parse_layers(LENET300), (1, 28, 28))
    assert [r[1] for r in rows if r[1]] == [156, 2416, 78_500, 1010]
    assert rows[5][0] == (16, 7, 7)
    rows = cl.layer_costs(parse_layers(VGG16), (3, 224, 224))
    assert sum(r[1] for r in rows) == 138_357_544
    assert rows[0] == ((64, 224, 224), 1792, 64 * 224 * 224)
    assert rows[-4][0] == (512, 7, 7) and rows[-3][1] == 4096 * (7 * 7 * 512 + 1)
    assert sum(r[2] for r in rows) + 3 * 224 * 224 == 15_237_608


def test_window_geometry_reads_every_picture_the_notebook_draws():
    from cnnlab.checks.modern import taps_picture

    for size, stride, dilation in [(3, 1, 1), (3, 2, 1), (3, 1, 2), (2, 3, 2), (1, 2, 1)]:
        taps = taps_picture(size, stride, dilation, 3, offset=1, tail=2)
        assert cl.window_geometry(taps) == (size, stride, dilation)
        assert cl.window_geometry(taps.astype(bool)) == (size, stride, dilation)


@pytest.mark.parametrize("call, match", [
    (lambda: cl.window_geometry([1, 0, 1]), r"taps must be 2-D \(outputs, inputs\)"),
    (lambda: cl.window_geometry([[1, 2], [0, 1]]), r"taps must hold only 0 and 1"),
    (lambda: cl.window_geometry([[1, 1, 0]]), r"taps must have at least 2 rows"),
    (lambda: cl.window_geometry([[1, 0], [0, 0]]), r"row 1 has no 1"),
    (lambda: cl.layer_costs([("fc", 10)], (3, 32)), r"input_shape must be a tuple of 3"),
    (lambda: cl.layer_costs([], (3, 32, 32)), r"layers must be a non-empty list"),
    (lambda: cl.layer_costs([("dense", 10)], (3, 8, 8)),
     r"layers\[0\] must be a tuple starting with one of"),
    (lambda: cl.layer_costs([("relu",), ("conv", 4, 3, 1)], (3, 8, 8)),
     r"layers\[1\] must be \('conv', filters, kernel_size, stride, padding\)"),
    (lambda: cl.layer_costs([("pool", 2, 0)], (3, 8, 8)), r"layers\[0\]: stride must be >= 1"),
    (lambda: cl.layer_costs([("conv", 4, 3, 1, -1)], (3, 8, 8)),
     r"layers\[0\]: padding must be >= 0"),
    (lambda: cl.layer_costs([("fc", 10), ("pool", 2, 2)], (3, 8, 8)),
     r"layers\[1\]: a pool layer needs feature maps"),
    (lambda: cl.layer_costs([("conv", 4, 9, 1, 0)], (3, 8, 8)), r"kernel_size: the kernel spans"),
])
def test_bad_shape_arguments_raise_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()
