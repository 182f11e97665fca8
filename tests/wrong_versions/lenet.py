"""Plausible mistakes in cnnlab.lenet exercises (the forward and backward pass of LeNet5)."""

import numpy as np

from cnnlab.layers import (
    conv2d_backward,
    conv2d_forward,
    flatten_backward,
    flatten_forward,
    linear_backward,
    linear_forward,
)
from cnnlab.lenet import ACTIVATIONS, POOLINGS
from tests.wrong_versions.layers import HINTS_DENSE, WRONG_DENSE


def forward_with(act_on_scores=False, conv_act=True, dense_act=True, act_after_avg_pool=False,
                 channels_last=False, prepare=True):
    """A LeNet5 forward pass with one layer wrong."""
    def make(original):
        def lenet_forward(model, x):
            p = model.params
            act, act_backward = ACTIVATIONS[model.activation]
            pool, pool_backward = POOLINGS[model.pooling]
            out = model.prepare(x) if prepare else np.asarray(x, dtype=float)[:, None]
            tape = []
            for conv, pool_name in (("C1", "S2"), ("C3", "S4")):
                out, cache = conv2d_forward(out, p[f"{conv}.w"], p[f"{conv}.b"])
                tape.append((conv, conv2d_backward, cache))
                pool_first = model.pooling == "max" or act_after_avg_pool
                if pool_first:
                    out, cache = pool(out, 2)
                    tape.append((pool_name, pool_backward, cache))
                if conv_act:
                    out, cache = act(out)
                    tape.append((f"{conv}.act", act_backward, cache))
                if not pool_first:
                    out, cache = pool(out, 2)
                    tape.append((pool_name, pool_backward, cache))
            if channels_last:
                out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
            out, cache = flatten_forward(out)
            tape.append(("flatten", flatten_backward, cache))
            for name in model.dense_names:
                out, cache = linear_forward(out, p[f"{name}.w"], p[f"{name}.b"])
                tape.append((name, linear_backward, cache))
                if (name != "OUT" and dense_act) or (name == "OUT" and act_on_scores):
                    out, cache = act(out)
                    tape.append((f"{name}.act", act_backward, cache))
            return out, tape
        return lenet_forward
    return make


def backward_with(skip=(), forward_order=False):
    """A LeNet5 backward pass that skips some activations, or replays the tape forwards."""
    def make(original):
        def lenet_backward(model, dscores, tape):
            grads, dout = {}, dscores
            for name, backward, cache in (tape if forward_order else reversed(tape)):
                if name.endswith(".act") and name.split(".")[0] in skip:
                    continue
                if f"{name}.w" in model.params:
                    dout, grads[f"{name}.w"], grads[f"{name}.b"] = backward(dout, cache)
                else:
                    dout = backward(dout, cache)
            return grads
        return lenet_backward
    return make


WRONG = {
    # The dense layers' wrong versions sit in layers.py, next to the convolution's; they
    # are registered here, with the lenet checks of problem set 3.
    **WRONG_DENSE,
    "lenet.lenet_forward": [
        ("activation on the scores", forward_with(act_on_scores=True)),
        ("no activation after the convolutions", forward_with(conv_act=False)),
        ("no activation after the hidden layers", forward_with(dense_act=False)),
        ("average pooling before the activation", forward_with(act_after_avg_pool=True)),
        ("flattened channels last", forward_with(channels_last=True)),
        ("input not prepared", forward_with(prepare=False)),
    ],
    "lenet.lenet_backward": [
        ("activations skipped", backward_with(skip=("C1", "C3", "F5", "F6", "F7"))),
        ("conv activations skipped", backward_with(skip=("C1", "C3"))),
        ("hidden activations skipped", backward_with(skip=("F5", "F6", "F7"))),
        ("tape replayed in forward order", backward_with(forward_order=True)),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    **HINTS_DENSE,
    ("lenet.lenet_forward", "activation on the scores"): r"must not go through the activation",
    ("lenet.lenet_forward", "no activation after the convolutions"):
        r"activation after C1 and C3 is missing",
    ("lenet.lenet_forward", "no activation after the hidden layers"):
        r"activation after the hidden fully connected layers is missing",
    ("lenet.lenet_forward", "average pooling before the activation"):
        r"apply the activation before the pooling",
    ("lenet.lenet_forward", "flattened channels last"): r"flatten each image in C order",
    ("lenet.lenet_forward", "input not prepared"): r"lenet_forward raised",
    ("lenet.lenet_backward", "activations skipped"): r"the activations' backward is missing",
    ("lenet.lenet_backward", "conv activations skipped"):
        r"activations after C1 and C3 .* is missing",
    ("lenet.lenet_backward", "hidden activations skipped"):
        r"activations after the hidden layers .* is missing",
    ("lenet.lenet_backward", "tape replayed in forward order"): r"lenet_backward raised",
}
