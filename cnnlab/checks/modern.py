"""Checks of problem set 4 (notebook 05): a network's shapes and costs (cnnlab/layers/
shapes.py) and the layers of modern CNNs (cnnlab/layers/modern.py).

Registered under the group ``layers`` (the functions live in ``cnnlab.layers``);
``cnnlab.checks.layers`` imports this module. Every reference here is written
independently of the exercises (loops, or a step-by-step computational graph).
"""

from __future__ import annotations

import numpy as np

from cnnlab.checks._core import Case, grading_side, register
from cnnlab.checks.conv import _LayerCheck
from cnnlab.checks.dense import random_shape, with_zeros


def _image_shape(rng, square_channels=False):
    n, c, h, w = (int(v) for v in rng.integers(1, 5, size=4))
    f = c if square_channels else int(rng.integers(1, 5))
    return (n, c, h, w), f


# ------------------------------------------------------------------ reading a picture
def taps_picture(kernel_size, stride, dilation, outputs, offset=0, tail=0):
    """The windows of a 1-D convolution as a 0/1 picture, one row per output."""
    span = dilation * (kernel_size - 1) + 1
    taps = np.zeros((outputs, offset + span + stride * (outputs - 1) + tail), dtype=np.int64)
    for row in range(outputs):
        for tap in range(kernel_size):
            taps[row, offset + row * stride + tap * dilation] = 1
    return taps


def geometry_loop(taps):
    """(kernel_size, stride, dilation) by walking the first two rows."""
    taps = np.asarray(taps)
    first = [i for i, v in enumerate(taps[0]) if v]
    second = [i for i, v in enumerate(taps[1]) if v]
    dilation = first[1] - first[0] if len(first) > 1 else 1
    return np.array([len(first), second[0] - first[0], dilation])


