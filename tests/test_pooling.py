"""cnnlab.pooling: upsampling, max and average pooling, forward and backward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.gradcheck import numerical_gradient, relative_error
from cnnlab.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    upsample,
)

LECTURE_X = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
LECTURE_DELTA = np.array([[1, 3], [2, 4]])

# (x shape, size, stride): overlapping windows, stride != size, non-square inputs,
# sizes that are not a multiple of the stride, rectangular windows.
GRADIENT_CASES = [
    ((2, 3, 4, 4), 2, None),
    ((2, 2, 7, 7), 3, 2),  # overlapping windows
    ((1, 2, 8, 6), 3, 1),  # heavily overlapping
    ((2, 2, 7, 5), 2, None),  # non-square, odd: last row/column dropped
    ((1, 3, 9, 8), 2, 3),  # stride > size: gaps between windows
    ((2, 1, 6, 9), (2, 3), (1, 2)),  # rectangular window, pair stride
    ((1, 2, 5, 7), (3, 1), (2, 1)),
]


def distinct_values(rng, shape):
    """Values at least 0.01 apart, so that a step of 1e-5 never changes a window's argmax."""
    count = int(np.prod(shape))
    return rng.permutation(count).reshape(shape) * 0.01 - 0.005 * count


def brute_force_pool(x, size, stride, reduce):
    kh, kw = (size, size) if np.isscalar(size) else size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for a in range(n):
        for b in range(c):
            for p in range(oh):
                for q in range(ow):
                    out[a, b, p, q] = reduce(x[a, b, p * sh:p * sh + kh, q * sw:q * sw + kw])
    return out


@st.composite
def pooling_cases(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    size = (draw(st.integers(1, h)), draw(st.integers(1, w)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    if size[0] == size[1] and draw(st.booleans()):
        size = size[0]  # an int size
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    values = draw(st.lists(st.integers(-5, 5), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    return np.array(values, dtype=float).reshape(shape), size, stride


# ---------------------------------------------------------------- upsample


@settings(max_examples=60)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=4),
       st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
def test_upsample_is_kronecker_with_ones(shape, size):
    x = np.arange(np.prod(shape)).reshape(shape)
    kh, kw = (size, size) if isinstance(size, int) else size
    got = upsample(x, size)
    np.testing.assert_array_equal(got, np.kron(x, np.ones((kh, kw), dtype=x.dtype)))
    assert got.dtype == x.dtype


def test_upsample_lecture_example():
    np.testing.assert_array_equal(
        upsample(LECTURE_DELTA, 2),
        [[1, 1, 3, 3], [1, 1, 3, 3], [2, 2, 4, 4], [2, 2, 4, 4]])


# ---------------------------------------------------------------- forward


@settings(max_examples=80)
@given(pooling_cases())
def test_pooling_forward_matches_brute_force(case):
    x, size, stride = case
    out, _ = max_pool2d_forward(x, size, stride)
    np.testing.assert_array_equal(out, brute_force_pool(x, size, stride, np.max))
    out, _ = avg_pool2d_forward(x, size, stride)
    np.testing.assert_allclose(out, brute_force_pool(x, size, stride, np.mean), atol=1e-12)


def brute_force_max_pool_backward(x, dout, size, stride):
    """Route each window's gradient to np.argmax of the window: its first maximum."""
    kh, kw = (size, size) if np.isscalar(size) else size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    dx = np.zeros_like(x)
    for a, b, p, q in np.ndindex(dout.shape):
        window = x[a, b, p * sh:p * sh + kh, q * sw:q * sw + kw]
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dx[a, b, p * sh + i, q * sw + j] += dout[a, b, p, q]
    return dx


@settings(max_examples=60)
@given(pooling_cases())
def test_pooling_backward_matches_brute_force(case):
    # small integers: many ties, which must go to the first maximum of each window
    x, size, stride = case
    out, cache = max_pool2d_forward(x, size, stride)
    dout = np.arange(out.size, dtype=float).reshape(out.shape) + 1
    dx = max_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(dx, brute_force_max_pool_backward(x, dout, size, stride))
    # each window passes its whole gradient to exactly one of its entries
    np.testing.assert_allclose(dx.sum(), dout.sum())
    out, cache = avg_pool2d_forward(x, size, stride)
    dx = avg_pool2d_backward(dout, cache)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx.sum(), dout.sum())


@settings(max_examples=40)
@given(pooling_cases(), st.integers(0, 2**32 - 1))
def test_avg_pool_backward_is_the_adjoint_of_forward(case, seed):
    x, size, stride = case
    out, cache = avg_pool2d_forward(x, size, stride)
    dout = np.random.default_rng(seed).normal(size=out.shape)
    # <forward(x), dout> = <x, backward(dout)> for a linear map
    np.testing.assert_allclose(np.sum(out * dout), np.sum(x * avg_pool2d_backward(dout, cache)),
                               rtol=1e-10, atol=1e-10)


def test_lecture_max_pooling_example():
    out, cache = max_pool2d_forward(LECTURE_X.reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [3, 4]])
    dx = max_pool2d_backward(LECTURE_DELTA.reshape(1, 1, 2, 2), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 3], [2, 0, 0, 0],
                                             [0, 0, 0, 4]])


