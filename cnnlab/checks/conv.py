"""Checks of problem set 2 (notebook 03) for :mod:`cnnlab.layers`: the lecture's backprop
equations and conv2d (registered under the group ``layers``, see :mod:`cnnlab.checks.layers`).

The references use ``scipy.signal`` (valid correlations summed over the channels
for the forward) and, for the backward of the batched layer, the definition
written as a loop over the output pixels: each output pixel adds its gradient
times its receptive field to ``dw``, and its gradient times the kernel to the
receptive field's place in ``dx``; for the transposed convolution, its definition as a
loop over the input pixels, each adding its value times the kernel to the output window
it maps to. None of them calls an exercise of ``cnnlab``.
"""

from __future__ import annotations

import importlib

import numpy as np
import scipy.signal

from cnnlab.checks._core import Case, Check, as_arg, pair, register

MAGIC = np.array([[16, 2, 3, 13], [5, 11, 10, 8], [9, 7, 6, 12], [4, 14, 15, 1]])
DELTA_3X3 = np.array([[0.8, 0.1, -0.6], [0.3, 0.5, 0.7], [-0.4, 0.0, -0.2]])
DELTA_2X2 = np.array([[1, 3], [2, 4]])
KERNEL_2X2 = np.array([[1, 2], [3, 4]])


def random_matrix(rng, shape, integer):
    return rng.integers(-5, 6, size=shape) if integer else rng.normal(size=shape)


class _LayerCheck(Check):
    module = "cnnlab.layers"

    def function_of_module(self, name):
        return getattr(importlib.import_module(self.module), name)


