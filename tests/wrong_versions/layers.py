"""Plausible mistakes in cnnlab.layers exercises (the conv layer and its backprop)."""

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view


def _pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


# ---------------------------------------------------------------- one map, one kernel
def delta_input_valid(delta, kernel):
    delta, kernel = np.asarray(delta), np.asarray(kernel)
    if all(d >= k for d, k in zip(delta.shape, kernel.shape)):
        return scipy.signal.convolve2d(delta, kernel, "valid")
    return scipy.signal.convolve2d(delta, kernel, "same")


def delta_input_unflipped(delta, kernel):
    return scipy.signal.correlate2d(delta, kernel, "full")


def delta_input_same(delta, kernel):
    return scipy.signal.convolve2d(delta, kernel, "same")


def grad_kernel_convolution(a, delta):
    return scipy.signal.convolve2d(a, delta, "valid")


def grad_kernel_full(a, delta):
    return scipy.signal.correlate2d(a, delta, "full")


def grad_bias_mean(delta):
    return np.mean(delta)


# ---------------------------------------------------------------- conv2d
def _windows(xpad, kh, kw, stride, dilation):
    (sh, sw), (dh, dw) = stride, dilation
    view = sliding_window_view(xpad, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def forward_with(flip=False, use_stride=True, use_padding=True, use_dilation=True,
                 use_bias=True):
    """A conv2d forward with one of its ingredients left out (or the kernel flipped)."""
    def make(original):
        def forward(x, w, b, stride=1, padding=0, dilation=1):
            x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
            stride_ = _pair(stride) if use_stride else (1, 1)
            padding_ = _pair(padding) if use_padding else (0, 0)
            dilation_ = _pair(dilation) if use_dilation else (1, 1)
            (ph, pw) = padding_
            xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            kernels = w[..., ::-1, ::-1] if flip else w
            windows = _windows(xpad, *w.shape[2:], stride_, dilation_)
            out = np.einsum("ncpqij,fcij->nfpq", windows, kernels)
            if use_bias:
                out = out + b.reshape(1, -1, 1, 1)
            cache = {"x": x, "w": w, "stride": _pair(stride), "padding": _pair(padding),
                     "dilation": _pair(dilation), "out_shape": out.shape}
            return out, cache
        return forward
    return make


def backward_with(rotate_dw=False, keep_padding=False, flip_dx=False, overwrite=False,
                  db_per_image=False):
    """A conv2d backward (im2col / col2im) with one plausible mistake."""
    def make(original):
        def backward(dout, cache):
            x, w = cache["x"], cache["w"]
            (sh, sw), (ph, pw), (dh, dl) = cache["stride"], cache["padding"], cache["dilation"]
            n, c, h, width = x.shape
            f, _, kh, kw = w.shape
            oh, ow = dout.shape[2:]
            xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            windows = _windows(xpad, kh, kw, (sh, sw), (dh, dl))
            dw = np.einsum("nfpq,ncpqij->fcij", dout, windows)
            if rotate_dw:
                dw = dw[..., ::-1, ::-1]
            db = dout.sum(axis=(2, 3)) if db_per_image else dout.sum(axis=(0, 2, 3))
            kernels = w[..., ::-1, ::-1] if flip_dx else w
            dxpad = np.zeros(xpad.shape)
            for i in range(kh):
                for j in range(kw):
                    rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                    cols = slice(j * dl, j * dl + sw * (ow - 1) + 1, sw)
                    contribution = np.einsum("nfpq,fc->ncpq", dout, kernels[:, :, i, j])
                    if overwrite:
                        dxpad[:, :, rows, cols] = contribution
                    else:
                        dxpad[:, :, rows, cols] += contribution
            dx = dxpad if keep_padding else dxpad[:, :, ph:ph + h, pw:pw + width]
            return dx, dw, db
        return backward
    return make


# ---------------------------------------------------------------- conv_transpose2d
def transpose_with(rotate=True, dilate=True, crop="both", use_bias=True):
    """conv_transpose2d as dilate, full convolution, crop, with one step done wrong."""
    def make(original):
        def conv_transpose2d(input, weight, bias=None, stride=1, padding=0):
            x, w = np.asarray(input), np.asarray(weight)
            (sh, sw) = _pair(stride) if dilate else (1, 1)
            (ph, pw) = _pair(padding)
            kh, kw = w.shape[2:]
            spread = np.zeros(x.shape[:2] + ((x.shape[2] - 1) * sh + 1,
                                             (x.shape[3] - 1) * sw + 1))
            spread[:, :, ::sh, ::sw] = x
            framed = np.pad(spread, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
            kernels = w[:, :, ::-1, ::-1] if rotate else w
            out = np.einsum("ncpqij,coij->nopq",
                            sliding_window_view(framed, (kh, kw), axis=(2, 3)), kernels)
            if crop == "both":
                out = out[:, :, ph:out.shape[2] - ph, pw:out.shape[3] - pw]
            elif crop == "end":
                out = out[:, :, :out.shape[2] - 2 * ph, :out.shape[3] - 2 * pw]
            if use_bias and bias is not None:
                out = out + np.asarray(bias).reshape(1, -1, 1, 1)
            return out
        return conv_transpose2d
    return make


WRONG = {
    "layers.conv_delta_input": [
        ("'valid' instead of 'full'", lambda ref: delta_input_valid),
        ("no kernel rotation (correlation)", lambda ref: delta_input_unflipped),
        ("'same' instead of 'full'", lambda ref: delta_input_same),
    ],
    "layers.conv_grad_kernel": [
        ("convolution instead of correlation", lambda ref: grad_kernel_convolution),
        ("'full' instead of 'valid'", lambda ref: grad_kernel_full),
    ],
    "layers.conv_grad_bias": [("mean instead of sum", lambda ref: grad_bias_mean)],
    "layers.conv2d_forward": [
        ("convolution (flipped kernel)", forward_with(flip=True)),
        ("stride ignored", forward_with(use_stride=False)),
        ("padding ignored", forward_with(use_padding=False)),
        ("dilation ignored", forward_with(use_dilation=False)),
        ("bias missing", forward_with(use_bias=False)),
    ],
    "layers.conv2d_backward": [
        ("dw from a convolution", backward_with(rotate_dw=True)),
        ("dx keeps the padding", backward_with(keep_padding=True)),
        ("dx from a correlation", backward_with(flip_dx=True)),
        ("dx overwritten on overlapping receptive fields", backward_with(overwrite=True)),
        ("db per image", backward_with(db_per_image=True)),
    ],
    "layers.conv_transpose2d": [
        ("stride not dilated", transpose_with(dilate=False)),
        ("kernel not rotated (correlation)", transpose_with(rotate=False)),
        ("padding cropped off one side", transpose_with(crop="end")),
        ("bias missing", transpose_with(use_bias=False)),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
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
    ("layers.conv_transpose2d", "stride not dilated"): r"the stride was ignored: insert",
    ("layers.conv_transpose2d", "kernel not rotated (correlation)"):
        r"the kernel was not rotated",
    ("layers.conv_transpose2d", "padding cropped off one side"):
        r"cut off one side only",
    ("layers.conv_transpose2d", "bias missing"): r"bias is missing: add bias\[o\]",
}


# ---------------------------------------------------------------- dense layers (ps3)
def linear_forward_without_bias(original):
    def linear_forward(x, w, b):
        x, w = np.asarray(x), np.asarray(w)
        return x @ w, {"x": x, "w": w}
    return linear_forward


def linear_backward_with(dw_rule="x.T @ dout", db_rule="sum0", dx_rule="dout @ w.T"):
    """linear_backward with one of dw, db, dx computed the wrong way."""
    def make(original):
        def linear_backward(dout, cache):
            x, w, dout = cache["x"], cache["w"], np.asarray(dout)
            dx = {"dout @ w.T": lambda: dout @ w.T, "dout @ w": lambda: dout @ w}[dx_rule]()
            dw = {"x.T @ dout": lambda: x.T @ dout, "dout.T @ x": lambda: dout.T @ x,
                  "x @ dout": lambda: x @ dout}[dw_rule]()
            db = {"sum0": lambda: dout.sum(axis=0), "none": lambda: dout,
                  "mean0": lambda: dout.mean(axis=0), "sum1": lambda: dout.sum(axis=1)}[db_rule]()
            return dx, dw, db
        return linear_backward
    return make


def relu_forward_np_max(original):
    def relu_forward(x):
        out = np.max(np.asarray(x), 0)
        return out, {"out": out}
    return relu_forward


def relu_backward_with(mask):
    def make(original):
        def relu_backward(dout, cache):
            out = cache["out"]
            return {"out >= 0": lambda: dout * (out >= 0), "times out": lambda: dout * out}[mask]()
        return relu_backward
    return make


def tanh_forward_by_exp(original):
    def tanh_forward(x):
        x = np.asarray(x, dtype=float)
        out = (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
        return out, {"out": out}
    return tanh_forward


def tanh_backward_with(rule):
    def make(original):
        def tanh_backward(dout, cache):
            out = cache["out"]
            if rule == "tanh of the cache":  # as if the cache held x: 1 - tanh(x)**2
                return dout * (1 - np.tanh(out) ** 2)
            return dout * (1 - out)  # the square forgotten
        return tanh_backward
    return make


def sigmoid_forward_with(rule):
    def make(original):
        def sigmoid_forward(x):
            x = np.asarray(x, dtype=float)
            if rule == "sign flipped":
                out = 1 / (1 + np.exp(x))
            else:  # e^x / (1 + e^x): inf / inf for large x
                out = np.exp(x) / (1 + np.exp(x))
            return out, {"out": out}
        return sigmoid_forward
    return make


def sigmoid_backward_with(rule):
    def make(original):
        def sigmoid_backward(dout, cache):
            s = cache["out"]
            if rule == "no (1 - s)":
                return dout * s
            t = 1 / (1 + np.exp(-s))  # as if the cache held x
            return dout * t * (1 - t)
        return sigmoid_backward
    return make


def flatten_with(rule):
    def make(original):
        def flatten(x):
            x = np.asarray(x)
            if rule == "ravel":
                return x.ravel()
            if x.ndim == 4:  # channels last
                return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)
            return x.reshape(x.shape[0], -1)
        return flatten
    return make


def flatten_backward_with(rule):
    def make(original):
        def flatten_backward(dout, cache):
            dout = np.asarray(dout)
            if rule == "fortran":
                return dout.reshape(cache["shape"], order="F")
            return dout  # not reshaped
        return flatten_backward
    return make


def softmax_cross_entropy_with(divide_loss=True, divide_grad=True, stable=True, sign=1.0):
    def make(original):
        def softmax_cross_entropy(scores, y):
            scores, y = np.asarray(scores, dtype=float), np.asarray(y)
            n = scores.shape[0]
            shifted = scores - scores.max(axis=1, keepdims=True) if stable else scores
            p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            if stable:
                log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            else:
                log_p = np.log(p)
            loss = -log_p[np.arange(n), y].sum() / (n if divide_loss else 1)
            dscores = p.copy()
            dscores[np.arange(n), y] -= 1
            dscores = sign * dscores / (n if divide_grad else 1)
            return float(loss), dscores
        return softmax_cross_entropy
    return make


# Not in WRONG, which holds the checks of problem set 2: tests/wrong_versions/lenet.py
# registers these with the checks of problem set 3.
WRONG_DENSE = {
    "layers.linear_forward": [("bias missing", linear_forward_without_bias)],
    "layers.linear_backward": [
        ("dw transposed (dout.T @ x)", linear_backward_with(dw_rule="dout.T @ x")),
        ("dw = x @ dout (x not transposed)", linear_backward_with(dw_rule="x @ dout")),
        ("db not summed over the batch", linear_backward_with(db_rule="none")),
        ("db averaged over the batch", linear_backward_with(db_rule="mean0")),
        ("db summed over the units", linear_backward_with(db_rule="sum1")),
        ("dx = dout @ w (w not transposed)", linear_backward_with(dx_rule="dout @ w")),
    ],
    "layers.relu_forward": [("np.max instead of np.maximum", relu_forward_np_max)],
    "layers.relu_backward": [
        ("gradient passed where x < 0 (out >= 0)", relu_backward_with("out >= 0")),
        ("dout times out", relu_backward_with("times out")),
    ],
    "layers.tanh_forward": [("exp formula (overflows)", tanh_forward_by_exp)],
    "layers.tanh_backward": [
        ("1 - tanh(out)**2 (cache taken for x)", tanh_backward_with("tanh of the cache")),
        ("1 - out (square missing)", tanh_backward_with("no square")),
    ],
    "layers.sigmoid_forward": [
        ("sign of the exponent flipped", sigmoid_forward_with("sign flipped")),
        ("e^x / (1 + e^x) (overflows)", sigmoid_forward_with("overflow")),
    ],
    "layers.sigmoid_backward": [
        ("(1 - s) factor missing", sigmoid_backward_with("no (1 - s)")),
        ("sigmoid of the cache (cache taken for x)", sigmoid_backward_with("sigmoid again")),
    ],
    "layers.flatten": [
        ("channels last", flatten_with("channels last")),
        ("ravel: no batch axis", flatten_with("ravel")),
    ],
    "layers.flatten_backward": [
        ("Fortran order", flatten_backward_with("fortran")),
        ("not reshaped", flatten_backward_with("none")),
    ],
    "layers.softmax_cross_entropy": [
        ("not divided by N", softmax_cross_entropy_with(divide_loss=False, divide_grad=False)),
        ("gradient not divided by N", softmax_cross_entropy_with(divide_grad=False)),
        ("no max subtraction (overflow)", softmax_cross_entropy_with(stable=False)),
        ("gradient sign flipped", softmax_cross_entropy_with(sign=-1.0)),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS_DENSE = {
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
}
