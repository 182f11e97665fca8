"""Plausible mistakes in cnnlab.pooling exercises.

Each wrong version has the signature of the exercise; the backward ones read the
cache of the (correct) forward: x, size, stride and, for max pooling, out.
"""

import numpy as np


def _geometry(cache):
    (kh, kw), (sh, sw) = cache["size"], cache["stride"]
    oh, ow = cache["out_shape"][2:]
    return kh, kw, sh, sw, oh, ow


def _taps(a, i, j, sh, sw, oh, ow):
    """Tap (i, j) of every window: a strided view of a."""
    return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def _pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


# ---------------------------------------------------------------- upsample
def upsample_with_tile(x, size):
    kh, kw = _pair(size)
    x = np.asarray(x)
    return np.tile(x, (1,) * (x.ndim - 2) + (kh, kw))


def upsample_swapped_size(x, size):
    kh, kw = _pair(size)
    return np.repeat(np.repeat(np.asarray(x), kw, axis=-2), kh, axis=-1)


def upsample_as_float(x, size):
    """np.kron with a float block of ones: right values, but the dtype changes for ints."""
    kh, kw = _pair(size)
    x = np.asarray(x)
    return np.kron(x, np.ones((1,) * (x.ndim - 2) + (kh, kw)))


# ---------------------------------------------------------------- forwards
def pool_ignoring_stride(original):
    """Windows placed every `size` pixels, whatever the stride."""
    def forward(x, size=2, stride=None):
        return original(x, size)
    return forward


def max_pool_taking_mean(original):
    def forward(x, size=2, stride=None):
        out, cache = original(x, size, stride)
        kh, kw, sh, sw, oh, ow = _geometry(cache)
        total = sum(_taps(np.asarray(x, float), i, j, sh, sw, oh, ow)
                    for i in range(kh) for j in range(kw))
        return total / (kh * kw), cache
    return forward


def avg_pool_without_dividing(original):
    def forward(x, size=2, stride=None):
        out, cache = original(x, size, stride)
        kh, kw = cache["size"]
        return out * (kh * kw), cache
    return forward


def avg_pool_by_reshape(original):
    """Windows taken with reshape, as if stride == size and the input tiled exactly."""
    def forward(x, size=2, stride=None):
        x = np.asarray(x, float)
        kh, kw = _pair(size)
        n, c, h, w = x.shape
        oh, ow = h // kh, w // kw
        blocks = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)
        return blocks.mean(axis=(3, 5)), {"x": x, "out_shape": (n, c, oh, ow),
                                          "size": (kh, kw), "stride": (kh, kw)}
    return forward


# ---------------------------------------------------------------- max pool backward
def max_backward_to_every_cell(dout, cache):
    """δ copied to every cell of the window (the upsampling of mean pooling, undivided)."""
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(cache["x"].shape)
    for i in range(kh):
        for j in range(kw):
            _taps(dx, i, j, sh, sw, oh, ow)[...] += dout
    return dx


def max_backward_overwriting(dout, cache):
    """The right routing, but assigned with a mask: overlapping windows overwrite."""
    x, out = cache["x"], cache["out"]
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(x.shape)
    free = np.ones(out.shape, bool)
    for i in range(kh):
        for j in range(kw):
            hit = (_taps(x, i, j, sh, sw, oh, ow) == out) & free
            free &= ~hit
            target = _taps(dx, i, j, sh, sw, oh, ow)
            target[hit] = dout[hit]
    return dx


def max_backward_loop_overwriting(dout, cache):
    """A loop over the windows with dx[...] = instead of +=: the last window wins."""
    x = cache["x"]
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(x.shape)
    for n, c, p, q in np.ndindex(dout.shape):
        window = x[n, c, p * sh:p * sh + kh, q * sw:q * sw + kw]
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, p * sh + i, q * sw + j] = dout[n, c, p, q]
    return dx


def max_backward_to_all_ties(dout, cache):
    """Every entry equal to the window's maximum gets the whole δ (the mask trick)."""
    x, out = cache["x"], cache["out"]
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(x.shape)
    for i in range(kh):
        for j in range(kw):
            _taps(dx, i, j, sh, sw, oh, ow)[...] += dout * (_taps(x, i, j, sh, sw, oh, ow) == out)
    return dx


def max_backward_assuming_stride_equals_size(dout, cache):
    """Routing with the windows placed every `size` pixels, whatever the stride."""
    x = cache["x"]
    kh, kw, _, _, oh, ow = _geometry(cache)
    dx = np.zeros(x.shape)
    for n, c, p, q in np.ndindex(dout.shape):
        window = x[n, c, p * kh:p * kh + kh, q * kw:q * kw + kw]
        if window.shape != (kh, kw):
            continue
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, p * kh + i, q * kw + j] += dout[n, c, p, q]
    return dx


