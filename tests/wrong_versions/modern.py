"""Plausible mistakes in the exercises of notebook 05 (cnnlab/layers/shapes.py and
cnnlab/layers/modern.py)."""

import numpy as np


def _wrap(body):
    """A factory that ignores the reference and returns ``body``."""
    def make(original):
        return body
    return make


# ------------------------------------------------------------------ conv1x1
def conv1x1_no_bias(x, w, b):
    x, w = np.asarray(x), np.asarray(w)
    return np.einsum("nchw,fc->nfhw", x, w[:, :, 0, 0]), {"x": x, "w": w}


def conv1x1_bad_reshape(x, w, b):
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    n, c, h, width = x.shape
    out = (x.reshape(n, h * width, c) @ w[:, :, 0, 0].T + b).reshape(n, -1, h, width)
    return out, {"x": x, "w": w}


def conv1x1_transposed(x, w, b):
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    out = np.einsum("nchw,cf->nfhw", x, w[:, :, 0, 0]) + b.reshape(1, -1, 1, 1)
    return out, {"x": x, "w": w}


# ------------------------------------------------------------------ global average pooling
def gap_sum(x):
    x = np.asarray(x)
    return x.sum(axis=(2, 3)), {"shape": x.shape}


def gap_keepdims(x):
    x = np.asarray(x)
    return x.mean(axis=(2, 3), keepdims=True), {"shape": x.shape}


def gap_backward_not_divided(dout, cache):
    return np.broadcast_to(np.asarray(dout)[:, :, None, None], cache["shape"]).copy()


def gap_backward_one_position(dout, cache):
    n, c, h, w = cache["shape"]
    dx = np.zeros(cache["shape"])
    dx[:, :, 0, 0] = np.asarray(dout) / (h * w)
    return dx


# ------------------------------------------------------------------ leaky ReLU
def leaky_wrong_side(x, negative_slope=0.01):
    x = np.asarray(x)
    return np.where(x > 0, negative_slope * x, x), {"x": x, "negative_slope": negative_slope}


def leaky_plain_relu(x, negative_slope=0.01):
    x = np.asarray(x)
    return np.maximum(x, 0), {"x": x, "negative_slope": negative_slope}


def leaky_backward_relu(dout, cache):
    return np.where(cache["x"] > 0, dout, 0.0)


def leaky_backward_wrong_side(dout, cache):
    return np.where(cache["x"] > 0, cache["negative_slope"] * np.asarray(dout), dout)


# ------------------------------------------------------------------ initialisation
def _fans(shape):
    if len(shape) == 2:
        return shape
    f, c, kh, kw = shape
    return c * kh * kw, f * kh * kw


def he_variance(shape, seed=None):
    fan_in, _ = _fans(shape)
    return np.random.default_rng(seed).normal(0.0, 2.0 / fan_in, size=shape)


def he_fan_out(shape, seed=None):
    _, fan_out = _fans(shape)
    return np.random.default_rng(seed).normal(0.0, np.sqrt(2.0 / fan_out), size=shape)


def he_channels_only(shape, seed=None):
    fan_in = shape[0] if len(shape) == 2 else shape[1]
    return np.random.default_rng(seed).normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def glorot_normal(shape, seed=None):
    fan_in, fan_out = _fans(shape)
    return np.random.default_rng(seed).normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def glorot_fan_in(shape, seed=None):
    fan_in, _ = _fans(shape)
    a = np.sqrt(6.0 / fan_in)
    return np.random.default_rng(seed).uniform(-a, a, size=shape)