@register
class WindowGeometry(_LayerCheck):
    name = "layers.window_geometry"
    function = "window_geometry"
    reference_name = "the taps of the first two windows counted one by one"

    def examples(self):
        return [Case("the lecture's 3x3 filter on 7 pixels, stride 2",
                     {"taps": taps_picture(3, 2, 1, 3)}),
                Case("the lecture's three weights spread over five pixels (dilation 2)",
                     {"taps": taps_picture(3, 1, 2, 4)}),
                Case("two taps, dilation 3, stride 2", {"taps": taps_picture(2, 2, 3, 3)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            kernel_size = int(rng.integers(1, 6))
            dilation = int(rng.integers(1, 4)) if kernel_size > 1 else 1
            stride, outputs = int(rng.integers(1, 5)), int(rng.integers(2, 6))
            offset, tail = (int(v) for v in rng.integers(0, 3, size=2))
            cases.append(Case(f"random case {i}: size {kernel_size}, stride {stride}, "
                              f"dilation {dilation}, {outputs} outputs", {
                                  "taps": taps_picture(kernel_size, stride, dilation, outputs,
                                                       offset, tail)}))
        return cases

    def call(self, taps):
        found = self.target()(taps)
        return {"out": np.asarray(found, dtype=float)}

    def reference(self, taps):
        return {"out": geometry_loop(taps).astype(float)}

    def mistakes(self, taps):
        size, stride, dilation = (int(v) for v in geometry_loop(taps))
        span = dilation * (size - 1) + 1
        return [("dilation is the distance between neighbouring taps (PyTorch's dilation): "
                 "that is the number of zeros between them, which is dilation - 1",
                 {"out": np.array([size, stride, dilation - 1], dtype=float)}),
                ("kernel_size counts the taps (the weights), not the span of the window from "
                 "its first to its last tap", {"out": np.array([span, stride, dilation],
                                                               dtype=float)}),
                ("the stride is how far a window moves: the distance between the first taps "
                 "of two neighbouring windows, not the gap after a window",
                 {"out": np.array([size, stride - span, dilation], dtype=float)})]


# ------------------------------------------------------------------ a stack's costs
def parse_layers(text):
    """'conv 10 5 1 2; relu; fc 10' as [("conv", 10, 5, 1, 2), ("relu",), ("fc", 10)]."""
    return [(kind, *(int(v) for v in values))
            for kind, *values in (part.split() for part in text.split(";"))]


def costs_reference(layers, input_shape, no_bias=False, no_channels=False, no_flatten=False,
                    no_padding=False, input_activations=False, pool_no_stride=False):
    """Shapes, parameters and activations of every layer, by the formulas (and switches for
    the planted mistakes); shapes as rows (C, H, W), (units, 0, 0) after a dense layer."""
    shape = list(input_shape)
    shapes, params, activations = [], [], []
    for kind, *values in parse_layers(layers):
        before = int(np.prod([s for s in shape if s]))
        count = 0
        if kind == "conv":
            filters, kernel, stride, padding = values
            padding = 0 if no_padding else padding
            taps = kernel * kernel * (1 if no_channels else shape[0])
            count = filters * (taps + (0 if no_bias else 1))
            shape = [filters] + [(s + 2 * padding - kernel) // stride + 1 for s in shape[1:]]
        elif kind == "pool":
            kernel, stride = values
            stride = 1 if pool_no_stride else stride
            shape = [shape[0]] + [(s - kernel) // stride + 1 for s in shape[1:]]
        elif kind == "fc":
            inputs = shape[0] if no_flatten else before
            count = values[0] * (inputs + (0 if no_bias else 1))
            shape = [values[0], 0, 0]
        shapes.append(list(shape))
        params.append(count)
        activations.append(before if input_activations else int(np.prod([s for s in shape
                                                                           if s])))
    return {"shapes": np.array(shapes, dtype=float), "params": np.array(params, dtype=float),
            "activations": np.array(activations, dtype=float)}


#: VGG-16 (configuration D of Simonyan and Zisserman's table): 3x3 convolutions with
#: padding 1, each followed by a ReLU (in place: left out of the count), 2x2 max pooling.
VGG16 = "; ".join(["conv 64 3 1 1"] * 2 + ["pool 2 2"] + ["conv 128 3 1 1"] * 2 + ["pool 2 2"]
                  + ["conv 256 3 1 1"] * 3 + ["pool 2 2"] + ["conv 512 3 1 1"] * 3
                  + ["pool 2 2"] + ["conv 512 3 1 1"] * 3 + ["pool 2 2"]
                  + ["fc 4096", "fc 4096", "fc 1000"])
#: The lecture's convolutional LeNet300 on 28x28 digits: conv-and-pool twice, then dense.
LENET300 = "conv 6 5 1 2; relu; pool 2 2; conv 16 5 1 2; relu; pool 2 2; fc 100; relu; fc 10"


def random_stack(rng):
    """A random INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC that fits."""
    channels, side = int(rng.integers(1, 4)), int(rng.integers(8, 33))
    width = side + int(rng.integers(0, 3))
    layers, h, w = [], side, width
    for _ in range(int(rng.integers(1, 4))):
        for _ in range(int(rng.integers(1, 3))):
            kernel = int(rng.choice([1, 3, 5]))
            stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, kernel // 2 + 1))
            if min(h, w) + 2 * padding < kernel:
                break
            layers += [f"conv {int(rng.integers(2, 17))} {kernel} {stride} {padding}", "relu"]
            h, w = ((s + 2 * padding - kernel) // stride + 1 for s in (h, w))
        kernel = int(rng.choice([2, 3]))
        if min(h, w) >= kernel and rng.random() < 0.7:
            layers.append(f"pool {kernel} 2")
            h, w = ((s - kernel) // 2 + 1 for s in (h, w))
    for _ in range(int(rng.integers(0, 3))):
        layers += [f"fc {int(rng.integers(4, 65))}", "relu"]
    layers.append(f"fc {int(rng.integers(2, 11))}")
    return "; ".join(layers), (channels, side, width)


@register
class LayerCosts(_LayerCheck):
    name = "layers.layer_costs"
    function = "layer_costs"
    reference_name = ("the formulas: F·(C·k·k + 1) weights per conv, units·(inputs + 1) per "
                      "fc, the output's size in values")

    def examples(self):
        return [Case("the lecture's ten 5x5 filters, stride 1, padding 2, on 32x32x3",
                     {"layers": "conv 10 5 1 2", "input_shape": (3, 32, 32)}),
                Case("the lecture's convolutional LeNet300 on 28x28 digits",
                     {"layers": LENET300, "input_shape": (1, 28, 28)}),
                Case("VGG-16 on a 224x224 RGB image", {"layers": VGG16,
                                                       "input_shape": (3, 224, 224)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            layers, shape = random_stack(rng)
            cases.append(Case(f"random case {i}: {layers.count(';') + 1} layers on {shape}",
                              {"layers": layers, "input_shape": shape}))
        return cases

    def call(self, layers, input_shape):
        rows = self.target()(parse_layers(layers), tuple(input_shape))
        shapes = [list(shape) + [0] * (3 - len(shape)) for shape, _, _ in rows]
        return {"shapes": np.array(shapes, dtype=float),
                "params": np.array([row[1] for row in rows], dtype=float),
                "activations": np.array([row[2] for row in rows], dtype=float)}

    def reference(self, layers, input_shape):
        return costs_reference(layers, input_shape)

    def mistakes(self, layers, input_shape):
        def wrong(**switch):
            return costs_reference(layers, input_shape, **switch)

        return [("every filter (and every unit) has one bias too: F·(C·k·k + 1) parameters "
                 "for a conv layer, units·(inputs + 1) for a fully connected one",
                 {"params": wrong(no_bias=True)["params"]}),
                ("a filter spans every input channel: it has C·k·k weights (plus a bias), "
                 "not k·k", {"params": wrong(no_channels=True)["params"]}),
                ("the first fully connected layer sees the flattened maps: C·H·W inputs, not "
                 "C", {"params": wrong(no_flatten=True)["params"]}),
                ("the padding adds 2·padding to each side's length: out = (n + 2·padding - "
                 "k) // stride + 1", {"shapes": wrong(no_padding=True)["shapes"]}),
                ("a pooling window moves by its stride: out = (n - k) // stride + 1",
                 {"shapes": wrong(pool_no_stride=True)["shapes"]}),
                ("count the values of each layer's output (C·H·W), not of its input",
                 {"activations": wrong(input_activations=True)["activations"]})]


# ------------------------------------------------------------------ 1x1 convolution
def conv1x1_loop(x, w, b):
    x, w, b = (np.asarray(v, dtype=float) for v in (x, w, b))
    n, c, h, width = x.shape
    f = w.shape[0]
    out = np.zeros((n, f, h, width))
    for k in range(f):
        out[:, k] = b[k]
        for ch in range(c):
            out[:, k] += w[k, ch, 0, 0] * x[:, ch]
    return out


@register
class Conv1x1Forward(_LayerCheck):
    name = "layers.conv1x1_forward"
    function = "conv1x1_forward"
    reference_name = "a loop over output and input channels"

    def examples(self):
        return [Case("the docstring's 2 channels of 2x2", {
            "x": np.arange(8.0).reshape(1, 2, 2, 2),
            "w": np.array([[1.0, 1.0], [1.0, -1.0]]).reshape(2, 2, 1, 1),
            "b": np.array([0.0, 10.0])})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape, f = _image_shape(rng, square_channels=i % 2 == 0)
            if i % 3 == 0:  # channels and positions of different numbers, to tell them apart
                shape = (shape[0], 3, 2, 2)
                f = 3
            x = rng.normal(size=shape) if i % 4 else rng.integers(-4, 5, size=shape)
            cases.append(Case(f"random case {i}: x {shape}, {f} filters", {
                "x": x, "w": rng.normal(size=(f, shape[1], 1, 1)), "b": rng.normal(size=f)}))
        return cases

    def call(self, x, w, b):
        out, _ = self.target()(x, w, b)
        return {"out": np.asarray(out)}

    def reference(self, x, w, b):
        return {"out": conv1x1_loop(x, w, b)}

    def mistakes(self, x, w, b):
        x, w, b = (np.asarray(v, dtype=float) for v in (x, w, b))
        n, c, h, width = x.shape
        f = w.shape[0]
        right = conv1x1_loop(x, w, b)
        found = [("the bias is missing: add b[f] to every position of output channel f",
                  {"out": right - b.reshape(1, -1, 1, 1)}),
                 ("x.reshape(N, H*W, C) mixes channels and positions: move the channel axis "
                  "last first (x.transpose(0, 2, 3, 1)), or use einsum('nchw,fc->nfhw', ...)",
                  {"out": (x.reshape(n, h * width, c) @ w[:, :, 0, 0].T
                           + b).reshape(n, f, h, width)})]
        if f == c:
            found.append(("w[f, c] is the weight from input channel c to output channel f: "
                          "the weight matrix is transposed",
                          {"out": conv1x1_loop(x, w.transpose(1, 0, 2, 3), b)}))
        return found


# ------------------------------------------------------------------ global average pooling
def gap_loop(x):
    x = np.asarray(x, dtype=float)
    n, c = x.shape[:2]
    out = np.zeros((n, c))
    for i in range(n):
        for k in range(c):
            out[i, k] = np.sum(x[i, k]) / x[i, k].size
    return out


@register
class GlobalAvgPoolForward(_LayerCheck):
    name = "layers.global_avg_pool_forward"
    function = "global_avg_pool_forward"
    reference_name = "the sum of each map divided by H·W"

    def examples(self):
        return [Case("the docstring's two 2x2 maps", {"x": np.arange(8.0).reshape(1, 2, 2, 2)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape, _ = _image_shape(rng)
            shape = shape[:2] + (shape[2] + 1, shape[3])  # at least 2 positions per map
            cases.append(Case(f"random case {i}: x {shape}", {"x": rng.normal(size=shape)}))
        return cases

    def call(self, x):
        out, _ = self.target()(x)
        return {"out": np.asarray(out)}

    def reference(self, x):
        return {"out": gap_loop(x)}

    def mistakes(self, x):
        x = np.asarray(x, dtype=float)
        return [("that is the sum of each map: divide by the number of positions H·W",
                 {"out": x.sum(axis=(2, 3))}),
                ("the output has shape (N, C): average over the positions without keepdims",
                 {"out": x.mean(axis=(2, 3), keepdims=True)}),
                ("average over the positions (axes 2 and 3), not over the channels",
                 {"out": x.mean(axis=1)})]


@register
class GlobalAvgPoolBackward(_LayerCheck):
    name = "layers.global_avg_pool_backward"
    function = "global_avg_pool_backward"
    reference_name = "dout[n, c] / (H·W) at every position of map (n, c)"

    def examples(self):
        return [Case("the docstring's one 2x2 map, dout 4", {
            "dout": np.array([[4.0]]), "shape": (1, 1, 2, 2)})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape, _ = _image_shape(rng)
            shape = shape[:2] + (shape[2] + 1, shape[3])
            cases.append(Case(f"random case {i}: x {shape}", {
                "dout": rng.normal(size=shape[:2]), "shape": tuple(shape)}))
        return cases

    def call(self, dout, shape):
        dx = self.target()(dout, {"shape": tuple(shape)})
        return {"dx": np.asarray(dx)}

    def reference(self, dout, shape):
        n, c, h, w = shape
        dx = np.zeros(shape)
        for i in range(n):
            for k in range(c):
                dx[i, k] = dout[i, k] / (h * w)
        return {"dx": dx}

    def mistakes(self, dout, shape):
        n, c, h, w = shape
        spread = np.broadcast_to(np.asarray(dout, dtype=float)[:, :, None, None], shape)
        corner = np.zeros(shape)
        corner[:, :, 0, 0] = dout
        return [("each of the H·W positions contributed 1/(H·W) of the mean: divide dout by "
                 "H·W", {"dx": spread.copy()}),
                ("every position of a map contributed to its mean: spread dout / (H·W) over "
                 "all of them, not only one", {"dx": corner / (h * w)}),
                ("divide by H·W, the number of positions, not by H alone",
                 {"dx": spread / h})]


# ------------------------------------------------------------------ leaky ReLU
SLOPES = (0.01, 0.1, 0.2, 0.3, 0.05)


def leaky_cases(rng, count, with_dout=False):
    cases = []
    for i in range(count):
        shape = random_shape(rng, 1 + i % 4, 1, 5)
        x = with_zeros(rng, rng.normal(0.0, 2.0, size=shape))
        inputs = {"x": x, "negative_slope": SLOPES[i % len(SLOPES)]}
        if with_dout:
            inputs["dout"] = rng.normal(size=shape)
        cases.append(Case(f"random case {i}", inputs))
    return cases


@register
class LeakyReluForward(_LayerCheck):
    name = "layers.leaky_relu_forward"
    function = "leaky_relu_forward"
    reference_name = "x where x > 0, else negative_slope * x"

    def examples(self):
        return [Case("the docstring's [-2, 0, 3], slope 0.1", {
            "x": np.array([-2.0, 0.0, 3.0]), "negative_slope": 0.1})]

    def random_cases(self, rng, count):
        return leaky_cases(rng, count)

    def call(self, x, negative_slope):
        out, _ = self.target()(x, negative_slope)
        return {"out": np.asarray(out)}

    def reference(self, x, negative_slope):
        x = np.asarray(x, dtype=float)
        return {"out": np.array([v if v > 0 else negative_slope * v for v in x.ravel()]
                                ).reshape(x.shape)}

    def mistakes(self, x, negative_slope):
        x = np.asarray(x, dtype=float)
        return [("the slope belongs to the negative side: x where x > 0, negative_slope * x "
                 "elsewhere", {"out": np.where(x > 0, negative_slope * x, x)}),
                ("that is the plain ReLU: negative inputs are multiplied by negative_slope, "
                 "not set to 0", {"out": np.maximum(x, 0)})]


@register
class LeakyReluBackward(_LayerCheck):
    name = "layers.leaky_relu_backward"
    function = "leaky_relu_backward"
    reference_name = "dout where x > 0, else negative_slope * dout"

    def examples(self):
        return [Case("the docstring's [-2, 0, 3], slope 0.1, dout 5", {
            "x": np.array([-2.0, 0.0, 3.0]), "negative_slope": 0.1,
            "dout": np.array([5.0, 5.0, 5.0])})]

    def random_cases(self, rng, count):
        return leaky_cases(rng, count, with_dout=True)

    def call(self, x, negative_slope, dout):
        dx = self.target()(dout, {"x": np.asarray(x), "negative_slope": negative_slope})
        return {"dx": np.asarray(dx)}

    def reference(self, x, negative_slope, dout):
        x, dout = np.asarray(x, dtype=float), np.asarray(dout, dtype=float)
        slope = np.array([1.0 if v > 0 else negative_slope for v in x.ravel()]).reshape(x.shape)
        return {"dx": dout * slope}

    def mistakes(self, x, negative_slope, dout):
        x, dout = np.asarray(x, dtype=float), np.asarray(dout, dtype=float)
        return [("where x <= 0 the gradient is negative_slope * dout, not 0 (that is ReLU's "
                 "backward)", {"dx": np.where(x > 0, dout, 0.0)}),
                ("the slope belongs to the negative side: dout where x > 0, negative_slope * "
                 "dout elsewhere", {"dx": np.where(x > 0, negative_slope * dout, dout)}),
                ("multiply the local derivative (1 or negative_slope) by dout",
                 {"dx": np.where(x > 0, 1.0, negative_slope)})]


# ------------------------------------------------------------------ initialisation
INIT_SHAPES = [(400, 120), (16, 6, 5, 5), (6, 1, 5, 5), (84, 10), (8, 3, 3, 3), (3, 7),
               (32, 16, 1, 1), (5, 2, 3, 1)]


def fans_of(shape):
    if len(shape) == 2:
        return shape[0], shape[1]
    f, c, kh, kw = shape
    return c * kh * kw, f * kh * kw


class _InitCheck(_LayerCheck):
    def examples(self):
        return [Case("LeNet5's C3 weights, seed 0", {"shape": (16, 6, 5, 5), "seed": 0}),
                Case("LeNet5's F5 weights, seed 1", {"shape": (400, 120), "seed": 1})]

    def random_cases(self, rng, count):
        return [Case(f"random case {i}", {"shape": INIT_SHAPES[i % len(INIT_SHAPES)],
                                          "seed": int(rng.integers(0, 10_000))})
                for i in range(count)]

    def call(self, shape, seed):
        return {"out": np.asarray(self.target()(tuple(shape), seed=seed))}


@register
class HeInit(_InitCheck):
    name = "layers.he_init"
    function = "he_init"
    reference_name = "default_rng(seed).normal(0, sqrt(2 / fan_in), shape)"

    def reference(self, shape, seed):
        fan_in, _ = fans_of(tuple(shape))
        return {"out": np.random.default_rng(seed).normal(size=tuple(shape))
                * np.sqrt(2.0 / fan_in)}

    def mistakes(self, shape, seed):
        shape = tuple(shape)
        fan_in, fan_out = fans_of(shape)
        z = np.random.default_rng(seed).normal(size=shape)
        found = [("He's standard deviation is sqrt(2 / fan_in): 2 / fan_in is the variance",
                  {"out": z * 2.0 / fan_in}),
                 ("He uses fan_in, the number of inputs each output sees, not fan_out",
                  {"out": z * np.sqrt(2.0 / fan_out)}),
                 ("the factor 2 (for ReLU, which zeroes half its inputs) is missing: "
                  "std = sqrt(2 / fan_in)", {"out": z * np.sqrt(1.0 / fan_in)})]
        if len(shape) == 4:
            found.append(("a convolution's fan_in is C·kh·kw: each output sees a kh×kw "
                          "window of every input channel", {"out": z * np.sqrt(2.0 / shape[1])}))
        return found


@register
class GlorotInit(_InitCheck):
    name = "layers.glorot_init"
    function = "glorot_init"
    reference_name = "default_rng(seed).uniform(-a, a, shape), a = sqrt(6 / (fan_in + fan_out))"

    def reference(self, shape, seed):
        fan_in, fan_out = fans_of(tuple(shape))
        a = np.sqrt(6.0 / (fan_in + fan_out))
        return {"out": np.random.default_rng(seed).uniform(-a, a, size=tuple(shape))}

    def mistakes(self, shape, seed):
        shape = tuple(shape)
        fan_in, fan_out = fans_of(shape)
        total = fan_in + fan_out
        rng = np.random.default_rng
        found = [("Glorot's uniform limit is sqrt(6 / (fan_in + fan_out)): that is the "
                  "variance 2 / (fan_in + fan_out) used as the limit",
                  {"out": rng(seed).uniform(-2.0 / total, 2.0 / total, size=shape)}),
                 ("draw uniformly on [-a, a] (rng.uniform), not from a normal distribution",
                  {"out": rng(seed).normal(0.0, np.sqrt(2.0 / total), size=shape)}),
                 ("Glorot averages the fans: a = sqrt(6 / (fan_in + fan_out)), not "
                  "sqrt(6 / fan_in)", {"out": rng(seed).uniform(
                      -np.sqrt(6.0 / fan_in), np.sqrt(6.0 / fan_in), size=shape)})]
        if len(shape) == 4:
            a = np.sqrt(6.0 / (shape[0] + shape[1]))
            found.append(("a convolution's fans include the kernel area: fan_in = C·kh·kw, "
                          "fan_out = F·kh·kw", {"out": rng(seed).uniform(-a, a, size=shape)}))
        return found


# ------------------------------------------------------------------ batch normalisation
def bn_statistics(x):
    """Per-channel mean and biased variance of (N, C, H, W), by loops over the channels."""
    x = np.asarray(x, dtype=float)
    c = x.shape[1]
    values = [x[:, k].ravel() for k in range(c)]
    mu = np.array([v.sum() / v.size for v in values])
    var = np.array([((v - m) ** 2).sum() / v.size for v, m in zip(values, mu)])
    return mu, var


def bn_forward_reference(x, gamma, beta, running_mean, running_var, mode, momentum, eps,
                         biased_running=False, eval_batch_stats=False, keep_running=False,
                         momentum_reversed=False, eps_outside=False, stats_axis0=False):
    """Batch norm written out (with switches for the planted mistakes)."""
    x = np.asarray(x, dtype=float)
    gamma, beta = np.asarray(gamma, dtype=float), np.asarray(beta, dtype=float)
    rm, rv = np.array(running_mean, dtype=float), np.array(running_var, dtype=float)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    shape = (1, -1, 1, 1)
    if stats_axis0:
        mu, var = x.mean(axis=0), x.var(axis=0)
    elif mode == "train" or eval_batch_stats:
        mu, var = bn_statistics(x)
    else:
        mu, var = rm, rv
    if mode == "train" and not keep_running and not stats_axis0:
        unbiased = var if biased_running else var * m / (m - 1)
        if momentum_reversed:
            rm, rv = momentum * rm + (1 - momentum) * mu, momentum * rv + (1 - momentum) * unbiased
        else:
            rm, rv = (1 - momentum) * rm + momentum * mu, (1 - momentum) * rv + momentum * unbiased
    if stats_axis0:
        x_hat = (x - mu) / np.sqrt(var + eps)
    else:
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        x_hat = (x - mu.reshape(shape)) / std.reshape(shape)
    out = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    return {"out": out, "running_mean": rm, "running_var": rv}


def bn_cases(rng, count, backward=False):
    cases = []
    for i in range(count):
        n, c, h, w = (int(v) for v in rng.integers(1, 4, size=4))
        n += 1  # at least 2 values per channel
        mode = "eval" if i % 3 == 2 else "train"
        x = rng.normal(rng.normal(0, 2), rng.uniform(0.5, 3.0), size=(n, c, h, w))
        inputs = {"x": x, "gamma": rng.normal(1.0, 0.5, size=c),
                  "running_mean": rng.normal(size=c),
                  "running_var": rng.uniform(0.5, 2.0, size=c), "mode": mode,
                  "eps": (1e-5, 0.1, 0.5)[i % 3]}
        if backward:
            inputs["dout"] = rng.normal(size=x.shape)
        else:
            inputs["beta"] = rng.normal(size=c)
            inputs["momentum"] = (0.1, 0.3, 0.9)[i % 3]
        cases.append(Case(f"random case {i}: x {x.shape}, {mode} mode", inputs))
    return cases


@register
class BatchNorm2dForward(_LayerCheck):
    name = "layers.batchnorm2d_forward"
    function = "batchnorm2d_forward"
    reference_name = "batch normalisation written out channel by channel"
    rtol, atol = 1e-7, 1e-10

    def examples(self):
        x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1)
        return [Case("the docstring's four values, train mode", {
                    "x": x, "gamma": np.ones(1), "beta": np.zeros(1),
                    "running_mean": np.zeros(1), "running_var": np.ones(1), "mode": "train",
                    "momentum": 0.1, "eps": 1e-5}),
                Case("the same in eval mode, running mean 2 and variance 4", {
                    "x": x, "gamma": np.array([2.0]), "beta": np.array([1.0]),
                    "running_mean": np.array([2.0]), "running_var": np.array([4.0]),
                    "mode": "eval", "momentum": 0.1, "eps": 1e-5})]

    def random_cases(self, rng, count):
        return bn_cases(rng, count)

    def call(self, x, gamma, beta, running_mean, running_var, mode, momentum, eps):
        rm = np.array(running_mean, dtype=float)
        rv = np.array(running_var, dtype=float)
        out, _ = self.target()(x, gamma, beta, rm, rv, mode=mode, momentum=momentum, eps=eps)
        return {"out": np.asarray(out), "running_mean": rm, "running_var": rv}

    def reference(self, **inputs):
        return bn_forward_reference(**inputs)

    def mistakes(self, **inputs):
        def wrong(**switch):
            return bn_forward_reference(**inputs, **switch)

        return [
            ("in eval mode normalise with running_mean and running_var, not with the "
             "statistics of the batch", wrong(eval_batch_stats=True)),
            ("a channel's statistics are over the batch and the positions, axes (0, 2, 3), "
             "not over axis 0 alone", {"out": wrong(stats_axis0=True)["out"]}),
            ("eps goes inside the square root: (x - mu) / sqrt(var + eps)",
             wrong(eps_outside=True)),
            ("update running_mean and running_var in place (running_mean *= 1 - momentum; "
             "running_mean += momentum * mu): they did not change", wrong(keep_running=True)),
            ("momentum is the weight of the new batch statistics: running = (1 - momentum) * "
             "running + momentum * batch", wrong(momentum_reversed=True)),
            ("running_var is updated with the unbiased variance, var * M / (M - 1), "
             "M = N·H·W", wrong(biased_running=True)),
        ]


def bn_cache(x, running_mean, running_var, mode, eps, gamma):
    x = np.asarray(x, dtype=float)
    if mode == "train":
        mu, var = bn_statistics(x)
    else:
        mu, var = np.asarray(running_mean, dtype=float), np.asarray(running_var, dtype=float)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)
    return {"mode": mode, "x_hat": x_hat, "inv_std": inv_std,
            "gamma": np.asarray(gamma, dtype=float)}


def bn_backward_graph(x, gamma, dout, running_mean, running_var, mode, eps):
    """dx, dgamma, dbeta by walking batch norm's computational graph node by node."""
    x, dout = np.asarray(x, dtype=float), np.asarray(dout, dtype=float)
    gamma = np.asarray(gamma, dtype=float).reshape(1, -1, 1, 1)
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    cache = bn_cache(x, running_mean, running_var, mode, eps, gamma.ravel())
    x_hat = cache["x_hat"]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * gamma
    if mode == "eval":
        return dx_hat * cache["inv_std"].reshape(1, -1, 1, 1), dgamma, dbeta
    mu = x.mean(axis=axes, keepdims=True)
    centred = x - mu                                   # node 1: x - mu
    var = (centred ** 2).mean(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)                           # node 2: sqrt(var + eps)
    inv = 1.0 / std                                    # node 3: 1 / std
    dinv = (dx_hat * centred).sum(axis=axes, keepdims=True)
    dcentred = dx_hat * inv
    dstd = -dinv / std ** 2
    dvar = dstd * 0.5 / std
    dcentred += 2.0 * centred / m * dvar
    dmu = -dcentred.sum(axis=axes, keepdims=True)
    dx = dcentred + dmu / m
    return dx, dgamma, dbeta


@register
class BatchNorm2dBackward(_LayerCheck):
    name = "layers.batchnorm2d_backward"
    function = "batchnorm2d_backward"
    reference_name = "batch normalisation's computational graph walked node by node"
    rtol, atol = 1e-6, 1e-9

    def examples(self):
        return [Case("the docstring's four values, dout 1", {
            "x": np.array([1.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1), "gamma": np.ones(1),
            "dout": np.ones((4, 1, 1, 1)), "running_mean": np.zeros(1),
            "running_var": np.ones(1), "mode": "train", "eps": 1e-5})]

    def random_cases(self, rng, count):
        return bn_cases(rng, count, backward=True)

    @grading_side
    def cases(self, seed=0, count=None):
        """Each case carries the forward's cache (a student's release must not compute it:
        that is the forward exercise)."""
        found = []
        for case in super().cases(seed, count):
            i = case.inputs
            cache = bn_cache(i["x"], i["running_mean"], i["running_var"], i["mode"], i["eps"],
                             i["gamma"])
            found.append(Case(case.label, {**i, "x_hat": cache["x_hat"],
                                           "inv_std": cache["inv_std"]}))
        return found

    def call(self, x, gamma, dout, running_mean, running_var, mode, eps, x_hat, inv_std):
        cache = {"mode": mode, "x_hat": np.asarray(x_hat), "inv_std": np.asarray(inv_std),
                 "gamma": np.asarray(gamma, dtype=float)}
        dx, dgamma, dbeta = self.target()(dout, cache)
        return {"dx": np.asarray(dx), "dgamma": np.asarray(dgamma), "dbeta": np.asarray(dbeta)}

    def reference(self, x_hat=None, inv_std=None, **inputs):
        dx, dgamma, dbeta = bn_backward_graph(**inputs)
        return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}

    def mistakes(self, x, gamma, dout, running_mean, running_var, mode, eps, x_hat=None,
                 inv_std=None):
        cache = bn_cache(x, running_mean, running_var, mode, eps, gamma)
        x_hat, dout = cache["x_hat"], np.asarray(dout, dtype=float)
        scale = (cache["gamma"] * cache["inv_std"]).reshape(1, -1, 1, 1)
        m = x_hat.shape[0] * x_hat.shape[2] * x_hat.shape[3]
        axes = (0, 2, 3)
        sum_dout = dout.sum(axis=axes, keepdims=True)
        sum_dx = (dout * x_hat).sum(axis=axes, keepdims=True)
        found = []
        if mode == "train":
            found += [
                ("in train mode mu and var depend on x: dx = gamma * inv_std / M * (M * dout - "
                 "sum(dout) - x_hat * sum(dout * x_hat)); the mean terms are missing",
                 {"dx": scale * dout}),
                ("the term of the variance, - x_hat * sum(dout * x_hat), is missing from dx",
                 {"dx": scale / m * (m * dout - sum_dout)}),
                ("the term of the mean, - sum(dout), is missing from dx",
                 {"dx": scale / m * (m * dout - x_hat * sum_dx)})]
        else:
            found.append(("in eval mode the running statistics are constants: "
                          "dx = gamma * inv_std * dout", {
                              "dx": scale / m * (m * dout - sum_dout - x_hat * sum_dx)}))
        found += [("dgamma and dbeta have shape (C,): sum over the batch and the positions, "
                   "axes (0, 2, 3)", {"dgamma": (dout * x_hat).sum(axis=0),
                                      "dbeta": dout.sum(axis=0)}),
                  ("dgamma is sum(dout * x_hat) and dbeta is sum(dout), not the other way round",
                   {"dgamma": dout.sum(axis=axes), "dbeta": (dout * x_hat).sum(axis=axes)})]
        return found


# ------------------------------------------------------------------ dropout
PS = (0.5, 0.2, 0.7, 0.35)


def dropout_mask(shape, p, seed):
    return np.random.default_rng(seed).random(tuple(shape)) >= p


@register
class DropoutForward(_LayerCheck):
    name = "layers.dropout_forward"
    function = "dropout_forward"
    reference_name = "x * mask / (1 - p), mask = default_rng(seed).random(x.shape) >= p"

    def examples(self):
        return [Case("the docstring's six ones, p = 0.5, seed 0", {
                    "x": np.ones(6), "p": 0.5, "mode": "train", "seed": 0}),
                Case("eval mode", {"x": np.array([1.0, -2.0, 3.0]), "p": 0.5, "mode": "eval",
                                   "seed": 0})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = random_shape(rng, 1 + i % 4, 2, 5)
            mode = "eval" if i % 4 == 3 else "train"
            cases.append(Case(f"random case {i}: {mode} mode", {
                "x": rng.normal(size=shape), "p": PS[i % len(PS)], "mode": mode,
                "seed": int(rng.integers(0, 10_000))}))
        return cases

    def call(self, x, p, mode, seed):
        out, _ = self.target()(x, p=p, mode=mode, seed=seed)
        return {"out": np.asarray(out)}

    def reference(self, x, p, mode, seed):
        x = np.asarray(x, dtype=float)
        if mode == "eval":
            return {"out": x.copy()}
        keep = dropout_mask(x.shape, p, seed)
        return {"out": np.where(keep, x / (1.0 - p), 0.0)}

    def mistakes(self, x, p, mode, seed):
        x = np.asarray(x, dtype=float)
        keep = dropout_mask(x.shape, p, seed)
        if mode == "eval":
            return [("in eval mode dropout does nothing: return x unchanged",
                     {"out": np.where(keep, x / (1.0 - p), 0.0)}),
                    ("inverted dropout rescales in train mode only: in eval mode return x "
                     "unchanged", {"out": x * (1.0 - p)})]
        return [("inverted dropout divides the kept entries by 1 - p, so that the expected "
                 "output equals x", {"out": np.where(keep, x, 0.0)}),
                ("divide the kept entries by 1 - p, do not multiply them",
                 {"out": np.where(keep, x * (1.0 - p), 0.0)}),
                ("p is the probability of dropping an entry: the mask of kept entries is "
                 "rng.random(x.shape) >= p", {"out": np.where(~keep, x / (1.0 - p), 0.0)}),
                ("p is the probability of dropping an entry: keep where rng.random(x.shape) "
                 ">= p and divide by 1 - p", {"out": np.where(~keep, x / p, 0.0)})]


@register
class DropoutBackward(_LayerCheck):
    name = "layers.dropout_backward"
    function = "dropout_backward"
    reference_name = "dout * mask / (1 - p) in train mode, dout in eval mode"

    def examples(self):
        return [Case("the docstring's mask, p = 0.5", {
            "dout": np.arange(6.0), "mask": dropout_mask((6,), 0.5, 0), "p": 0.5,
            "mode": "train"})]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            shape = random_shape(rng, 1 + i % 4, 2, 5)
            p = PS[i % len(PS)]
            mode = "eval" if i % 4 == 3 else "train"
            cases.append(Case(f"random case {i}: {mode} mode", {
                "dout": rng.normal(size=shape), "mask": rng.random(shape) >= p, "p": p,
                "mode": mode}))
        return cases

    def call(self, dout, mask, p, mode):
        cache = {"mode": mode, "p": p,
                 "mask": np.asarray(mask, dtype=bool) if mode == "train" else None}
        return {"dx": np.asarray(self.target()(dout, cache))}

    def reference(self, dout, mask, p, mode):
        dout = np.asarray(dout, dtype=float)
        if mode == "eval":
            return {"dx": dout.copy()}
        return {"dx": np.where(np.asarray(mask, dtype=bool), dout / (1.0 - p), 0.0)}

    def mistakes(self, dout, mask, p, mode):
        dout = np.asarray(dout, dtype=float)
        keep = np.asarray(mask, dtype=bool)
        if mode == "eval":
            return [("in eval mode dropout was the identity: dx = dout",
                     {"dx": dout / (1.0 - p)})]
        return [("the forward pass divided the kept entries by 1 - p: so does the backward "
                 "pass, dx = dout * mask / (1 - p)", {"dx": np.where(keep, dout, 0.0)}),
                ("a dropped entry did not reach the output: its gradient is 0 (multiply by "
                 "the mask)", {"dx": dout / (1.0 - p)})]
