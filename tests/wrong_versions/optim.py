"""Plausible mistakes in cnnlab.optim (the SGD update) and in the optimizer built on it."""

import numpy as np


def sgd_update_with(momentum_used=True, velocity_in_place=True, param_in_place=True,
                    decay_used=True, decay_outside=False, nesterov_used=True,
                    lr_in_velocity=False):
    def make(original):
        def sgd_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0,
                       nesterov=False):
            grad = np.asarray(grad)
            g = grad + weight_decay * param if decay_used and not decay_outside else grad
            mu = momentum if momentum_used else 0.0
            if mu == 0:
                step = lr * g
            else:
                new_velocity = mu * velocity + (lr * g if lr_in_velocity else g)
                if velocity_in_place:
                    velocity[...] = new_velocity
                if nesterov and nesterov_used:
                    step = lr * (g + mu * new_velocity)
                else:
                    step = new_velocity if lr_in_velocity else lr * new_velocity
            if decay_outside:
                step = step + lr * weight_decay * param
            if param_in_place:
                param -= step
            else:
                param = param - step  # noqa: F841  (the mistake: a new array nobody sees)
        return sgd_update
    return make


def sgd_decaying_biases(original):
    class SGD(original):
        def decays(self, name):
            return self.weight_decay > 0
    return SGD


def sgd_without_momentum(original):
    class SGD(original):
        def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, nesterov=False):
            super().__init__(params, lr, momentum=0.0, weight_decay=weight_decay)
    return SGD


WRONG = {
    "optim.sgd_update": [
        ("no momentum", sgd_update_with(momentum_used=False)),
        ("velocity rebound, not updated in place", sgd_update_with(velocity_in_place=False)),
        ("param rebound, not updated in place", sgd_update_with(param_in_place=False)),
        ("weight decay ignored", sgd_update_with(decay_used=False)),
        ("weight decay outside the momentum", sgd_update_with(decay_outside=True)),
        ("nesterov ignored", sgd_update_with(nesterov_used=False)),
        ("lr folded into the velocity", sgd_update_with(lr_in_velocity=True)),
    ],
    "optim.SGD": [
        ("weight decay applied to the biases", sgd_decaying_biases),
        ("momentum ignored", sgd_without_momentum),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("optim.sgd_update", "no momentum"): r"param moved as in plain gradient descent",
    ("optim.sgd_update", "velocity rebound, not updated in place"):
        r"update velocity in place",
    ("optim.sgd_update", "param rebound, not updated in place"): r"param did not change",
    ("optim.sgd_update", "weight decay ignored"): r"the weight decay is ignored",
    ("optim.sgd_update", "weight decay outside the momentum"):
        r"the weight decay belongs in g, before the momentum",
    ("optim.sgd_update", "nesterov ignored"): r"Nesterov momentum is ignored",
    ("optim.sgd_update", "lr folded into the velocity"): r"keep lr out of the velocity",
    ("optim.SGD", "weight decay applied to the biases"): r"biases \(1-D arrays\) must not be "
                                                          r"decayed",
    ("optim.SGD", "momentum ignored"): r"the momentum is ignored",
}