def test_lecture_mean_pooling_backward_example():
    _, cache = avg_pool2d_forward(np.zeros((1, 1, 4, 4)))
    dx = avg_pool2d_backward(LECTURE_DELTA.reshape(1, 1, 2, 2).astype(float), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0.25, 0.25, 0.75, 0.75], [0.25, 0.25, 0.75, 0.75],
                                             [0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1]])
    np.testing.assert_array_equal(dx[0, 0], upsample(LECTURE_DELTA, 2) / 4)


def test_dtypes_are_kept():
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6)).astype(np.float32)
    for forward, backward in [(max_pool2d_forward, max_pool2d_backward),
                              (avg_pool2d_forward, avg_pool2d_backward)]:
        out, cache = forward(x, 3, 2)
        assert out.dtype == np.float32
        assert backward(np.ones_like(out), cache).dtype == np.float32
    out, _ = avg_pool2d_forward(np.arange(16).reshape(1, 1, 4, 4))
    assert out.dtype == np.float64
    assert max_pool2d_forward(np.arange(16).reshape(1, 1, 4, 4))[0].dtype == np.int64


# ---------------------------------------------------------------- backward


@pytest.mark.parametrize("shape, size, stride", GRADIENT_CASES)
def test_max_pool_backward_matches_numerical_gradient(shape, size, stride):
    rng = np.random.default_rng(sum(shape))
    x = distinct_values(rng, shape)
    out, cache = max_pool2d_forward(x, size, stride)
    dout = rng.normal(size=out.shape)
    dx = max_pool2d_backward(dout, cache)
    dx_num = numerical_gradient(lambda: max_pool2d_forward(x, size, stride)[0], x, df=dout)
    assert relative_error(dx, dx_num) < 1e-6


@pytest.mark.parametrize("shape, size, stride", GRADIENT_CASES)
def test_avg_pool_backward_matches_numerical_gradient(shape, size, stride):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    out, cache = avg_pool2d_forward(x, size, stride)
    dout = rng.normal(size=out.shape)
    dx = avg_pool2d_backward(dout, cache)
    dx_num = numerical_gradient(lambda: avg_pool2d_forward(x, size, stride)[0], x, df=dout)
    assert relative_error(dx, dx_num) < 1e-6


def test_rows_and_columns_no_window_reaches_get_zero_gradient():
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 7))
    for forward, backward in [(max_pool2d_forward, max_pool2d_backward),
                              (avg_pool2d_forward, avg_pool2d_backward)]:
        out, cache = forward(x, 2)
        dx = backward(np.ones_like(out), cache)
        assert not dx[:, :, 4, :].any() and not dx[:, :, :, 6].any()


def test_overlapping_windows_accumulate_gradient():
    # the centre 9 is the maximum of all four overlapping 2x2 windows (stride 1)
    x = np.array([[1.0, 2, 3], [4, 9, 5], [6, 7, 8]]).reshape(1, 1, 3, 3)
    out, cache = max_pool2d_forward(x, 2, 1)
    np.testing.assert_array_equal(out[0, 0], [[9, 9], [9, 9]])
    dx = max_pool2d_backward(np.array([[[[1.0, 2], [3, 4]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0], [0, 10, 0], [0, 0, 0]])
    _, cache = avg_pool2d_forward(x, 2, 1)
    dx = avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]])


