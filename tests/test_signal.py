"""cnnlab.signal agrees with SciPy on every drawn case and refuses bad input clearly."""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

from cnnlab import signal as cs

DTYPES = ["int64", "float64", "float32", "complex128", "int8"]
MODES = ["full", "same", "valid"]


@st.composite
def arrays(draw, ndim, max_side=7, dtype=None):
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    dtype = dtype or draw(st.sampled_from(DTYPES))
    values = np.asarray(draw(st.lists(st.integers(-9, 9), min_size=int(np.prod(shape)),
                                      max_size=int(np.prod(shape)))))
    values = values.reshape(shape)
    if dtype == "complex128":
        return values + 1j * values[::-1].reshape(shape)
    return values.astype(dtype)


def same_dtype_pair(ndim):
    return st.sampled_from(DTYPES).flatmap(
        lambda dtype: st.tuples(arrays(ndim, dtype=dtype), arrays(ndim, dtype=dtype)))


def assert_matches_scipy(ours, theirs, in1, in2, mode, exact_dtype=True):
    try:
        expected = theirs(in1, in2, mode)
    except ValueError:
        with pytest.raises(ValueError, match="valid"):
            ours(in1, in2, mode)
        return
    got = ours(in1, in2, mode)
    assert got.shape == expected.shape
    if exact_dtype:
        assert got.dtype == expected.dtype
    single = any(a.dtype in (np.float32, np.complex64) for a in (in1, in2))
    tol = 1e-5 if single else 1e-9
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale)


@given(same_dtype_pair(1), st.sampled_from(MODES))
def test_correlate_and_convolve_match_scipy(pair, mode):
    in1, in2 = pair
    assert_matches_scipy(cs.correlate, scipy.signal.correlate, in1, in2, mode)
    assert_matches_scipy(cs.convolve, scipy.signal.convolve, in1, in2, mode)


@given(st.tuples(arrays(1), arrays(1)), st.sampled_from(MODES))
def test_mixed_dtypes_follow_result_type(pair, mode):
    in1, in2 = pair
    assert_matches_scipy(cs.convolve, scipy.signal.convolve, in1, in2, mode)


@given(same_dtype_pair(2), st.sampled_from(MODES))
def test_correlate2d_and_convolve2d_match_scipy(pair, mode):
    in1, in2 = pair
    assert_matches_scipy(cs.correlate2d, scipy.signal.correlate2d, in1, in2, mode)
    assert_matches_scipy(cs.convolve2d, scipy.signal.convolve2d, in1, in2, mode)


@given(st.integers(1, 2).flatmap(lambda d: st.tuples(arrays(d), arrays(d))),
       st.sampled_from(MODES))
def test_fftconvolve_matches_scipy(pair, mode):
    in1, in2 = pair
    assert_matches_scipy(cs.fftconvolve, scipy.signal.fftconvolve, in1, in2, mode,
                         exact_dtype=False)


@given(arrays(1), st.integers(1, 8), st.sampled_from(MODES))
def test_convolution_matrix_matches_scipy(a, n, mode):
    expected = scipy.linalg.convolution_matrix(a, n, mode)
    got = cs.convolution_matrix(a, n, mode)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected)


@given(same_dtype_pair(2), st.sampled_from(MODES))
def test_convolution_matrix2d_is_convolve2d(pair, mode):
    image, kernel = pair
    try:
        expected = scipy.signal.convolve2d(image, kernel, mode)
    except ValueError:
        with pytest.raises(ValueError, match="shape and kernel"):
            cs.convolution_matrix2d(kernel, image.shape, mode)
        return
    matrix = cs.convolution_matrix2d(kernel, image.shape, mode)
    np.testing.assert_allclose(matrix @ image.ravel(), expected.ravel(), rtol=1e-4, atol=1e-3)


def test_lecture_examples():
    f, g = [1, 2, 3, 4, 5], [1, 2, 3]
    np.testing.assert_array_equal(cs.convolve(f, g), [1, 4, 10, 16, 22, 22, 15])
    np.testing.assert_array_equal(cs.convolve(f, g, "valid"), [10, 16, 22])
    full = cs.convolve2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 2], [3, 4]])
    assert full[2, 2] == 63  # the lecture slide misprints 65


@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4), st.integers(0, 3),
       st.integers(1, 3))
