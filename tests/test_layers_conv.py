"""cnnlab.layers.conv: the conv2d layer and the lecture's single-map backprop equations."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab.gradcheck import numerical_gradient, relative_error
from cnnlab.layers import (
    conv2d_backward,
    conv2d_forward,
    conv_delta_input,
    conv_grad_bias,
    conv_grad_kernel,
    conv_transpose2d,
)
from cnnlab.signal import convolution_matrix2d, dilate_kernel

MAGIC = np.array([[16, 2, 3, 13], [5, 11, 10, 8], [9, 7, 6, 12], [4, 14, 15, 1]])
LECTURE_DELTA_3X3 = np.array([[0.8, 0.1, -0.6], [0.3, 0.5, 0.7], [-0.4, 0.0, -0.2]])


def pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def reference_conv2d(x, w, b, stride=1, padding=0, dilation=1):
    """Per (n, f, c) valid correlations from SciPy, strided by slicing."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kernels = dilate_kernel(w, dilation)
    out = []
    for n in range(x.shape[0]):
        maps = []
        for f in range(w.shape[0]):
            total = sum(scipy.signal.correlate2d(xpad[n, c], kernels[f, c], "valid")
                        for c in range(x.shape[1]))
            maps.append(total[::sh, ::sw] + b[f])
        out.append(maps)
    return np.array(out)


@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    dilation = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 3))))
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume(dh * (kh - 1) + 1 <= h + 2 * ph and dw * (kw - 1) + 1 <= w + 2 * pw)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-5, 6, size=(n, c, h, w)).astype(float)
    weights = rng.integers(-5, 6, size=(f, c, kh, kw)).astype(float)
    b = rng.integers(-5, 6, size=f).astype(float)
    return x, weights, b, stride, padding, dilation


# ---------------------------------------------------------------- conv2d forward


@settings(max_examples=80)
@given(conv_cases())
def test_conv2d_forward_matches_scipy_reference(case):
    x, w, b, stride, padding, dilation = case
    out, cache = conv2d_forward(x, w, b, stride, padding, dilation)
    expected = reference_conv2d(x, w, b, stride, padding, dilation)
    assert out.shape == expected.shape == cache["out_shape"]
    np.testing.assert_array_equal(out, expected)  # small integers: exact
    assert out.flags.c_contiguous


@settings(max_examples=40)
@given(conv_cases())
def test_conv2d_backward_is_the_adjoint_of_forward(case):
    # with b = 0 the layer is linear in x and in w: <conv(x), dout> = <x, dx> = <w, dw>
    x, w, b, stride, padding, dilation = case
    out, cache = conv2d_forward(x, w, np.zeros_like(b), stride, padding, dilation)
    dout = np.random.default_rng(0).integers(-3, 4, size=out.shape).astype(float)
    dx, dw, db = conv2d_backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert np.sum(out * dout) == pytest.approx(np.sum(x * dx))
    assert np.sum(out * dout) == pytest.approx(np.sum(w * dw))
    np.testing.assert_array_equal(db, dout.sum(axis=(0, 2, 3)))


