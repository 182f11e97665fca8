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
}