# ---------------------------------------------------------------- avg pool backward
def avg_backward_without_dividing(dout, cache):
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(cache["x"].shape)
    for i in range(kh):
        for j in range(kw):
            _taps(dx, i, j, sh, sw, oh, ow)[...] += dout
    return dx


def avg_backward_by_upsampling_only(dout, cache):
    """np.kron(dout, ones) / area, fitted to x's shape: right only when stride == size."""
    kh, kw, *_ = _geometry(cache)
    dout = np.asarray(dout, float)
    up = np.kron(dout, np.ones((1, 1, kh, kw))) / (kh * kw)
    dx = np.zeros(cache["x"].shape)
    h, w = min(up.shape[2], dx.shape[2]), min(up.shape[3], dx.shape[3])
    dx[:, :, :h, :w] = up[:, :, :h, :w]
    return dx


def avg_backward_overwriting(dout, cache):
    kh, kw, sh, sw, oh, ow = _geometry(cache)
    dx = np.zeros(cache["x"].shape)
    for n, c, p, q in np.ndindex(dout.shape):
        dx[n, c, p * sh:p * sh + kh, q * sw:q * sw + kw] = dout[n, c, p, q] / (kh * kw)
    return dx


WRONG = {
    "pooling.upsample": [
        ("np.tile instead of np.kron", lambda ref: upsample_with_tile),
        ("kh and kw swapped", lambda ref: upsample_swapped_size),
        ("float block of ones (dtype changes)", lambda ref: upsample_as_float),
    ],
    "pooling.max_pool2d_forward": [
        ("mean instead of max", max_pool_taking_mean),
        ("stride ignored", pool_ignoring_stride),
    ],
    "pooling.avg_pool2d_forward": [
        ("sum instead of mean", avg_pool_without_dividing),
        ("stride ignored", pool_ignoring_stride),
        ("reshape into non-overlapping blocks", avg_pool_by_reshape),
    ],
    "pooling.max_pool2d_backward": [
        ("δ routed to every cell of the window", lambda ref: max_backward_to_every_cell),
        ("overwriting on overlapping windows (masked taps)",
         lambda ref: max_backward_overwriting),
        ("overwriting on overlapping windows (loop)", lambda ref: max_backward_loop_overwriting),
        ("δ routed to every tied maximum", lambda ref: max_backward_to_all_ties),
        ("windows assumed every `size` pixels",
         lambda ref: max_backward_assuming_stride_equals_size),
    ],
    "pooling.avg_pool2d_backward": [
        ("no division by the window area", lambda ref: avg_backward_without_dividing),
        ("Kronecker upsampling whatever the stride", lambda ref: avg_backward_by_upsampling_only),
        ("overwriting on overlapping windows", lambda ref: avg_backward_overwriting),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("pooling.upsample", "np.tile instead of np.kron"): r"np\.tile repeats the whole array",
    ("pooling.upsample", "kh and kw swapped"): r"kw x kh instead of kh x kw",
    ("pooling.upsample", "float block of ones (dtype changes)"): r"expected dtype int64",
    ("pooling.max_pool2d_forward", "mean instead of max"): r"average pooling",
    ("pooling.max_pool2d_forward", "stride ignored"): r"stride was ignored",
    ("pooling.avg_pool2d_forward", "sum instead of mean"): r"divide by the window area",
    ("pooling.avg_pool2d_forward", "stride ignored"): r"stride was ignored",
    ("pooling.avg_pool2d_forward", "reshape into non-overlapping blocks"):
        r"stride was ignored",
    ("pooling.max_pool2d_backward", "δ routed to every cell of the window"):
        r"δ was routed to every cell of the window: route it only to the argmax",
    ("pooling.max_pool2d_backward", "overwriting on overlapping windows (masked taps)"):
        r"overlapping windows: add the gradients, don't overwrite",
    ("pooling.max_pool2d_backward", "overwriting on overlapping windows (loop)"):
        r"overlapping windows: add the gradients, don't overwrite",
    ("pooling.max_pool2d_backward", "δ routed to every tied maximum"): r"ties:",
    ("pooling.max_pool2d_backward", "windows assumed every `size` pixels"):
        r"start every `stride` pixels",
    ("pooling.avg_pool2d_backward", "no division by the window area"):
        r"divide by the window area",
    ("pooling.avg_pool2d_backward", "Kronecker upsampling whatever the stride"):
        r"Kronecker upsampling is the backward only when the windows tile",
    ("pooling.avg_pool2d_backward", "overwriting on overlapping windows"):
        r"add the gradients, don't overwrite",
}