def test_conv2d_forward_lecture_sizes():
    x = np.zeros((2, 1, 28, 28))
    out, _ = conv2d_forward(x, np.zeros((20, 1, 5, 5)), np.zeros(20))
    assert out.shape == (2, 20, 24, 24)
    out, _ = conv2d_forward(np.zeros((2, 20, 12, 12)), np.zeros((50, 20, 5, 5)), np.zeros(50))
    assert out.shape == (2, 50, 8, 8)


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8, 7)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    out, cache = conv2d_forward(x, w, b, stride=2, padding=1, dilation=(1, 2))
    assert out.dtype == np.float32
    dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    expected = reference_conv2d(x.astype(float), w.astype(float), b.astype(float),
                                2, 1, (1, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- conv2d backward

GRADIENT_CASES = [
    # x shape, w shape, stride, padding, dilation
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, 1),
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1),  # stride 2, padding, non-square input and kernel
    ((1, 2, 9, 8), (3, 2, 3, 3), 1, 0, 2),  # dilation
    ((2, 2, 8, 9), (3, 2, 2, 3), (2, 3), (1, 2), (2, 1)),  # pairs everywhere
    ((1, 1, 6, 6), (2, 1, 2, 2), 3, 0, 1),  # stride > kernel: pixels no window reads
    ((2, 2, 4, 5), (2, 2, 5, 4), 1, 2, 1),  # kernel larger than the input (padding)
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", GRADIENT_CASES)
def test_conv2d_backward_matches_numerical_gradients(x_shape, w_shape, stride, padding,
                                                     dilation):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    out, cache = conv2d_forward(x, w, b, stride, padding, dilation)
    dout = rng.normal(size=out.shape)
    dx, dw, db = conv2d_backward(dout, cache)

    def forward():
        return conv2d_forward(x, w, b, stride, padding, dilation)[0]

    assert relative_error(dx, numerical_gradient(forward, x, df=dout)) < 1e-6
    assert relative_error(dw, numerical_gradient(forward, w, df=dout)) < 1e-6
    assert relative_error(db, numerical_gradient(forward, b, df=dout)) < 1e-6


def test_single_map_backward_is_the_lecture_equations():
    # one image, one channel, one filter, stride 1: the batched layer reduces to δ * K, a ⋆ δ
    rng = np.random.default_rng(3)
    a, kernel = rng.normal(size=(7, 6)), rng.normal(size=(3, 2))
    out, cache = conv2d_forward(a[None, None], kernel[None, None], np.zeros(1))
    delta = rng.normal(size=out.shape[2:])
    dx, dw, db = conv2d_backward(delta[None, None], cache)
    np.testing.assert_allclose(dx[0, 0], conv_delta_input(delta, kernel), atol=1e-12)
    np.testing.assert_allclose(dw[0, 0], conv_grad_kernel(a, delta), atol=1e-12)
    np.testing.assert_allclose(db[0], conv_grad_bias(delta), atol=1e-12)


def test_a_kernel_gradient_computed_by_convolution_is_caught():
    """The gradient check used above rejects the classic mistake (convolve, not correlate)."""
    rng = np.random.default_rng(4)
    a, kernel = rng.normal(size=(1, 1, 6, 6)), rng.normal(size=(1, 1, 3, 3))
    out, cache = conv2d_forward(a, kernel, np.zeros(1))
    delta = rng.normal(size=out.shape)
    wrong = scipy.signal.convolve2d(a[0, 0], delta[0, 0], "valid")[None, None]
    dw_num = numerical_gradient(lambda: conv2d_forward(a, kernel, np.zeros(1))[0], kernel,
                                df=delta)
    assert relative_error(wrong, dw_num) > 0.1
    assert relative_error(conv2d_backward(delta, cache)[1], dw_num) < 1e-6


# ---------------------------------------------------------------- single-map equations


@settings(max_examples=60)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4),
       st.integers(0, 2**32 - 1))
def test_single_map_functions_match_scipy(oh, ow, kh, kw, seed):
    rng = np.random.default_rng(seed)
    delta, kernel = rng.normal(size=(oh, ow)), rng.normal(size=(kh, kw))
    a = rng.normal(size=(oh + kh - 1, ow + kw - 1))
    np.testing.assert_allclose(conv_delta_input(delta, kernel),
                               scipy.signal.convolve2d(delta, kernel, "full"), atol=1e-12)
    np.testing.assert_allclose(conv_grad_kernel(a, delta),
                               scipy.signal.correlate2d(a, delta, "valid"), atol=1e-12)
    assert conv_grad_bias(delta) == pytest.approx(delta.sum())


def test_lecture_kernel_gradient_example():
    got = conv_grad_kernel(MAGIC, LECTURE_DELTA_3X3)
    np.testing.assert_allclose(got, [[20.4, 2.8], [4.9, 12.7]], atol=1e-12)
    # ... which is the convolution with the rotated sensitivity
    np.testing.assert_allclose(got, scipy.signal.convolve2d(MAGIC, np.rot90(LECTURE_DELTA_3X3, 2),
                                                            "valid"), atol=1e-12)


def test_lecture_sensitivity_example():
    # δ = [[d11, d12], [d21, d22]], K = [[k11, k12], [k21, k22]]: the lecture's 3x3 result
    (d11, d12), (d21, d22) = delta = np.array([[2.0, 3.0], [5.0, 7.0]])
    (k11, k12), (k21, k22) = kernel = np.array([[11.0, 13.0], [17.0, 19.0]])
    expected = [
        [d11 * k11, d11 * k12 + d12 * k11, d12 * k12],
        [d11 * k21 + d21 * k11, d11 * k22 + d12 * k21 + d21 * k12 + d22 * k11,
         d12 * k22 + d22 * k12],
        [d21 * k21, d21 * k22 + d22 * k21, d22 * k22],
    ]
    np.testing.assert_array_equal(conv_delta_input(delta, kernel), expected)


# ---------------------------------------------------------------- errors

X, W, B = np.zeros((2, 3, 6, 6)), np.zeros((4, 3, 3, 3)), np.zeros(4)


def cache_of(x=X, w=W, b=B, **options):
    return conv2d_forward(x, w, b, **options)[1]