# ------------------------------------------------------------------ batch normalisation
def bn_forward_with(eval_batch_stats=False, keep_running=False, biased_running=False,
                    momentum_reversed=False):
    def make(original):
        def forward(x, gamma, beta, running_mean, running_var, mode="train", momentum=0.1,
                    eps=1e-5):
            x = np.asarray(x, dtype=float)
            gamma, beta = np.asarray(gamma), np.asarray(beta)
            m = x.shape[0] * x.shape[2] * x.shape[3]
            if mode == "train" or eval_batch_stats:
                mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            else:
                mu, var = running_mean.copy(), running_var.copy()
            if mode == "train" and not keep_running:
                new_var = var if biased_running else var * m / (m - 1)
                keep = momentum if momentum_reversed else 1 - momentum
                running_mean *= keep
                running_mean += (1 - keep) * mu
                running_var *= keep
                running_var += (1 - keep) * new_var
            inv_std = 1.0 / np.sqrt(var + eps)
            x_hat = (x - mu.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)
            out = gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)
            return out, {"mode": mode, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}
        return forward
    return make


def bn_backward_with(no_mean_terms=False, no_variance_term=False, train_formula_in_eval=False,
                     sums_over_batch_only=False):
    def make(original):
        def backward(dout, cache):
            dout = np.asarray(dout, dtype=float)
            x_hat = cache["x_hat"]
            axes = (0, 2, 3)
            scale = (np.asarray(cache["gamma"]) * cache["inv_std"]).reshape(1, -1, 1, 1)
            dbeta, dgamma = dout.sum(axis=axes), (dout * x_hat).sum(axis=axes)
            m = x_hat.shape[0] * x_hat.shape[2] * x_hat.shape[3]
            b4, g4 = dbeta.reshape(1, -1, 1, 1), dgamma.reshape(1, -1, 1, 1)
            if cache["mode"] == "eval" and not train_formula_in_eval:
                dx = scale * dout
            elif no_mean_terms:
                dx = scale * dout
            elif no_variance_term:
                dx = scale / m * (m * dout - b4)
            else:
                dx = scale / m * (m * dout - b4 - x_hat * g4)
            if sums_over_batch_only:
                dgamma, dbeta = (dout * x_hat).sum(axis=0), dout.sum(axis=0)
            return dx, dgamma, dbeta
        return backward
    return make


# ------------------------------------------------------------------ dropout
def dropout_with(rescale=True, in_eval=False, flipped=False, multiply=False):
    def make(original):
        def forward(x, p=0.5, mode="train", seed=None):
            x = np.asarray(x, dtype=float)
            if mode == "eval" and not in_eval:
                return x.copy(), {"mode": mode, "p": p, "mask": None}
            mask = np.random.default_rng(seed).random(x.shape) >= p
            if flipped:
                mask = ~mask
            if not rescale:
                factor = 1.0
            else:
                factor = (1.0 - p) if multiply else 1.0 / (1.0 - p)
            return x * mask * factor, {"mode": mode, "p": p, "mask": mask}
        return forward
    return make


def dropout_backward_with(rescale=True, use_mask=True):
    def make(original):
        def backward(dout, cache):
            dout = np.asarray(dout, dtype=float)
            if cache["mode"] == "eval":
                return dout.copy()
            dx = dout * cache["mask"] if use_mask else dout
            return dx / (1.0 - cache["p"]) if rescale else dx
        return backward
    return make


# ------------------------------------------------------------------ shapes.py
def _first_two(taps):
    taps = np.asarray(taps)
    return np.flatnonzero(taps[0]), np.flatnonzero(taps[1])


def geometry_zeros_as_dilation(taps):
    first, second = _first_two(taps)
    gaps = int(first[1] - first[0]) - 1 if first.size > 1 else 0
    return first.size, int(second[0] - first[0]), gaps


def geometry_span_as_size(taps):
    first, second = _first_two(taps)
    dilation = int(first[1] - first[0]) if first.size > 1 else 1
    return int(first[-1] - first[0] + 1), int(second[0] - first[0]), dilation


def geometry_gap_as_stride(taps):
    first, second = _first_two(taps)
    dilation = int(first[1] - first[0]) if first.size > 1 else 1
    return first.size, int(second[0] - first[-1] - 1), dilation


