"""LeNet5: LeCun et al.'s 1998 convolutional network, from the layers of :mod:`cnnlab`.

The classic architecture, on 28x28 MNIST digits zero-padded to 32x32::

    input 1@32x32
    C1  convolution 6@5x5          -> 6@28x28     156 parameters
    S2  2x2 pooling                -> 6@14x14
    C3  convolution 16@5x5         -> 16@10x10    2,416
    S4  2x2 pooling                -> 16@5x5
    F5  fully connected 400 -> 120                48,120
    F6  fully connected 120 -> 84                 10,164
    OUT fully connected 84 -> 10 (class scores)   850         (61,706 in all)

with an activation (ReLU or tanh) after every convolution and hidden layer, and
a softmax cross-entropy loss on the scores. (The 1998 network's partial C3
connection table and RBF output layer are replaced by full connections and a
softmax, as in today's LeNet5s.)

The lecture's variant, ``LeNet5.lecture_variant()``, has 20 and 50 filters, one
hidden layer of 500 units and no padding (28x28 input): 24x24, 12x12, 8x8,
4x4 maps and 50 * 4 * 4 = 800 inputs to the hidden layer.

The exercises are :func:`lenet_forward` and :func:`lenet_backward` (which the
methods ``LeNet5.forward_pass`` / ``backward_pass`` call), the bodies between
``# BEGIN SOLUTION`` and ``# END SOLUTION``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from cnnlab._validate import as_numeric_array, check_int
from cnnlab.layers import (
    conv2d_backward,
    conv2d_forward,
    flatten_backward,
    flatten_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    softmax_cross_entropy,
    tanh_backward,
    tanh_forward,
)
from cnnlab.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = ["LeNet5", "lenet_backward", "lenet_forward"]

#: Mean and standard deviation of MNIST's pixels (scaled to [0, 1]), to standardize inputs.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081
IMAGE_SIZE = 28
KERNEL = 5
POOL = 2
FORMAT_VERSION = 1
#: Standard deviation of the output layer's initial weights: small, so that every class
#: starts with probability close to 1/10 (initial loss close to ln 10 = 2.30).
OUTPUT_INIT_STD = 0.01

ACTIVATIONS = {"relu": (relu_forward, relu_backward), "tanh": (tanh_forward, tanh_backward)}
POOLINGS = {"max": (max_pool2d_forward, max_pool2d_backward),
            "avg": (avg_pool2d_forward, avg_pool2d_backward)}


def conv2d_backward_no_dx(dout, cache):
    """:func:`conv2d_backward` without the input's gradient: ``(None, dw, db)``."""
    return conv2d_backward(dout, cache, need_dx=False)


def _int_tuple(value, name: str, length: int | None) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {value!r}")
    return tuple(check_int(item, f"{name} entries", minimum=1) for item in value)