# ------------------------------------------------------------------ one map, one kernel
@register
class ConvDeltaInput(_LayerCheck):
    name = "layers.conv_delta_input"
    function = "conv_delta_input"
    reference_name = "scipy.signal.convolve2d(delta, kernel, 'full')"

    def examples(self):
        return [Case("the lecture's 2x2 sensitivity and 2x2 kernel",
                     {"delta": DELTA_2X2, "kernel": KERNEL_2X2}),
                Case("the lecture's 3x3 sensitivity and a 2x2 kernel",
                     {"delta": DELTA_3X3, "kernel": np.array([[1.0, -2.0], [0.5, 3.0]])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            delta_shape = tuple(int(n) for n in rng.integers(1, 6, size=2))
            kernel_shape = tuple(int(n) for n in rng.integers(2, 5, size=2))
            cases.append(Case(f"random case {i}", {
                "delta": random_matrix(rng, delta_shape, i % 3 == 0),
                "kernel": random_matrix(rng, kernel_shape, i % 3 == 0)}))
        return cases

    def call(self, delta, kernel):
        return {"out": np.asarray(self.target()(delta, kernel))}

    def reference(self, delta, kernel):
        return {"out": scipy.signal.convolve2d(delta, kernel, "full")}

    def mistakes(self, delta, kernel):
        found = [("the kernel must be rotated by 180 degrees: δ * K is a full convolution, "
                  "not a correlation", {"out": scipy.signal.correlate2d(delta, kernel, "full")}),
                 ("the kernel was flipped along one axis only: rotate it by 180 degrees",
                  {"out": scipy.signal.convolve2d(delta, kernel[::-1], "full")})]
        for mode in ("valid", "same"):
            if mode == "valid" and not (np.all(np.greater_equal(np.shape(delta),
                                                                np.shape(kernel)))
                                        or np.all(np.less_equal(np.shape(delta),
                                                                np.shape(kernel)))):
                continue
            found.append((f"that is the {mode!r} convolution: the sensitivity of the layer "
                          "below has the input's shape, OH + KH - 1 by OW + KW - 1, which is "
                          "the 'full' convolution", {"out": scipy.signal.convolve2d(
                              delta, kernel, mode)}))
        return found


@register
class ConvGradKernel(_LayerCheck):
    name = "layers.conv_grad_kernel"
    function = "conv_grad_kernel"
    reference_name = "scipy.signal.correlate2d(a, delta, 'valid')"

    def examples(self):
        return [Case("the lecture's magic square and 3x3 sensitivity",
                     {"a": MAGIC, "delta": DELTA_3X3})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            a_shape = tuple(int(n) for n in rng.integers(2, 8, size=2))
            delta_shape = tuple(int(rng.integers(1, n + 1)) for n in a_shape)
            cases.append(Case(f"random case {i}", {
                "a": random_matrix(rng, a_shape, i % 3 == 0),
                "delta": random_matrix(rng, delta_shape, i % 3 == 0)}))
        return cases

    def call(self, a, delta):
        return {"out": np.asarray(self.target()(a, delta))}

    def reference(self, a, delta):
        return {"out": scipy.signal.correlate2d(a, delta, "valid")}

    def mistakes(self, a, delta):
        return [("the kernel gradient must be a correlation of the input with δ, not a "
                 "convolution: do not rotate δ (a ⋆ δ = a * rot90(δ, 2))",
                 {"out": scipy.signal.convolve2d(a, delta, "valid")}),
                ("that is the 'full' correlation: the kernel gradient has the kernel's shape, "
                 "H - OH + 1 by W - OW + 1, which is the 'valid' correlation",
                 {"out": scipy.signal.correlate2d(a, delta, "full")}),
                ("the arguments are swapped: correlate the input a with δ (a ⋆ δ), not δ "
                 "with a", {"out": np.rot90(scipy.signal.correlate2d(a, delta, "valid"), 2)})]


@register
class ConvGradBias(_LayerCheck):
    name = "layers.conv_grad_bias"
    function = "conv_grad_bias"
    reference_name = "delta.sum()"

    def examples(self):
        return [Case("the lecture's 3x3 sensitivity", {"delta": DELTA_3X3})]

    def random_cases(self, rng, count):
        return [Case(f"random case {i}", {
            "delta": random_matrix(rng, tuple(int(n) for n in rng.integers(1, 7, size=2)),
                                   i % 3 == 0)}) for i in range(count)]

    def call(self, delta):
        return {"out": np.asarray(self.target()(delta))}

    def reference(self, delta):
        return {"out": np.asarray(np.sum(delta))}

    def mistakes(self, delta):
        delta = np.asarray(delta)
        return [("that is the mean of δ: the bias is added to every output pixel, so its "
                 "gradient is the sum", {"out": np.asarray(delta.mean())}),
                ("the bias gradient is one number, the sum over both axes of δ",
                 {"out": delta.sum(axis=0)})]


# ------------------------------------------------------------------ the batched layer
def dilated(w, dilation):
    """Kernels with dilation - 1 zeros between their taps (last two axes)."""
    dh, dw = pair(dilation)
    kh, kw = w.shape[-2:]
    out = np.zeros(w.shape[:-2] + (dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[..., ::dh, ::dw] = w
    return out


def conv_reference(x, w, b, stride, padding, dilation, rotate=False):
    """out[n, f] = sum_c correlate2d(xpad[n, c], w[f, c], 'valid')[::sh, ::sw] + b[f]."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kernels = dilated(np.asarray(w), dilation)
    if rotate:
        kernels = kernels[..., ::-1, ::-1]
    out = None
    for n in range(x.shape[0]):
        for f in range(w.shape[0]):
            total = sum(scipy.signal.correlate2d(xpad[n, c], kernels[f, c], "valid")
                        for c in range(x.shape[1]))[::sh, ::sw] + b[f]
            if out is None:
                out = np.zeros((x.shape[0], w.shape[0]) + total.shape)
            out[n, f] = total
    return out


def conv_backward_loop(x, w, dout, stride, padding, dilation, rotate_dw=False,
                       keep_padding=False, overwrite=False):
    """The backward of conv2d by its definition: a loop over the output pixels."""
    (sh, sw), (ph, pw), (dh, dl) = pair(stride), pair(padding), pair(dilation)
    kh, kw = w.shape[2:]
    xpad = np.pad(np.asarray(x, dtype=float), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxpad = np.zeros_like(xpad)
    dw = np.zeros(w.shape)
    for p, q in np.ndindex(dout.shape[2:]):
        rows = slice(p * sh, p * sh + dh * (kh - 1) + 1, dh)
        cols = slice(q * sw, q * sw + dl * (kw - 1) + 1, dl)
        g = dout[:, :, p, q]                                      # (N, F)
        dw += np.einsum("nf,nchw->fchw", g, xpad[:, :, rows, cols])
        contribution = np.einsum("nf,fchw->nchw", g, w)
        if overwrite:
            dxpad[:, :, rows, cols] = contribution
        else:
            dxpad[:, :, rows, cols] += contribution
    if rotate_dw:
        dw = dw[..., ::-1, ::-1]
    dx = dxpad if keep_padding else dxpad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw


def conv_dx_overwriting_taps(x, w, dout, stride, padding, dilation):
    """col2im with ``=`` instead of ``+=``: each kernel tap overwrites the previous ones."""
    (sh, sw), (ph, pw), (dh, dl) = pair(stride), pair(padding), pair(dilation)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    n, c, h, width = x.shape
    dxpad = np.zeros((n, c, h + 2 * ph, width + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dl, j * dl + sw * (ow - 1) + 1, sw)
            dxpad[:, :, rows, cols] = np.einsum("nfpq,fc->ncpq", dout, w[:, :, i, j])
    return dxpad[:, :, ph:ph + h, pw:pw + width]


# Layer settings for the random cases: (N, C, H, W), (F, KH, KW), stride, padding, dilation.
LAYERS = [
    ((2, 2, 5, 6), (3, 3, 3), 1, 0, 1),
    ((2, 3, 7, 7), (2, 3, 3), 2, 1, 1),            # stride 2 and padding
    ((1, 2, 6, 8), (3, 2, 3), (1, 2), (2, 1), 1),  # non-square everything
    ((2, 1, 8, 7), (2, 3, 2), 3, 0, 1),            # stride that does not fit: dropped rows
    ((1, 2, 7, 6), (2, 2, 2), 1, 1, 2),            # dilation
    ((2, 2, 5, 5), (1, 1, 1), 2, 0, 1),            # 1x1 kernel
    ((1, 3, 6, 5), (2, 3, 2), (2, 1), 1, (1, 2)),
]


def random_layer_cases(rng, count, with_dout=False):
    cases = []
    for i in range(count):
        (n, c, h, w), (f, kh, kw), stride, padding, dilation = LAYERS[i % len(LAYERS)]
        inputs = {"x": rng.normal(size=(n, c, h, w)), "w": rng.normal(size=(f, c, kh, kw)),
                  "b": rng.normal(size=f), "stride": stride, "padding": padding,
                  "dilation": dilation}
        if with_dout:
            (sh, sw), (ph, pw), (dh, dl) = pair(stride), pair(padding), pair(dilation)
            oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
            ow = (w + 2 * pw - dl * (kw - 1) - 1) // sw + 1
            inputs["dout"] = rng.normal(size=(n, f, oh, ow))
        cases.append(Case(f"random case {i}: stride={stride}, padding={padding}, "
                          f"dilation={dilation}", inputs))
    return cases


def lecture_layer():
    """The lecture's 3x3 image and 2x2 kernel as a batch of one, with a bias."""
    return {"x": np.arange(1.0, 10.0).reshape(1, 1, 3, 3),
            "w": np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2),
            "b": np.array([100.0]), "stride": 1, "padding": 0, "dilation": 1}


@register
class Conv2dForward(_LayerCheck):
    name = "layers.conv2d_forward"
    function = "conv2d_forward"
    reference_name = "scipy.signal.correlate2d summed over the channels"

    def examples(self):
        return [Case("the lecture's 3x3 image and 2x2 kernel, bias 100", lecture_layer())]

    def random_cases(self, rng, count):
        return random_layer_cases(rng, count)

    def call(self, x, w, b, stride=1, padding=0, dilation=1):
        out, _ = self.target()(x, w, b, stride=as_arg(stride), padding=as_arg(padding),
                               dilation=as_arg(dilation))
        return {"out": np.asarray(out)}

    def reference(self, x, w, b, stride=1, padding=0, dilation=1):
        return {"out": conv_reference(x, w, b, stride, padding, dilation)}

    def mistakes(self, x, w, b, stride=1, padding=0, dilation=1):
        found = [("a convolution layer correlates (no kernel flip, like PyTorch's conv2d): "
                  "do not rotate the kernel", {"out": conv_reference(
                      x, w, b, stride, padding, dilation, rotate=True)}),
                 ("the bias is missing: add b[f] to every pixel of output map f",
                  {"out": conv_reference(x, w, np.zeros_like(b), stride, padding, dilation)})]
        if pair(stride) != (1, 1):
            found.append(("the stride was ignored: keep every stride-th window "
                          "(out[p, q] reads the window starting at p*sh, q*sw)",
                          {"out": conv_reference(x, w, b, 1, padding, dilation)}))
        if pair(padding) != (0, 0):
            found.append(("the padding was ignored: add `padding` zero rows and columns on "
                          "each side of the input first",
                          {"out": conv_reference(x, w, b, stride, 0, dilation)}))
        if pair(dilation) != (1, 1):
            found.append(("the dilation was ignored: kernel taps are `dilation` pixels apart",
                          {"out": conv_reference(x, w, b, stride, padding, 1)}))
        return found


@register
class Conv2dBackward(_LayerCheck):
    name = "layers.conv2d_backward"
    function = "conv2d_backward"
    reference_name = "the backward by definition (a loop over the output pixels)"
    rtol, atol = 1e-7, 1e-9

    def examples(self):
        return [Case("the lecture's 3x3 image and 2x2 kernel, upstream gradient of ones",
                     {**lecture_layer(), "dout": np.ones((1, 1, 2, 2))})]

    def random_cases(self, rng, count):
        return random_layer_cases(rng, count, with_dout=True)

    def call(self, x, w, b, dout, stride=1, padding=0, dilation=1):
        forward = self.function_of_module("conv2d_forward")
        _, cache = forward(x, w, b, stride=as_arg(stride), padding=as_arg(padding),
                           dilation=as_arg(dilation))
        dx, dw, db = self.target()(dout, cache)
        return {"dx": np.asarray(dx), "dw": np.asarray(dw), "db": np.asarray(db)}

    def reference(self, x, w, b, dout, stride=1, padding=0, dilation=1):
        dx, dw = conv_backward_loop(x, w, dout, stride, padding, dilation)
        return {"dx": dx, "dw": dw, "db": np.asarray(dout).sum(axis=(0, 2, 3))}

    def mistakes(self, x, w, b, dout, stride=1, padding=0, dilation=1):
        args = (x, w, dout, stride, padding, dilation)
        dx_flipped = conv_backward_loop(x, w[..., ::-1, ::-1], dout, stride, padding,
                                        dilation)[0]
        dout = np.asarray(dout)
        return [
            ("dw: the kernel gradient must be a correlation of the input with δ, not a "
             "convolution", {"dw": conv_backward_loop(*args, rotate_dw=True)[1]}),
            ("dx still has the padding rows and columns: cut them off "
             "(dx = dx_padded[:, :, ph:ph + H, pw:pw + W])",
             {"dx": conv_backward_loop(*args, keep_padding=True)[0]}),
            ("dx: δ goes back through the kernel as a full convolution δ * K (kernel rotated "
             "by 180 degrees), not as a correlation", {"dx": dx_flipped}),
            ("dx: overlapping receptive fields: add their contributions, don't overwrite",
             {"dx": conv_backward_loop(*args, overwrite=True)[0]}),
            ("dx: overlapping receptive fields: add their contributions, don't overwrite",
             {"dx": conv_dx_overwriting_taps(np.asarray(x), np.asarray(w), dout, stride,
                                             padding, dilation)}),
            ("db: sum δ over the batch and the pixels, one number per filter",
             {"db": dout.sum(axis=(2, 3))}),
            ("db: sum δ over the batch too, not only over the pixels of the first image",
             {"db": dout[0].sum(axis=(1, 2))}),
        ]


# ------------------------------------------------------------------ the transposed convolution
def conv_transpose_loop(input, weight, bias, stride, padding, rotate=False, use_stride=True,
                        crop="both"):
    """The transposed convolution by its definition: a loop over the input pixels.

    Input pixel ``(p, q)`` adds ``input[n, c, p, q] * weight[c, o]`` to the output window
    starting at ``(p * sh, q * sw)``; then ``padding`` rows and columns are cut off each
    side (``crop="end"``: ``2 * padding`` off the end only, ``"none"``: nothing cut,
    ``"pad"``: ``padding`` zeros added instead). ``rotate`` and ``use_stride=False`` make
    the wrong versions the hints explain.
    """
    input, weight = np.asarray(input), np.asarray(weight)
    (sh, sw) = pair(stride) if use_stride else (1, 1)
    (ph, pw) = pair(padding)
    kernels = weight[..., ::-1, ::-1] if rotate else weight
    n, _, h, w = input.shape
    kh, kw = weight.shape[2:]
    full = np.zeros((n, weight.shape[1], (h - 1) * sh + kh, (w - 1) * sw + kw))
    for p, q in np.ndindex(h, w):
        full[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += np.einsum(
            "nc,coij->noij", input[:, :, p, q], kernels)
    if crop == "both":
        out = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    elif crop == "end":
        out = full[:, :, :full.shape[2] - 2 * ph, :full.shape[3] - 2 * pw]
    elif crop == "pad":
        out = np.pad(full, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    else:
        out = full
    return out if bias is None else out + np.asarray(bias).reshape(1, -1, 1, 1)


# Settings of the random cases: (N, C_in, H, W), (C_out, KH, KW), stride, padding, bias.
TRANSPOSED = [
    ((2, 2, 3, 4), (3, 3, 3), 1, 0, True),
    ((2, 3, 4, 4), (2, 3, 3), 2, 1, True),             # stride 2 and padding
    ((1, 2, 3, 5), (2, 2, 3), (2, 1), (1, 0), False),  # non-square; C_in = C_out
    ((2, 1, 4, 3), (2, 2, 2), 3, 0, True),             # stride > kernel: rows of zeros
    ((1, 2, 2, 2), (1, 4, 4), 2, 1, False),            # 2x upsampling, as in decoders
    ((2, 2, 5, 5), (2, 1, 1), 2, 0, True),             # 1x1 kernel
    ((1, 3, 3, 3), (2, 3, 2), (1, 2), 1, True),
]


@register
class ConvTranspose2d(_LayerCheck):
    name = "layers.conv_transpose2d"
    function = "conv_transpose2d"
    reference_name = "the definition (a loop over the input pixels, each adding a weighted kernel)"

    def examples(self):
        delta = DELTA_2X2.reshape(1, 1, 2, 2)
        kernel = KERNEL_2X2.reshape(1, 1, 2, 2)
        return [Case("the lecture's 2x2 sensitivity and 2x2 kernel, stride 1 (= δ * K, full)",
                     {"input": delta, "weight": kernel}),
                Case("the same with stride 2", {"input": delta, "weight": kernel,
                                                 "stride": 2}),
                Case("a 3x3 map of ones, 3x3 kernel 1..9, stride 2, padding 1",
                     {"input": np.ones((1, 1, 3, 3)),
                      "weight": np.arange(1.0, 10.0).reshape(1, 1, 3, 3),
                      "stride": 2, "padding": 1})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            (n, c, h, w), (o, kh, kw), stride, padding, with_bias = \
                TRANSPOSED[i % len(TRANSPOSED)]
            integer = i % 3 == 0
            inputs = {"input": random_matrix(rng, (n, c, h, w), integer),
                      "weight": random_matrix(rng, (c, o, kh, kw), integer),
                      "stride": stride, "padding": padding}
            if with_bias:
                inputs["bias"] = random_matrix(rng, (o,), integer)
            cases.append(Case(f"random case {i}: stride={stride}, padding={padding}", inputs))
        return cases

    def call(self, input, weight, bias=None, stride=1, padding=0):
        return {"out": np.asarray(self.target()(input, weight, bias, stride=as_arg(stride),
                                                padding=as_arg(padding)))}

    def reference(self, input, weight, bias=None, stride=1, padding=0):
        return {"out": conv_transpose_loop(input, weight, bias, stride, padding)}

    def mistakes(self, input, weight, bias=None, stride=1, padding=0):
        args = (input, weight, bias, stride, padding)
        found = [("the kernel was not rotated: the transposed convolution is a full "
                  "*convolution* of the dilated input with each kernel (or a correlation "
                  "with rot90(kernel, 2))",
                  {"out": conv_transpose_loop(*args, rotate=True)})]
        if pair(stride) != (1, 1):
            found.append(("the stride was ignored: insert stride - 1 zeros between the "
                          "entries of each input map (dilate it by the stride) before the "
                          "full convolution", {"out": conv_transpose_loop(
                              *args, use_stride=False)}))
        if pair(padding) != (0, 0):
            found += [("the padding was ignored: a transposed convolution cuts `padding` "
                       "rows and columns off each side of the full result",
                       {"out": conv_transpose_loop(*args, crop="none")}),
                      ("the padding was added: a transposed convolution *removes* `padding` "
                       "rows and columns from each side of the full result (the convolution "
                       "it transposes added them)",
                       {"out": conv_transpose_loop(*args, crop="pad")}),
                      ("the padding was cut off one side only: remove `padding` rows and "
                       "columns from each side, out[:, :, ph:-ph, pw:-pw]",
                       {"out": conv_transpose_loop(*args, crop="end")})]
        if bias is not None:
            found.append(("the bias is missing: add bias[o] to every pixel of output "
                          "channel o", {"out": conv_transpose_loop(input, weight, None,
                                                                   stride, padding)}))
        weight = np.asarray(weight)
        if weight.shape[0] == weight.shape[1]:
            found.append(("weight is (C_in, C_out, KH, KW), as in PyTorch: sum over its "
                          "first axis, the input channels", {"out": conv_transpose_loop(
                              input, weight.transpose(1, 0, 2, 3), bias, stride, padding)}))
        return found
