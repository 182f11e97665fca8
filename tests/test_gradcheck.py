"""cnnlab.gradcheck: central differences and the relative error."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.gradcheck import numerical_gradient, relative_error


def test_gradient_of_sum_of_squares():
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    grad = numerical_gradient(lambda: np.sum(x ** 2), x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8, atol=1e-8)


def test_gradient_of_a_matrix_product_with_upstream_gradient():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    dout = rng.normal(size=(3, 5))
    # d sum((a @ b) * dout) / da = dout @ b.T, and / db = a.T @ dout
    np.testing.assert_allclose(numerical_gradient(lambda: a @ b, a, df=dout), dout @ b.T,
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(numerical_gradient(lambda: a @ b, b, df=dout), a.T @ dout,
                               rtol=1e-7, atol=1e-9)


def test_x_is_restored_bit_for_bit():
    x = np.random.default_rng(2).normal(size=(4, 3)) * 1e3
    before = x.copy()
    numerical_gradient(lambda: np.sum(np.sin(x)), x, h=1e-3)
    assert np.array_equal(x.view(np.int64), before.view(np.int64))


def test_x_is_restored_when_f_raises():
    x = np.arange(6.0).reshape(2, 3)
    before = x.copy()

    def f():
        if x[1, 1] != before[1, 1]:
            raise RuntimeError("boom")
        return np.sum(x)

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, before)


def test_f_returning_a_reused_buffer_is_copied():
    x = np.array([1.0, 2.0])
    buffer = np.zeros(2)

    def f():
        np.multiply(x, 3.0, out=buffer)  # the same array every call
        return buffer

    np.testing.assert_allclose(numerical_gradient(f, x, df=np.ones(2)), [3.0, 3.0])


def test_float32_uses_the_step_actually_taken():
    x = np.array([1000.0, -3.0, 0.5], dtype=np.float32)
    grad = numerical_gradient(lambda: np.sum(x.astype(np.float64) * 2.0), x, h=1e-4)
    np.testing.assert_allclose(grad, [2.0, 2.0, 2.0], rtol=1e-6)


def test_scalar_and_zero_d_inputs():
    x = np.array(3.0)
    assert numerical_gradient(lambda: x ** 3, x) == pytest.approx(27.0, rel=1e-8)


@settings(max_examples=30)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=6))
def test_gradient_of_a_smooth_function(values):
    x = np.array(values)
    grad = numerical_gradient(lambda: np.sum(np.tanh(x) * x), x)
    exact = np.tanh(x) + x / np.cosh(x) ** 2
    np.testing.assert_allclose(grad, exact, rtol=1e-6, atol=1e-8)


def test_relative_error_basics():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 3.0]) == pytest.approx(0.2)
    assert relative_error([1.0, 2.0], [1.0, 3.0]) == relative_error([1.0, 3.0], [1.0, 2.0])
    assert relative_error([2.0], [-2.0]) == 1.0  # opposite signs: the largest possible
    assert relative_error(5, 5) == 0.0
    assert relative_error([1, 2], [1, 3]) == pytest.approx(0.2)  # integers
    assert isinstance(relative_error([1.0], [1.0]), float)


def test_relative_error_floor():
    # |a| + |b| below eps: the difference counts relative to eps
    assert relative_error([1e-12], [0.0]) == pytest.approx(1e-4)
    assert relative_error([1e-12], [0.0], eps=1e-300) == pytest.approx(1.0)
    # the maximum over entries, not a ratio of norms
    assert relative_error([1000.0, 1.0], [1000.0, 2.0]) == pytest.approx(1 / 3)


def test_relative_error_is_nan_for_nan():
    assert np.isnan(relative_error([np.nan], [1.0]))


READ_ONLY = np.zeros(3)
READ_ONLY.flags.writeable = False

BAD_CALLS = [
    (lambda: numerical_gradient(3.0, np.zeros(2)), r"f must be a callable.*got float"),
    (lambda: numerical_gradient(lambda: 0.0, [1.0, 2.0]),
     r"x must be a floating-point numpy.ndarray .*got list"),
    (lambda: numerical_gradient(lambda: 0.0, np.arange(3)),
     r"x must be a floating-point numpy.ndarray .*got an array of dtype int64"),
    (lambda: numerical_gradient(lambda: 0.0, READ_ONLY), r"x must be writable"),
    (lambda: numerical_gradient(lambda: 0.0, np.zeros(2), h=0), r"h must be a positive .*got 0"),
    (lambda: numerical_gradient(lambda: 0.0, np.zeros(2), h=-1e-5), r"h must be .*got -1e-05"),
    (lambda: numerical_gradient(lambda: 0.0, np.zeros(2), h="1e-5"), r"h must be .*got '1e-5'"),
    (lambda: numerical_gradient(lambda: np.zeros(2), np.zeros(2)),
     r"f must return a scalar when df is None, got an array of shape \(2,\)"),
    (lambda: numerical_gradient(lambda: np.zeros((2, 3)), np.zeros(2), df=np.ones((3, 2))),
     r"df must have the shape of f\(\)'s output \(2, 3\), got \(3, 2\)"),
    (lambda: relative_error(np.zeros(3), np.zeros(4)),
     r"a and b must have the same shape, got \(3,\) and \(4,\)"),
    (lambda: relative_error(np.zeros((3, 1)), np.zeros(3)), r"a and b must have the same shape"),
    (lambda: relative_error([], []), r"a must not be empty"),
    (lambda: relative_error(["x"], [1.0]), r"a must be a numeric"),
    (lambda: relative_error([1.0], [1.0], eps=0), r"eps must be a positive finite number"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