class LeNet5:
    """LeNet5 for 28x28 digits: two convolution-pooling stages and fully connected layers.

    Parameters
    ----------
    activation : {'relu', 'tanh'}, optional
        Nonlinearity after every convolution and hidden layer.
    pooling : {'max', 'avg'}, optional
        2x2 pooling after each convolution (stride 2).
    channels : tuple of 2 ints, optional
        Filters of C1 and C3.
    hidden : tuple of ints, optional
        Units of the hidden fully connected layers (F5, F6, ...).
    num_classes : int, optional
        Number of output scores.
    input_size : int, optional
        Side of the square input the network is built for: 28 digits are
        zero-padded to it (32 in 1998's network, 28 for no padding).
    seed : int, optional
        Seed of the initial weights (``numpy.random.default_rng(seed)``).
    dtype : {numpy.float32, numpy.float64}, optional
        Floating-point type of the parameters and computations: float32 trains
        about twice as fast; float64 is for gradient checks.

    Attributes
    ----------
    params : dict of str to ndarray
        ``'C1.w'`` ``(6, 1, 5, 5)``, ``'C1.b'`` ``(6,)``, ``'C3.w'``, ``'C3.b'``,
        ``'F5.w'`` ``(400, 120)``, ``'F5.b'``, ..., ``'OUT.w'``, ``'OUT.b'``.
    config : dict
        The constructor's arguments (what :meth:`save` stores with the weights).

    Notes
    -----
    Initialization: biases 0; weights of layers followed by ReLU are drawn from
    He's normal distribution (std ``sqrt(2 / fan_in)``), the others (tanh layers
    and the output layer) from Glorot/Xavier's uniform distribution
    ``U(-sqrt(6 / (fan_in + fan_out)), +sqrt(...))``, the lecture's rule for tanh.

    Input: uint8 images are divided by 255, float images are taken to be in
    ``[0, 1]`` already; 28x28 images are zero-padded to ``input_size``, then every
    pixel is standardized with MNIST's mean and standard deviation.

    With max pooling, the activation is applied *after* the pooling: since ReLU
    and tanh are non-decreasing, ``max(f(a), f(b)) = f(max(a, b))``, so the values
    (and gradients) are those of activation-then-pooling, for a quarter of the
    work. Average pooling does not commute with them and follows the activation.

    Examples
    --------
    >>> model = LeNet5()
    >>> model.num_params
    61706
    >>> x = np.zeros((2, 28, 28), dtype=np.uint8)
    >>> model.forward(x).shape
    (2, 10)
    >>> LeNet5.lecture_variant().num_params
    431080
    """

    def __init__(self, activation="relu", pooling="max", channels=(6, 16), hidden=(120, 84),
                 num_classes=10, input_size=32, seed=0, dtype=np.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        channels = _int_tuple(channels, "channels", 2)
        hidden = _int_tuple(hidden, "hidden", None)
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        input_size = check_int(input_size, "input_size", minimum=1)
        if input_size < IMAGE_SIZE or (input_size - IMAGE_SIZE) % 2:
            raise ValueError(f"input_size must be 28 or 28 plus an even padding (e.g. 32), "
                             f"got {input_size}")
        seed = check_int(seed, "seed", minimum=0)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
        self.config = {"activation": activation, "pooling": pooling, "channels": list(channels),
                       "hidden": list(hidden), "num_classes": num_classes,
                       "input_size": input_size, "seed": seed,
                       "dtype": np.dtype(dtype).name}
        self.activation, self.pooling = activation, pooling
        self.channels, self.hidden = channels, hidden
        self.num_classes, self.input_size = num_classes, input_size
        self.dtype = np.dtype(dtype)
        # Map sizes through C1 (valid 5x5), S2 (2x2), C3, S4.
        side = input_size
        self.map_sizes = []
        for _ in range(2):
            conv = side - KERNEL + 1
            pooled = conv // POOL
            if pooled < 1:
                raise ValueError(f"input_size={input_size} is too small for two 5x5 "
                                 "convolutions each followed by 2x2 pooling")
            self.map_sizes.append((conv, pooled))
            side = pooled
        self.flat_size = channels[1] * side * side
        self.params = self._init_params(np.random.default_rng(seed))

    @classmethod
    def lecture_variant(cls, **kwargs):
        """The lecture's LeNet5: 20 and 50 filters, one hidden layer of 500, 28x28 input.

        Keyword arguments override these (e.g. ``seed``, ``activation``).
        """
        config = {"channels": (20, 50), "hidden": (500,), "input_size": IMAGE_SIZE}
        config.update(kwargs)
        return cls(**config)

    # ------------------------------------------------------------------ structure

    @property
    def dense_names(self) -> list[str]:
        """Names of the fully connected layers: ``['F5', 'F6', 'OUT']`` for the classic net."""
        return [f"F{5 + i}" for i in range(len(self.hidden))] + ["OUT"]

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        c1, c3 = self.channels
        shapes = {"C1.w": (c1, 1, KERNEL, KERNEL), "C1.b": (c1,),
                  "C3.w": (c3, c1, KERNEL, KERNEL), "C3.b": (c3,)}
        sizes = [self.flat_size, *self.hidden, self.num_classes]
        for name, fan_in, fan_out in zip(self.dense_names, sizes[:-1], sizes[1:]):
            shapes[f"{name}.w"] = (fan_in, fan_out)
            shapes[f"{name}.b"] = (fan_out,)
        return shapes

    def _init_params(self, rng) -> dict[str, np.ndarray]:
        params = {}
        for name, shape in self._shapes().items():
            if name.endswith(".b"):
                params[name] = np.zeros(shape, dtype=self.dtype)
                continue
            if len(shape) == 4:  # (F, C, KH, KW)
                fan_in, fan_out = shape[1] * shape[2] * shape[3], shape[0] * shape[2] * shape[3]
            else:
                fan_in, fan_out = shape
            if name.startswith("OUT"):
                values = rng.standard_normal(shape) * OUTPUT_INIT_STD
            elif self.activation == "relu":
                values = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                values = rng.uniform(-bound, bound, size=shape)
            params[name] = values.astype(self.dtype)
        return params

    @property
    def num_params(self) -> int:
        """Total number of trainable parameters."""
        return int(sum(value.size for value in self.params.values()))

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.config.items()
                         if key != "dtype")
        return f"LeNet5({args}, dtype=np.{self.dtype.name})"

    def summary(self) -> str:
        """A table of the layers: output shape and number of parameters of each.

        Examples
        --------
        >>> print(LeNet5().summary())  # doctest: +NORMALIZE_WHITESPACE
        LeNet5(activation='relu', pooling='max', channels=[6, 16], hidden=[120, 84],
               num_classes=10, input_size=32, seed=0, dtype=np.float32)
        layer  kind                    output shape   parameters
        input  28x28 padded to 32x32   1 x 32 x 32             0
        C1     conv 6@5x5 + relu       6 x 28 x 28           156
        S2     max pool 2x2            6 x 14 x 14             0
        C3     conv 16@5x5 + relu      16 x 10 x 10        2,416
        S4     max pool 2x2            16 x 5 x 5              0
        F5     dense 400->120 + relu   120                48,120
        F6     dense 120->84 + relu    84                 10,164
        OUT    dense 84->10            10                    850
        total                                             61,706
        """
        p = self.params
        count = {name: p[f"{name}.w"].size + p[f"{name}.b"].size
                 for name in ["C1", "C3", *self.dense_names]}
        (conv1, pool1), (conv2, pool2) = self.map_sizes
        c1, c3 = self.channels
        act, pool = self.activation, self.pooling
        pad = ("no padding" if self.input_size == IMAGE_SIZE
               else f"28x28 padded to {self.input_size}x{self.input_size}")
        rows = [
            ("input", pad, f"1 x {self.input_size} x {self.input_size}", 0),
            ("C1", f"conv {c1}@5x5 + {act}", f"{c1} x {conv1} x {conv1}", count["C1"]),
            ("S2", f"{pool} pool 2x2", f"{c1} x {pool1} x {pool1}", 0),
            ("C3", f"conv {c3}@5x5 + {act}", f"{c3} x {conv2} x {conv2}", count["C3"]),
            ("S4", f"{pool} pool 2x2", f"{c3} x {pool2} x {pool2}", 0),
        ]
        sizes = [self.flat_size, *self.hidden, self.num_classes]
        for i, name in enumerate(self.dense_names):
            kind = f"dense {sizes[i]}->{sizes[i + 1]}" + ("" if name == "OUT" else f" + {act}")
            rows.append((name, kind, f"{sizes[i + 1]}", count[name]))
        rows.append(("total", "", "", self.num_params))
        widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
        widths = [max(w, len(h)) for w, h in zip(widths, ("layer", "kind", "output shape"))]
        lines = [repr(self),
                 f"{'layer':<{widths[0]}}  {'kind':<{widths[1]}}  "
                 f"{'output shape':<{widths[2]}}  {'parameters':>10}"]
        for name, kind, shape, n in rows:
            lines.append(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {shape:<{widths[2]}}  "
                         f"{n:>10,}")
        return "\n".join(lines)

    # -------------------------------------------------------------------- inputs

    def prepare(self, x) -> np.ndarray:
        """Turn images into the network's input: ``(N, 1, input_size, input_size)``, standardized.

        Parameters
        ----------
        x : array_like, shape (N, 28, 28), (N, 1, 28, 28) or already (N, 1, S, S)
            with ``S = input_size``. uint8 pixels are scaled by 1/255; float pixels
            are taken to be in [0, 1].

        Returns
        -------
        ndarray of the model's dtype

        Raises
        ------
        ValueError
            If ``x`` is not a non-empty real array of one of those shapes, or holds
            non-uint8 values outside [0, 1].
        """
        x = as_numeric_array(x, "x", ndim=(3, 4))
        if x.dtype.kind == "c":
            raise ValueError(f"x must hold real pixel values, got dtype {x.dtype}")
        if x.ndim == 3:
            x = x[:, None]
        side = self.input_size
        if x.shape[1] != 1 or x.shape[2] != x.shape[3] or x.shape[2] not in (IMAGE_SIZE, side):
            raise ValueError(f"x must be a batch of 28x28 images, shape (N, 28, 28) or "
                             f"(N, 1, 28, 28) (or (N, 1, {side}, {side})), got shape {x.shape}")
        if x.dtype != np.uint8:
            low, high = float(x.min()), float(x.max())
            if low < 0 or high > 1:
                raise ValueError(f"x: pixels that are not uint8 must lie in [0, 1] (divide "
                                 f"0..255 values by 255), got values from {low:g} to {high:g}")
        scale = 1 / 255 if x.dtype == np.uint8 else 1.0
        pad = (side - x.shape[2]) // 2
        out = np.full((x.shape[0], 1, side, side), -PIXEL_MEAN / PIXEL_STD, dtype=self.dtype)
        inner = out[:, :, pad:side - pad, pad:side - pad]
        np.multiply(x, scale / PIXEL_STD, out=inner, casting="unsafe")
        inner -= PIXEL_MEAN / PIXEL_STD
        return out

    # ------------------------------------------------------------ forward/backward

    def forward_pass(self, x):
        """Forward pass recording the tape: :func:`lenet_forward` of this model."""
        return lenet_forward(self, x)

    def backward_pass(self, dscores, tape):
        """Gradients of every parameter: :func:`lenet_backward` of this model."""
        return lenet_backward(self, dscores, tape)

    def forward(self, x) -> np.ndarray:
        """Class scores (logits) of a batch of images, shape ``(N, num_classes)``."""
        return self.forward_pass(x)[0]

    def loss(self, x, y):
        """Mean softmax cross-entropy of a batch and the gradient of every parameter.

        Parameters
        ----------
        x : array_like
            Images, as for :meth:`prepare`.
        y : array_like of int, shape (N,)
            Labels in ``0 .. num_classes - 1``.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Keyed like :attr:`params`, same shapes and dtype.

        Raises
        ------
        ValueError
            If ``x`` is not a batch of images or ``y`` does not hold one valid
            label per image.
        """
        loss, grads, _ = self.loss_and_scores(x, y)
        return loss, grads

    def loss_and_scores(self, x, y):
        """:meth:`loss`, and the scores of the batch: ``(loss, grads, scores)``.

        What :func:`cnnlab.train.fit` calls, to count the training accuracy without a
        second forward pass.
        """
        y = self._labels_for(x, y)
        scores, tape = self.forward_pass(x)
        loss, dscores = softmax_cross_entropy(scores, y)
        return loss, self.backward_pass(dscores, tape), scores

    @staticmethod
    def _labels_for(x, y) -> np.ndarray:
        """``y`` as a 1-D array, checked to hold one label per image of ``x``."""
        y = as_numeric_array(y, "y", ndim=1)
        n = np.shape(x)[0] if np.ndim(x) else 0
        if y.shape[0] != n:
            raise ValueError(f"y must hold one label per image: x has {n} images, got "
                             f"{y.shape[0]} labels")
        return y

    def predict(self, x, batch_size=1000) -> np.ndarray:
        """Predicted class of every image, computed ``batch_size`` images at a time.

        Returns
        -------
        ndarray of int64, shape (N,)
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        x = as_numeric_array(x, "x", ndim=(3, 4))
        labels = [np.argmax(self.forward(x[i:i + batch_size]), axis=1)
                  for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(labels).astype(np.int64)

    # ---------------------------------------------------------------- save / load

    def save(self, path) -> Path:
        """Save the configuration and the parameters to an ``.npz`` file (no pickle).

        Returns
        -------
        Path
            The file written (``.npz`` is appended if ``path`` lacks it).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        config = dict(self.config, format_version=FORMAT_VERSION)
        arrays = {name: value for name, value in self.params.items()}
        arrays["__config__"] = np.array(json.dumps(config, sort_keys=True))
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path) -> LeNet5:
        """Rebuild a model saved by :meth:`save`: configuration and parameters.

        Raises
        ------
        ValueError
            If the file is not a LeNet5 saved by :meth:`save` or its arrays do not
            match the stored configuration.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path, got {path!r}")
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
        with archive:
            if "__config__" not in archive.files:
                raise ValueError(f"{path}: not a LeNet5 file (no __config__ entry); save "
                                 "models with LeNet5.save")
            config = json.loads(str(archive["__config__"]))
            version = config.pop("format_version", None)
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported LeNet5 file format {version!r}, "
                                 f"expected {FORMAT_VERSION}")
            config["dtype"] = np.dtype(config["dtype"]).type
            config["channels"] = tuple(config["channels"])
            config["hidden"] = tuple(config["hidden"])
            model = cls(**config)
            stored = set(archive.files) - {"__config__"}
            if stored != set(model.params):
                raise ValueError(f"{path}: parameters {sorted(stored)} do not match the "
                                 f"configuration's {sorted(model.params)}")
            for name, value in model.params.items():
                loaded = archive[name]
                if loaded.shape != value.shape:
                    raise ValueError(f"{path}: {name} has shape {loaded.shape}, the "
                                     f"configuration needs {value.shape}")
                value[...] = loaded
        return model


def lenet_forward(model, x):
    """Forward pass of a :class:`LeNet5` that records a tape for the backward pass.

    C1 (convolution) and S2 (2x2 pooling), C3 and S4, flatten, then the fully
    connected layers ``model.dense_names`` (``F5``, ``F6``, ``OUT``), with the
    model's activation after every layer but ``OUT``. With max pooling the
    activation comes after the pooling (same values, a quarter of the work;
    see :class:`LeNet5`), with average pooling before it.

    Every layer run adds one entry to the tape: its name, the backward function
    that undoes it, and the cache its forward returned. :func:`lenet_backward`
    replays the tape in reverse, as micrograd and PyTorch's autograd do.

    Parameters
    ----------
    model : LeNet5
        The network (its ``params``, ``activation``, ``pooling``, ``dense_names``).
    x : array_like
        Images, as for :meth:`LeNet5.prepare`.

    Returns
    -------
    scores : ndarray, shape (N, num_classes)
    tape : list
        ``(name, backward, cache)`` entries in forward order, names such as
        ``'C1'``, ``'S2'``, ``'C1.act'``, ``'flatten'``, ``'F5'``, ``'F5.act'``,
        ``'OUT'``; ``backward`` is the layer's backward pass, e.g.
        ``conv2d_backward`` for ``'C3'``.

    Examples
    --------
    >>> scores, tape = lenet_forward(LeNet5(), np.zeros((2, 28, 28)))
    >>> scores.shape, [name for name, _, _ in tape][:4]
    ((2, 10), ['C1', 'S2', 'C1.act', 'C3'])
    """
    if not isinstance(model, LeNet5):
        raise ValueError(f"model must be a LeNet5, got {type(model).__name__}")
    x = model.prepare(x)
    p = model.params
    act_forward, act_backward = ACTIVATIONS[model.activation]
    pool_forward, pool_backward = POOLINGS[model.pooling]
    # BEGIN SOLUTION
    tape = []
    out = x
    for conv, pool in (("C1", "S2"), ("C3", "S4")):
        out, cache = conv2d_forward(out, p[f"{conv}.w"], p[f"{conv}.b"])
        # C1's input is the images: their gradient is never used, so C1 skips it
        tape.append((conv, conv2d_backward if conv == "C3" else conv2d_backward_no_dx, cache))
        if model.pooling == "max":  # max commutes with the activation: pool first
            out, cache = pool_forward(out, POOL)
            tape.append((pool, pool_backward, cache))
            out, cache = act_forward(out)
            tape.append((f"{conv}.act", act_backward, cache))
        else:
            out, cache = act_forward(out)
            tape.append((f"{conv}.act", act_backward, cache))
            out, cache = pool_forward(out, POOL)
            tape.append((pool, pool_backward, cache))
    out, cache = flatten_forward(out)
    tape.append(("flatten", flatten_backward, cache))
    for name in model.dense_names:
        out, cache = linear_forward(out, p[f"{name}.w"], p[f"{name}.b"])
        tape.append((name, linear_backward, cache))
        if name != "OUT":
            out, cache = act_forward(out)
            tape.append((f"{name}.act", act_backward, cache))
    return out, tape
    # END SOLUTION


def lenet_backward(model, dscores, tape):
    """Back-propagate ``dscores`` through a :class:`LeNet5` by replaying its tape in reverse.

    Each entry's backward turns the gradient with respect to the layer's output
    into the gradient with respect to its input; a layer with parameters (its
    name has weights in ``model.params``) returns ``(dx, dw, db)`` instead.

    Parameters
    ----------
    model : LeNet5
        The network whose forward pass recorded ``tape``.
    dscores : ndarray, shape (N, num_classes)
        Gradient of the loss with respect to the scores.
    tape : list
        ``(name, backward, cache)`` entries, as returned by :func:`lenet_forward`.

    Returns
    -------
    grads : dict of str to ndarray
        One gradient per parameter, keyed like ``model.params``.

    Examples
    --------
    >>> model = LeNet5()
    >>> scores, tape = lenet_forward(model, np.zeros((2, 28, 28)))
    >>> grads = lenet_backward(model, np.ones_like(scores), tape)
    >>> sorted(grads) == sorted(model.params)
    True
    """
    if not isinstance(model, LeNet5):
        raise ValueError(f"model must be a LeNet5, got {type(model).__name__}")
    if not isinstance(tape, list) or not all(
            isinstance(entry, tuple) and len(entry) == 3 and callable(entry[1])
            for entry in tape):
        raise ValueError("tape must be the list of (name, backward, cache) entries returned "
                         "by lenet_forward")
    # BEGIN SOLUTION
    grads = {}
    dout = dscores
    for name, backward, cache in reversed(tape):
        if f"{name}.w" in model.params:
            dout, grads[f"{name}.w"], grads[f"{name}.b"] = backward(dout, cache)
        else:
            dout = backward(dout, cache)
    return grads
    # END SOLUTION