def costs_with(no_bias=False, no_channels=False, no_flatten=False, no_padding=False,
               input_activations=False):
    def make(original):
        def layer_costs(layers, input_shape):
            shape, rows = tuple(input_shape), []
            for kind, *values in layers:
                before, params = int(np.prod(shape)), 0
                if kind == "conv":
                    filters, kernel, stride, padding = values
                    padding = 0 if no_padding else padding
                    taps = kernel * kernel * (1 if no_channels else shape[0])
                    params = filters * (taps + (0 if no_bias else 1))
                    shape = (filters, *((s + 2 * padding - kernel) // stride + 1
                                        for s in shape[1:]))
                elif kind == "pool":
                    kernel, stride = values
                    shape = (shape[0], *((s - kernel) // stride + 1 for s in shape[1:]))
                elif kind == "fc":
                    inputs = shape[0] if no_flatten else before
                    params = values[0] * (inputs + (0 if no_bias else 1))
                    shape = (values[0],)
                rows.append((shape, params, before if input_activations
                             else int(np.prod(shape))))
            return rows
        return layer_costs
    return make


WRONG = {
    "layers.window_geometry": [
        ("zeros between taps as the dilation", _wrap(geometry_zeros_as_dilation)),
        ("span as the size", _wrap(geometry_span_as_size)),
        ("gap between windows as the stride", _wrap(geometry_gap_as_stride)),
    ],
    "layers.layer_costs": [
        ("no biases", costs_with(no_bias=True)),
        ("filters without the input channels", costs_with(no_channels=True)),
        ("fc not flattened", costs_with(no_flatten=True)),
        ("padding ignored", costs_with(no_padding=True)),
        ("activations of the input", costs_with(input_activations=True)),
    ],
    "layers.conv1x1_forward": [
        ("bias missing", _wrap(conv1x1_no_bias)),
        ("reshaped without moving the channel axis", _wrap(conv1x1_bad_reshape)),
        ("weights transposed", _wrap(conv1x1_transposed)),
    ],
    "layers.global_avg_pool_forward": [
        ("sum, not mean", _wrap(gap_sum)),
        ("keepdims", _wrap(gap_keepdims)),
    ],
    "layers.global_avg_pool_backward": [
        ("not divided by H·W", _wrap(gap_backward_not_divided)),
        ("gradient to one position only", _wrap(gap_backward_one_position)),
    ],
    "layers.leaky_relu_forward": [
        ("slope on the positive side", _wrap(leaky_wrong_side)),
        ("plain ReLU", _wrap(leaky_plain_relu)),
    ],
    "layers.leaky_relu_backward": [
        ("ReLU's backward", _wrap(leaky_backward_relu)),
        ("slope on the positive side", _wrap(leaky_backward_wrong_side)),
    ],
    "layers.he_init": [
        ("variance used as std", _wrap(he_variance)),
        ("fan_out", _wrap(he_fan_out)),
        ("conv fan_in without the kernel area", _wrap(he_channels_only)),
    ],
    "layers.glorot_init": [
        ("normal, not uniform", _wrap(glorot_normal)),
        ("limit from fan_in alone", _wrap(glorot_fan_in)),
    ],
    "layers.batchnorm2d_forward": [
        ("batch statistics in eval mode", bn_forward_with(eval_batch_stats=True)),
        ("running statistics not updated", bn_forward_with(keep_running=True)),
        ("running variance biased", bn_forward_with(biased_running=True)),
        ("momentum reversed", bn_forward_with(momentum_reversed=True)),
    ],
    "layers.batchnorm2d_backward": [
        ("without the mean terms", bn_backward_with(no_mean_terms=True)),
        ("without the variance term", bn_backward_with(no_variance_term=True)),
        ("train formula in eval mode", bn_backward_with(train_formula_in_eval=True)),
        ("dgamma summed over the batch only", bn_backward_with(sums_over_batch_only=True)),
    ],
    "layers.dropout_forward": [
        ("not rescaled", dropout_with(rescale=False)),
        ("dropout in eval mode", dropout_with(in_eval=True)),
        ("mask flipped", dropout_with(flipped=True)),
        ("multiplied by 1 - p", dropout_with(multiply=True)),
    ],
    "layers.dropout_backward": [
        ("not rescaled", dropout_backward_with(rescale=False)),
        ("mask ignored", dropout_backward_with(use_mask=False)),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("layers.window_geometry", "zeros between taps as the dilation"):
        r"that is the number of zeros between them",
    ("layers.window_geometry", "span as the size"): r"kernel_size counts the taps",
    ("layers.window_geometry", "gap between windows as the stride"):
        r"the distance between the first taps",
    ("layers.layer_costs", "no biases"): r"has one bias too",
    ("layers.layer_costs", "filters without the input channels"):
        r"a filter spans every input channel",
    ("layers.layer_costs", "fc not flattened"): r"sees the flattened maps",
    ("layers.layer_costs", "padding ignored"): r"the padding adds 2·padding",
    ("layers.layer_costs", "activations of the input"): r"not of its input",
    ("layers.conv1x1_forward", "bias missing"): r"the bias is missing",
    ("layers.conv1x1_forward", "reshaped without moving the channel axis"):
        r"mixes channels and positions",
    ("layers.conv1x1_forward", "weights transposed"): r"the weight matrix is transposed",
    ("layers.global_avg_pool_forward", "sum, not mean"): r"that is the sum of each map",
    ("layers.global_avg_pool_forward", "keepdims"): r"without keepdims",
    ("layers.global_avg_pool_backward", "not divided by H·W"): r"divide dout by H·W",
    ("layers.global_avg_pool_backward", "gradient to one position only"):
        r"not only one",
    ("layers.leaky_relu_forward", "slope on the positive side"):
        r"the slope belongs to the negative side",
    ("layers.leaky_relu_forward", "plain ReLU"): r"that is the plain ReLU",
    ("layers.leaky_relu_backward", "ReLU's backward"): r"not 0 \(that is ReLU's backward\)",
    ("layers.leaky_relu_backward", "slope on the positive side"):
        r"the slope belongs to the negative side",
    ("layers.he_init", "variance used as std"): r"2 / fan_in is the variance",
    ("layers.he_init", "fan_out"): r"He uses fan_in",
    ("layers.he_init", "conv fan_in without the kernel area"): r"fan_in is C·kh·kw",
    ("layers.glorot_init", "normal, not uniform"): r"not from a normal distribution",
    ("layers.glorot_init", "limit from fan_in alone"): r"Glorot averages the fans",
    ("layers.batchnorm2d_forward", "batch statistics in eval mode"):
        r"in eval mode normalise with running_mean and running_var",
    ("layers.batchnorm2d_forward", "running statistics not updated"):
        r"update running_mean and running_var in place",
    ("layers.batchnorm2d_forward", "running variance biased"): r"unbiased variance",
    ("layers.batchnorm2d_forward", "momentum reversed"):
        r"momentum is the weight of the new batch statistics",
    ("layers.batchnorm2d_backward", "without the mean terms"): r"the mean terms are missing",
    ("layers.batchnorm2d_backward", "without the variance term"):
        r"the term of the variance, .* is missing",
    ("layers.batchnorm2d_backward", "train formula in eval mode"):
        r"in eval mode the running statistics are constants",
    ("layers.batchnorm2d_backward", "dgamma summed over the batch only"):
        r"dgamma and dbeta have shape \(C,\)",
    ("layers.dropout_forward", "not rescaled"): r"divides the kept entries by 1 - p",
    ("layers.dropout_forward", "dropout in eval mode"): r"in eval mode dropout does nothing",
    ("layers.dropout_forward", "mask flipped"): r"p is the probability of dropping",
    ("layers.dropout_forward", "multiplied by 1 - p"): r"do not multiply them",
    ("layers.dropout_backward", "not rescaled"): r"so does the backward pass",
    ("layers.dropout_backward", "mask ignored"): r"multiply by the mask",
}