def test_ties_send_the_gradient_to_the_first_maximum_in_row_major_order():
    x = np.array([[
        [[3, 3, 0, 5], [3, 3, 5, 5]],  # all equal; then a tie between (0, 1), (1, 0), (1, 1)
        [[1, 7, 2, 2], [7, 0, 2, 2]],  # tie between (0, 1) and (1, 0); all equal
    ]], dtype=float).reshape(1, 2, 2, 4)
    out, cache = max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, :, 0], [[3, 5], [7, 2]])
    dx = max_pool2d_backward(np.array([[[[10.0, 20]], [[30, 40]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[10, 0, 0, 20], [0, 0, 0, 0]])
    np.testing.assert_array_equal(dx[0, 1], [[0, 30, 40, 0], [0, 0, 0, 0]])


def test_ties_in_overlapping_windows_are_broken_per_window():
    # a constant input: every 2x2 window (stride 1) gives its gradient to its top-left entry
    _, cache = max_pool2d_forward(np.zeros((1, 1, 3, 3)), 2, 1)
    dx = max_pool2d_backward(np.array([[[[1.0, 2], [3, 4]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


def test_a_backward_that_routes_to_the_whole_window_is_caught():
    """The gradient check used above rejects the classic mistake."""
    rng = np.random.default_rng(0)
    x = distinct_values(rng, (1, 2, 4, 4))
    out, cache = max_pool2d_forward(x)
    dout = rng.normal(size=out.shape)
    wrong = upsample(dout, 2)  # every entry of the window gets the gradient
    dx_num = numerical_gradient(lambda: max_pool2d_forward(x)[0], x, df=dout)
    assert relative_error(wrong, dx_num) > 0.5


# ---------------------------------------------------------------- errors


X = np.zeros((1, 2, 4, 4))
BAD_CALLS = [
    (lambda: upsample(np.arange(3), 2), r"x must have at least 2 dimensions, got ndim=1"),
    (lambda: upsample(np.ones((2, 2)), 0), r"size must be a positive int or a pair.*got 0"),
    (lambda: upsample(np.ones((2, 2)), (2,)), r"size must be a positive int.*got \(2,\)"),
    (lambda: max_pool2d_forward(np.zeros((4, 4))), r"x must be 4-D, got an array with ndim=2"),
    (lambda: avg_pool2d_forward(np.zeros((2, 4, 4))), r"x must be 4-D.*ndim=3"),
    (lambda: max_pool2d_forward(X.astype(complex)), r"x must be a real.*complex128"),
    (lambda: max_pool2d_forward(X, 0), r"size must be a positive int or a pair.*got 0"),
    (lambda: max_pool2d_forward(X, 2, 0), r"stride must be a positive int or a pair.*got 0"),
    (lambda: avg_pool2d_forward(X, 2, 1.5), r"stride must be a positive int.*got 1\.5"),
    (lambda: max_pool2d_forward(X, 2, (1, 2, 3)), r"stride must be.*got \(1, 2, 3\)"),
    (lambda: max_pool2d_forward(X, 5), r"size: the 5x5 pooling window does not fit in the 4x4"),
    (lambda: avg_pool2d_forward(X, (2, 6)), r"size: the 2x6 pooling window does not fit"),
    (lambda: max_pool2d_backward(np.zeros((1, 2, 3, 3)), max_pool2d_forward(X)[1]),
     r"dout must have the shape of the forward output \(1, 2, 2, 2\), got \(1, 2, 3, 3\)"),
    (lambda: avg_pool2d_backward(np.zeros((1, 2, 2)), avg_pool2d_forward(X)[1]),
     r"dout must be 4-D.*ndim=3"),
    (lambda: avg_pool2d_backward(np.zeros((1, 2, 1, 1)), avg_pool2d_forward(X)[1]),
     r"dout must have the shape of the forward output \(1, 2, 2, 2\)"),
    (lambda: max_pool2d_backward(np.zeros((1, 2, 2, 2)), (X, 2)),
     r"cache must be the cache returned by max_pool2d_forward.*got tuple"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