BAD_CALLS = [
    (lambda: conv2d_forward(np.zeros((3, 6, 6)), W, B),
     r"x must be 4-D \(N, C, H, W\), got an array with ndim=3"),
    (lambda: conv2d_forward(X, np.zeros((4, 3, 3)), B),
     r"w must be 4-D \(F, C, KH, KW\), got an array with ndim=3"),
    (lambda: conv2d_forward(X, np.zeros((4, 2, 3, 3)), B),
     r"x has C=3 channels but w expects C=2"),
    (lambda: conv2d_forward(X, W, np.zeros(3)),
     r"b must be a real array of shape \(F,\) = \(4,\).*got shape \(3,\)"),
    (lambda: conv2d_forward(X, W, np.zeros((4, 1))), r"b must be .*got shape \(4, 1\)"),
    (lambda: conv2d_forward(X, W, B, stride=0),
     r"stride must be a positive int or a pair of them, got 0"),
    (lambda: conv2d_forward(X, W, B, stride=1.5), r"stride must be a positive int.*got 1\.5"),
    (lambda: conv2d_forward(X, W, B, stride=(1, 0)), r"stride must be .*got \(1, 0\)"),
    (lambda: conv2d_forward(X, W, B, padding=-1),
     r"padding must be a int >= 0 or a pair of them, got -1"),
    (lambda: conv2d_forward(X, W, B, dilation=0), r"dilation must be a positive int.*got 0"),
    (lambda: conv2d_forward(X, np.zeros((4, 3, 7, 7)), B),
     r"w: the 7x7 kernel .* spans 7x7 pixels, more than the padded input's 6x6"),
    (lambda: conv2d_forward(X, W, B, dilation=3),
     r"w: the 3x3 kernel with dilation \(3, 3\) spans 7x7 pixels, more than .* 6x6"),
    (lambda: conv2d_forward(X.astype(complex), W, B), r"x must be a real .*complex128"),
    (lambda: conv2d_forward(np.zeros((2, 3, 0, 6)), W, B), r"x must not be empty"),
    (lambda: conv2d_backward(np.zeros((2, 4, 3, 3)), cache_of()),
     r"dout must have the shape of the forward output \(2, 4, 4, 4\), got \(2, 4, 3, 3\)"),
    (lambda: conv2d_backward(np.zeros((2, 4, 16)), cache_of()), r"dout must be 4-D.*ndim=3"),
    (lambda: conv2d_backward(np.zeros((2, 4, 4, 4)), (X, W, B)),
     r"cache must be the cache returned by conv2d_forward.*got tuple"),
    (lambda: conv_delta_input(np.zeros(3), np.zeros((2, 2))), r"delta must be 2-D.*ndim=1"),
    (lambda: conv_delta_input(np.zeros((2, 2)), np.zeros((1, 2, 2))), r"kernel must be 2-D"),
    (lambda: conv_grad_kernel(np.zeros((3, 3)), np.zeros((2, 4))),
     r"delta must not be larger than a.*delta.shape=\(2, 4\) and a.shape=\(3, 3\)"),
    (lambda: conv_grad_kernel(np.zeros((3, 3, 1)), np.zeros((2, 2))), r"a must be 2-D"),
    (lambda: conv_grad_bias(np.zeros((1, 2, 2))), r"delta must be 2-D.*ndim=3"),
    (lambda: conv_transpose2d(np.zeros((3, 4, 4)), np.zeros((3, 2, 3, 3))),
     r"input must be 4-D \(N, C_in, H, W\), got an array with ndim=3"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3))),
     r"weight must be 4-D \(C_in, C_out, KH, KW\), got an array with ndim=3"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3))),
     r"input has C_in=3 channels but weight expects C_in=2: input.shape\[1\] must equal "
     r"weight.shape\[0\]"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), np.zeros(3)),
     r"bias must be None or a real array of shape \(C_out,\) = \(2,\).*got shape \(3,\)"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)),
                              np.zeros(2, dtype=complex)), r"bias must be .*dtype complex128"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), stride=0),
     r"stride must be a positive int or a pair of them, got 0"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), padding=-1),
     r"padding must be a int >= 0 or a pair of them, got -1"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 1, 4)), np.zeros((3, 2, 3, 3)), padding=(2, 0)),
     r"padding \(2, 0\) crops the whole output away: the full result is 3x6 \(input 1x4, "
     r"stride \(1, 1\), kernel 3x3\)"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 4, 4), dtype=complex), np.zeros((3, 2, 3, 3))),
     r"input must be a real .*complex128"),
    (lambda: conv_transpose2d(np.zeros((1, 3, 0, 4)), np.zeros((3, 2, 3, 3))),
     r"input must not be empty"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_backward_can_skip_the_input_gradient_and_keeps_float32():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    out, cache = conv2d_forward(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2))
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw, db = conv2d_backward(dout, cache)
    none, dw_only, db_only = conv2d_backward(dout, cache, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == np.float32
    assert dx.shape == x.shape and dx.flags.c_contiguous


# ---------------------------------------------------------------- the transposed convolution
TRANSPOSED_LAYERS = [((2, 3, 7, 7), (4, 3, 3), 2, 1), ((1, 2, 6, 5), (3, 2, 3), (2, 1), (0, 1)),
                     ((2, 1, 8, 8), (2, 4, 4), 2, 1), ((1, 2, 5, 6), (2, 1, 2), 1, 0),
                     ((1, 2, 9, 9), (2, 3, 3), 3, 0)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", TRANSPOSED_LAYERS)
def test_conv_transpose2d_is_the_input_gradient_of_conv2d(x_shape, w_shape, stride, padding):
    """For windows that cover the input, conv_transpose2d(δ, w) = conv2d_backward's dx."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=x_shape)
    w = rng.normal(size=(w_shape[0], x_shape[1]) + w_shape[1:])
    out, cache = conv2d_forward(x, w, np.zeros(w.shape[0]), stride=stride, padding=padding)
    dout = rng.normal(size=out.shape)
    up = conv_transpose2d(dout, w, stride=stride, padding=padding)
    assert up.shape == x.shape
    np.testing.assert_allclose(up, conv2d_backward(dout, cache)[0], atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", TRANSPOSED_LAYERS)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(x_shape, w_shape, stride, padding):
    """<conv2d(x), y> = <x, conv_transpose2d(y)> for every x and y, with the same weight."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=x_shape)
    w = rng.normal(size=(w_shape[0], x_shape[1]) + w_shape[1:])
    out, _ = conv2d_forward(x, w, np.zeros(w.shape[0]), stride=stride, padding=padding)
    y = rng.normal(size=out.shape)
    up = conv_transpose2d(y, w, stride=stride, padding=padding)
    assert np.isclose(np.sum(out * y), np.sum(x * up[..., :x.shape[2], :x.shape[3]]))


@pytest.mark.parametrize("image, kernel, stride", [((3, 3), (2, 2), 1), ((7, 7), (3, 3), 2),
                                                   ((6, 8), (2, 3), (2, 3))])
def test_conv_transpose2d_is_the_transposed_convolution_matrix(image, kernel, stride):
    """T from convolution_matrix2d (rows kept by the stride): T.T @ δ = conv_transpose2d(δ, K)."""
    rng = np.random.default_rng(6)
    k = rng.integers(-4, 5, size=kernel)
    sh, sw = pair(stride)
    T = convolution_matrix2d(np.rot90(k, 2), image, "valid")  # the layer correlates
    oh, ow = image[0] - kernel[0] + 1, image[1] - kernel[1] + 1
    kept = [p * ow + q for p in range(0, oh, sh) for q in range(0, ow, sw)]
    delta = rng.integers(-4, 5, size=(len(range(0, oh, sh)), len(range(0, ow, sw))))
    by_matrix = (T[kept].T @ delta.ravel()).reshape(image)
    got = conv_transpose2d(delta[None, None], k[None, None], stride=stride)[0, 0]
    # rows and columns that no window read (the stride did not fit) get no gradient
    rows, cols = got.shape
    np.testing.assert_array_equal(got, by_matrix[:rows, :cols])
    assert not by_matrix[rows:].any() and not by_matrix[:, cols:].any()
    # and the full convolution of δ dilated by the stride, as the notebook derives
    np.testing.assert_array_equal(got, scipy.signal.convolve2d(dilate_kernel(delta, stride), k))


def test_conv_transpose2d_output_size_dtype_and_bias():
    out = conv_transpose2d(np.ones((2, 3, 5, 4)), np.ones((3, 6, 4, 3)), np.arange(6.0),
                           stride=(2, 3), padding=(1, 2))
    assert out.shape == (2, 6, (5 - 1) * 2 - 2 + 4, (4 - 1) * 3 - 4 + 3)
    assert conv_transpose2d(np.ones((1, 1, 2, 2), dtype=np.float32),
                            np.ones((1, 1, 2, 2), dtype=np.float32)).dtype == np.float32
    assert conv_transpose2d(np.ones((1, 1, 2, 2), dtype=int), np.ones((1, 1, 2, 2),
                                                                     dtype=int)).dtype == int
    no_bias = conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 2, 2, 2)))
    with_bias = conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 2, 2, 2)), [10.0, -1.0])
    np.testing.assert_array_equal(with_bias - no_bias,
                                  np.broadcast_to(np.reshape([10.0, -1.0], (1, 2, 1, 1)),
                                                  (1, 2, 3, 3)))
