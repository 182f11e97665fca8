"""Dense layers, activations, flatten and the softmax cross-entropy: values, gradients, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cnnlab.gradcheck import numerical_gradient, relative_error
from cnnlab.layers import (
    flatten,
    flatten_backward,
    flatten_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_cross_entropy,
    tanh_backward,
    tanh_forward,
)

RNG_SEED = 1234


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


# ---------------------------------------------------------------------- linear


def test_linear_forward_matches_definition(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    out, cache = linear_forward(x, w, b)
    expected = np.array([[sum(x[n, d] * w[d, m] for d in range(5)) + b[m] for m in range(3)]
                         for n in range(4)])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert cache["x"] is x and cache["w"] is w


def test_linear_backward_matches_numerical_gradient(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    _, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dout, cache)
    def f():
        return linear_forward(x, w, b)[0]
    assert relative_error(dx, numerical_gradient(f, x, df=dout)) < 1e-8
    assert relative_error(dw, numerical_gradient(f, w, df=dout)) < 1e-8
    assert relative_error(db, numerical_gradient(f, b, df=dout)) < 1e-8


def test_linear_keeps_float32(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    out, cache = linear_forward(x, w, np.zeros(2, np.float32))
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in linear_backward(np.ones_like(out), cache))


@pytest.mark.parametrize("args, match", [
    ((np.ones((2, 3)), np.ones((4, 2)), np.ones(2)), r"x.shape\[1\] must equal w.shape\[0\]"),
    ((np.ones((2, 3)), np.ones((3, 2)), np.ones(3)), r"b must have shape \(M,\) = \(2,\)"),
    ((np.ones(3), np.ones((3, 2)), np.ones(2)), "x must be 2-D"),
    ((np.ones((2, 3)), np.ones((3, 2, 1)), np.ones(2)), "w must be 2-D"),
    ((np.ones((2, 3)) * 1j, np.ones((3, 2)), np.ones(2)), "x must be a real"),
    ((np.array([["a"]]), np.ones((1, 2)), np.ones(2)), "x must be a numeric"),
])
def test_linear_forward_rejects_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        linear_forward(*args)


def test_linear_backward_rejects_bad_cache_and_dout():
    _, cache = linear_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="cache must be the cache returned by linear_forward"):
        linear_backward(np.ones((2, 4)), {"x": 1})
    with pytest.raises(ValueError, match=r"dout must have the shape .* \(2, 4\), got \(4, 2\)"):
        linear_backward(np.ones((4, 2)), cache)


# ----------------------------------------------------------------- activations

ACTIVATIONS = [(relu_forward, relu_backward), (tanh_forward, tanh_backward),
               (sigmoid_forward, sigmoid_backward)]


@pytest.mark.parametrize("forward, backward", ACTIVATIONS)
def test_activation_backward_matches_numerical_gradient(forward, backward, rng):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from ReLU's kink
    dout = rng.standard_normal(x.shape)
    _, cache = forward(x)
    dx = backward(dout, cache)
    assert dx.shape == x.shape
    assert relative_error(dx, numerical_gradient(lambda: forward(x)[0], x, df=dout)) < 1e-8


def test_activation_values():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(relu_forward(x)[0], [0, 0, 0, 0.5, 3])
    np.testing.assert_allclose(tanh_forward(x)[0], np.tanh(x))
    np.testing.assert_allclose(sigmoid_forward(x)[0], 1 / (1 + np.exp(-x)), rtol=1e-14)


def test_relu_gradient_at_zero_is_zero():
    _, cache = relu_forward(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(relu_backward(np.array([7.0, 7.0]), cache), [0.0, 7.0])


def test_sigmoid_is_stable_for_huge_inputs():
    # filterwarnings=error turns any overflow RuntimeWarning into a failure.
    out, cache = sigmoid_forward(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[[0, 4]], [0.0, 1.0])
    assert np.all(np.isfinite(sigmoid_backward(np.ones(5), cache)))


@pytest.mark.parametrize("forward", [relu_forward, tanh_forward, sigmoid_forward])
def test_activations_keep_float32(forward):
    out, cache = forward(np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    assert out.dtype == np.float32


@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(-30, 30)))
def test_sigmoid_symmetry_and_tanh_identity(x):
    s = sigmoid_forward(x)[0]
    np.testing.assert_allclose(sigmoid_forward(-x)[0], 1 - s, atol=1e-15)
    np.testing.assert_allclose(2 * sigmoid_forward(2 * x)[0] - 1, tanh_forward(x)[0], atol=1e-14)


@pytest.mark.parametrize("forward, backward", ACTIVATIONS)
def test_activation_backward_checks_cache_and_shape(forward, backward):
    _, cache = forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=f"cache must be the cache returned by {forward.__name__}"):
        backward(np.ones((2, 3)), None)
    with pytest.raises(ValueError, match=r"dout must have the shape .* \(2, 3\)"):
        backward(np.ones((3, 2)), cache)


# ----------------------------------------------------------------------- flatten


def test_flatten_round_trip(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = flatten_forward(x)
    assert out.shape == (2, 60)
    np.testing.assert_array_equal(out[1], x[1].ravel())
    np.testing.assert_array_equal(flatten(x), out)
    np.testing.assert_array_equal(flatten_backward(out, cache), x)


def test_flatten_errors():
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        flatten(np.float64(3.0))
    _, cache = flatten_forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dout must have the shape .* \(2, 12\)"):
        flatten_backward(np.ones((2, 13)), cache)
    with pytest.raises(ValueError, match="cache returned by flatten_forward"):
        flatten_backward(np.ones((2, 12)), {"x": 1})


# -------------------------------------------------------------- softmax + loss


def test_softmax_cross_entropy_values(rng):
    scores = rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    loss, dscores = softmax_cross_entropy(scores, y)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), y])), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dscores, (p - onehot) / 6, rtol=1e-12, atol=1e-15)
    assert isinstance(loss, float)


def test_softmax_cross_entropy_gradient_is_numerical(rng):
    scores = rng.standard_normal((5, 7))
    y = rng.integers(0, 7, 5)
    _, dscores = softmax_cross_entropy(scores, y)
    numerical = numerical_gradient(lambda: softmax_cross_entropy(scores, y)[0], scores)
    assert relative_error(dscores, numerical) < 1e-7


def test_softmax_cross_entropy_uniform_scores_give_log_classes():
    loss, _ = softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 5, 9]))
    assert loss == pytest.approx(np.log(10))


def test_softmax_cross_entropy_is_stable_for_large_scores():
    scores = np.array([[1e4, 0.0, -1e4], [0.0, 5e3, 0.0]])
    loss, dscores = softmax_cross_entropy(scores, np.array([2, 1]))
    assert loss == pytest.approx(2e4 / 2)
    assert np.all(np.isfinite(dscores))


def test_softmax_cross_entropy_keeps_float32():
    loss, dscores = softmax_cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1]))
    assert dscores.dtype == np.float32


@given(arrays(np.float64, (4, 5), elements=st.floats(-50, 50)),
       st.lists(st.integers(0, 4), min_size=4, max_size=4), st.floats(-100, 100))
def test_softmax_cross_entropy_properties(scores, labels, shift):
    y = np.array(labels)
    loss, dscores = softmax_cross_entropy(scores, y)
    assert loss >= 0
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-12)
    # Adding a constant to a row changes nothing.
    shifted, dshifted = softmax_cross_entropy(scores + shift, y)
    assert shifted == pytest.approx(loss, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(dshifted, dscores, atol=1e-12)


@pytest.mark.parametrize("scores, y, match", [
    (np.zeros((2, 3)), np.array([0, 3]), r"labels in 0..2 .* got y\[1\]=3"),
    (np.zeros((2, 3)), np.array([-1, 0]), r"got y\[0\]=-1"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), "scores has N=2 rows, got 3 labels"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), "y must be an array of integer class labels"),
    (np.zeros(3), np.array([0]), "scores must be 2-D"),
    (np.zeros((2, 3)), np.array([[0, 1]]), "y must be 1-D"),
])
def test_softmax_cross_entropy_rejects_bad_inputs(scores, y, match):
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(scores, y)