def test_conv_output_size_counts_window_positions(n, k, stride, padding, dilation):
    span = dilation * (k - 1) + 1
    starts = range(0, n + 2 * padding - span + 1, stride)
    if n + 2 * padding < span:
        with pytest.raises(ValueError, match="kernel_size: the kernel spans"):
            cs.conv_output_size(n, k, stride, padding, dilation)
    else:
        assert cs.conv_output_size(n, k, stride, padding, dilation) == len(starts)


def test_conv_output_size_strict_refuses_a_stride_that_does_not_fit():
    assert cs.conv_output_size(7, 3, stride=3) == 2
    with pytest.raises(ValueError, match=r"stride=3 does not fit.*last 1 input position"):
        cs.conv_output_size(7, 3, stride=3, strict=True)
    assert cs.conv_output_size(7, 3, stride=2, strict=True) == 3


@given(arrays(3), st.integers(0, 3), st.integers(0, 3))
def test_pad2d_matches_numpy_pad(x, ph, pw):
    np.testing.assert_array_equal(cs.pad2d(x, (ph, pw)),
                                  np.pad(x, [(0, 0), (ph, ph), (pw, pw)]))


@given(arrays(2, max_side=12, dtype="float64"), arrays(2, max_side=3, dtype="float64"),
       st.integers(1, 3))
def test_dilated_kernel_gives_dilated_correlation(image, kernel, d):
    big = cs.dilate_kernel(kernel, d)
    if any(b > s for b, s in zip(big.shape, image.shape)):
        return
    got = cs.correlate2d(image, big, "valid")
    # atrous correlation: every d-th sample under the kernel
    expected = np.zeros(got.shape)
    for i, j in np.ndindex(got.shape):
        window = image[i:i + big.shape[0]:d, j:j + big.shape[1]:d]
        expected[i, j] = np.sum(window * kernel)
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cs.convolve([1, 2], [1], mode="vaild"),
         r"mode must be 'full', 'same' or 'valid', got 'vaild'"),
        (lambda: cs.convolve([[1, 2]], [1]), r"in1 must be 1-D, got an array with ndim=2"),
        (lambda: cs.correlate([1, 2], []), r"in2 must not be empty, got shape \(0,\)"),
        (lambda: cs.correlate(["a", "b"], [1]), r"in1 must be a numeric .* got dtype <U1"),
        (lambda: cs.convolve2d([1, 2], [[1]]), r"in1 must be 2-D, got an array with ndim=1"),
        (lambda: cs.correlate2d(np.ones((3, 5)), np.ones((5, 3)), "valid"),
         r"in1 and in2: for 'valid' mode one must be at least as large"),
        (lambda: cs.fftconvolve(np.ones((2, 2)), np.ones(2)), r"in2 must be 2-D"),
        (lambda: cs.fftconvolve(np.ones((3, 5)), np.ones((5, 3)), "valid"),
         r"in1 and in2: for 'valid' mode one must be at least as large as the other in every "
         r"dimension, got shapes \(3, 5\) and \(5, 3\)"),
        (lambda: cs.fftconvolve(np.ones((2, 2, 2)), np.ones(2)), r"in1 must be 1-D or 2-D"),
        (lambda: cs.convolution_matrix([1, 2], 0), r"n must be positive, got 0"),
        (lambda: cs.convolution_matrix([1, 2], 2.5), r"n must be an integer, got 2.5"),
        (lambda: cs.convolution_matrix2d([[1]], 3), r"shape must be a pair of positive ints"),
        (lambda: cs.convolution_matrix2d([[1, 2, 3]], (2, 2), "valid"),
         r"shape and kernel: for 'valid' mode"),
        (lambda: cs.conv_output_size(5, 7), r"kernel_size: the kernel spans 7 samples"),
        (lambda: cs.conv_output_size(5, 3, stride=0), r"stride must be positive, got 0"),
        (lambda: cs.conv_output_size(5, 3, padding=-1), r"padding must be >= 0, got -1"),
        (lambda: cs.pad2d([1, 2], 1), r"x must have at least 2 dimensions, got ndim=1"),
        (lambda: cs.pad2d(np.ones((2, 2)), (1, 2, 3)), r"padding must be a int >= 0 or a pair"),
        (lambda: cs.dilate_kernel([[1, 2]], 0), r"dilation must be a positive int or a pair"),
        (lambda: cs.dilate_kernel([1, 2], 1.5), r"dilation must be an integer, got 1.5"),
        (lambda: cs.correlate([[1, 2], [3]], [1]), r"in1 must be a numeric array, got"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
