"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

One step of :class:`SGD` updates every parameter array *in place* (the model
keeps referring to the same arrays), in PyTorch's formulation:

    g = grad + weight_decay * w        (weight decay: the gradient of (λ/2)·‖w‖²)
    v = momentum * v + g               (velocity, zero before the first step)
    w = w - lr * v                     (or w - lr * (g + momentum * v) with Nesterov)

Weight decay (L2 regularization) is applied to the weights only: arrays with a
single dimension, the biases, are not decayed (shrinking a bias towards 0 does
not make the function any smoother, it only shifts it).

The exercise is the body of :func:`sgd_update` (one parameter's update, which
:meth:`SGD.step` applies to every parameter) between ``# BEGIN SOLUTION`` and
``# END SOLUTION``.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import check_real

__all__ = ["SGD", "sgd_update"]


def _check_number(value, name: str, minimum: float, *, strict: bool = False,
                  below: float | None = None) -> float:
    """Return ``value`` as a float, checking it is finite and in range."""
    value = check_real(value, name)
    if value < minimum or (strict and value == minimum) or (below is not None and value >= below):
        low = f"> {minimum:g}" if strict else f">= {minimum:g}"
        high = f" and < {below:g}" if below is not None else ""
        raise ValueError(f"{name} must be {low}{high}, got {value!r}")
    return value


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and decoupled-from-bias L2 decay.

    Parameters
    ----------
    params : dict of str to ndarray
        The model's parameters (e.g. ``model.params``), floating-point arrays that
        :meth:`step` updates in place.
    lr : float
        Learning rate, > 0. An attribute that a schedule may change between steps.
    momentum : float, optional
        Momentum coefficient ``μ`` in ``[0, 1)``; 0 gives plain SGD.
    weight_decay : float, optional
        L2 penalty ``λ >= 0`` added to the gradient of every weight as ``λ * w``.
        Not applied to 1-D arrays (biases).
    nesterov : bool, optional
        Use Nesterov momentum (needs ``momentum > 0``).

    Attributes
    ----------
    velocity : dict of str to ndarray
        One velocity buffer per parameter, zeros at the start.
    steps : int
        Number of steps taken.

    Raises
    ------
    ValueError
        If ``params`` is not a non-empty dict of writable floating-point arrays,
        or a hyper-parameter is out of range.

    Examples
    --------
    >>> w = np.array([1.0, 2.0])
    >>> opt = SGD({"w": w}, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.array([1.0, 1.0])})
    >>> w
    array([0.9, 1.9])
    >>> opt.step({"w": np.array([1.0, 1.0])})  # velocity 0.9 * 1 + 1 = 1.9
    >>> w
    array([0.71, 1.71])
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, nesterov=False):
        if not isinstance(params, dict) or not params:
            raise ValueError(f"params must be a non-empty dict of name -> numpy array, got "
                             f"{type(params).__name__}{'' if params else ' (empty)'}")
        for name, value in params.items():
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                kind = (f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray)
                        else type(value).__name__)
                raise ValueError(f"params[{name!r}] must be a floating-point numpy array "
                                 f"(updated in place), got {kind}")
            if not value.flags.writeable:
                raise ValueError(f"params[{name!r}] must be writable (updated in place), got "
                                 "a read-only array")
        self.params = params
        self.lr = _check_number(lr, "lr", 0.0, strict=True)
        self.momentum = _check_number(momentum, "momentum", 0.0, below=1.0)
        self.weight_decay = _check_number(weight_decay, "weight_decay", 0.0)
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        self.nesterov = nesterov
        self.velocity = {name: np.zeros_like(value) for name, value in params.items()}
        self.steps = 0

    def __repr__(self):
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, "
                f"weight_decay={self.weight_decay:g}, nesterov={self.nesterov})")

    def decays(self, name: str) -> bool:
        """Whether weight decay applies to parameter ``name`` (not to 1-D arrays, the biases)."""
        return self.weight_decay > 0 and self.params[name].ndim > 1

    def step(self, grads):
        """Update every parameter in place with its gradient.

        Parameters
        ----------
        grads : dict of str to array_like
            One gradient per parameter, same keys and shapes as ``params``.

        Raises
        ------
        ValueError
            If the keys differ from the parameters' or a gradient's shape does not
            match its parameter's.
        """
        if not isinstance(grads, dict) or set(grads) != set(self.params):
            keys = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
            raise ValueError(f"grads must be a dict with the parameters' keys "
                             f"{sorted(self.params)}, got {keys}")
        for name, grad in grads.items():
            if np.shape(grad) != self.params[name].shape:
                raise ValueError(f"grads[{name!r}] must have the shape of params[{name!r}] "
                                 f"{self.params[name].shape}, got {np.shape(grad)}")
        for name, param in self.params.items():
            decay = self.weight_decay if self.decays(name) else 0.0
            sgd_update(param, np.asarray(grads[name], dtype=param.dtype), self.velocity[name],
                       self.lr, self.momentum, decay, self.nesterov)
        self.steps += 1


def sgd_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0, nesterov=False):
    """One SGD step for one parameter array: update ``param`` and ``velocity`` in place.

    ``g = grad + weight_decay * param``; ``velocity = momentum * velocity + g``;
    ``param -= lr * velocity`` (with Nesterov: ``param -= lr * (g + momentum * velocity)``).
    With ``momentum == 0`` this is plain gradient descent, ``param -= lr * g``.

    Parameters
    ----------
    param : ndarray of floats
        The parameter, modified in place.
    grad : ndarray
        Its gradient, same shape.
    velocity : ndarray
        Its velocity buffer (zeros before the first step), same shape; modified in place.
    lr, momentum, weight_decay : float
        Learning rate, momentum coefficient and L2 decay (pass 0 for a bias).
    nesterov : bool
        Nesterov momentum.

    Examples
    --------
    >>> w, v = np.array([1.0, 2.0]), np.zeros(2)
    >>> sgd_update(w, np.array([1.0, -1.0]), v, lr=0.5, momentum=0.9)
    >>> w, v
    (array([0.5, 2.5]), array([ 1., -1.]))
    >>> sgd_update(w, np.array([1.0, -1.0]), v, lr=0.5, momentum=0.9)
    >>> w, v
    (array([-0.45,  3.45]), array([ 1.9, -1.9]))

    Raises
    ------
    ValueError
        If ``param`` or ``velocity`` is not a writable float array, the shapes
        differ, or a hyper-parameter is out of range.
    """
    for name, array in (("param", param), ("velocity", velocity)):
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            raise ValueError(f"{name} must be a floating-point numpy array (updated in "
                             f"place), got {type(array).__name__}")
        if not array.flags.writeable:
            raise ValueError(f"{name} must be writable (updated in place)")
    grad = np.asarray(grad)
    if grad.shape != param.shape or velocity.shape != param.shape:
        raise ValueError(f"grad and velocity must have param's shape {param.shape}, got "
                         f"{grad.shape} and {velocity.shape}")
    lr = _check_number(lr, "lr", 0.0, strict=True)
    momentum = _check_number(momentum, "momentum", 0.0, below=1.0)
    weight_decay = _check_number(weight_decay, "weight_decay", 0.0)
    # BEGIN SOLUTION
    g = grad + weight_decay * param if weight_decay else grad
    if momentum == 0:
        param -= lr * g
        return
    velocity *= momentum
    velocity += g
    if nesterov:
        param -= lr * (g + momentum * velocity)
    else:
        param -= lr * velocity
    # END SOLUTION
