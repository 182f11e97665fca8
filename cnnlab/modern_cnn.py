"""A small modern CNN assembled from the layers of notebook 5, next to :class:`LeNet5`.

Three conv3x3-BN-ReLU blocks, a 2x2 max pooling after the first two, and a head
with no fully connected layer: a 1×1 convolution that mixes the channels at every
pixel, dropout, a 1×1 convolution to one map per class and global average pooling to
the class scores::

    input 1@28x28
    B1   conv 3x3 (padding 1) 16 -> BN -> ReLU -> max pool 2x2    16@14x14
    B2   conv 3x3 (padding 1) 32 -> BN -> ReLU -> max pool 2x2    32@7x7
    B3   conv 3x3 (padding 1) 64 -> BN -> ReLU                    64@7x7
    mix  conv 1x1 64 -> 64 -> BN -> ReLU -> dropout 0.5           64@7x7
    head conv 1x1 64 -> 10 -> global average pooling              10 scores

It has the interface :func:`cnnlab.train.fit` expects (``params``, ``loss``,
``loss_and_scores``, ``predict``), so it trains with the same loop as LeNet5.
Batch normalisation and dropout behave differently in training and at test
time: :meth:`loss_and_scores` runs them in ``"train"`` mode (and updates the
running statistics), :meth:`predict` in ``"eval"`` mode.
"""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_numeric_array, check_int
from cnnlab.layers import (
    batchnorm2d_backward,
    batchnorm2d_forward,
    conv1x1_forward,
    conv2d_backward,
    conv2d_forward,
    dropout_backward,
    dropout_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    glorot_init,
    he_init,
    relu_backward,
    relu_forward,
    softmax_cross_entropy,
)
from cnnlab.lenet import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from cnnlab.pooling import max_pool2d_backward, max_pool2d_forward

__all__ = ["ModernCNN"]

MODES = ("train", "eval")


class ModernCNN:
    """conv3x3-BN-ReLU blocks with max pooling, and a head of 1×1 convolutions and GAP.

    Parameters
    ----------
    channels : tuple of ints, optional
        Filters of each conv3x3 block; every block but the last is followed by 2x2
        max pooling.
    num_classes : int, optional
    mix : int, optional
        Channels of a 1×1 convolution (followed by batch norm and ReLU) that mixes the
        last block's channels at every pixel before the head, as in Network in Network
        (0: none).
    dropout : float, optional
        Probability of dropping an input of the head (0: no dropout layer).
    seed : int, optional
        Seed of the initial weights and of the dropout masks.
    dtype : {numpy.float32, numpy.float64}, optional

    Attributes
    ----------
    params : dict of str to ndarray
        ``'B1.w'`` ``(16, 1, 3, 3)``, ``'B1.gamma'``, ``'B1.beta'`` ``(16,)``, ...,
        ``'mix.w'`` ``(64, 64, 1, 1)``, ``'mix.gamma'``, ``'mix.beta'``, ``'head.w'``
        ``(10, 64, 1, 1)``, ``'head.b'`` ``(10,)``. The convolutions followed by batch
        norm have no bias: the batch norm after them subtracts the mean of each
        channel, which would cancel it, and ``beta`` takes its place.
    running : dict of str to ndarray
        The batch norms' running means and variances (``'B1.mean'``, ``'B1.var'``, ...):
        state, not parameters, so the optimiser never touches them.

    Examples
    --------
    >>> model = ModernCNN()
    >>> model.num_params
    28282
    >>> model.forward(np.zeros((2, 28, 28), dtype=np.uint8)).shape
    (2, 10)
    """

    def __init__(self, channels=(16, 32, 64), num_classes=10, mix=64, dropout=0.5, seed=0,
                 dtype=np.float32):
        if not isinstance(channels, (tuple, list)) or not channels or not all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0
                for c in channels):
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got "
                             f"{channels!r}")
        if len(channels) > 3:  # two poolings per extra block would shrink 28x28 below 1x1
            raise ValueError(f"channels must have at most 3 blocks for 28x28 images, got "
                             f"{len(channels)}")
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        mix = check_int(mix, "mix", minimum=0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
                0 <= dropout < 1):
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        seed = check_int(seed, "seed", minimum=0)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
        self.channels = tuple(int(c) for c in channels)
        self.num_classes, self.mix, self.dropout = num_classes, mix, float(dropout)
        self.dtype = np.dtype(dtype)
        self.blocks = [f"B{i + 1}" for i in range(len(self.channels))]
        self.params, self.running = self._init_params(seed)
        self._rng = np.random.default_rng(seed)  # draws the seeds of the dropout masks

    def _init_params(self, seed):
        params, running = {}, {}
        inputs = 1
        for i, (name, filters) in enumerate(zip(self.blocks, self.channels)):
            params[f"{name}.w"] = he_init((filters, inputs, 3, 3), seed=seed + i)  # ReLU follows
            params[f"{name}.gamma"] = np.ones(filters)
            params[f"{name}.beta"] = np.zeros(filters)
            running[f"{name}.mean"] = np.zeros(filters)
            running[f"{name}.var"] = np.ones(filters)
            inputs = filters
        if self.mix:  # a 1x1 convolution mixing the channels at every pixel, then BN, ReLU
            params["mix.w"] = he_init((self.mix, inputs, 1, 1), seed=seed + 99)
            params["mix.gamma"], params["mix.beta"] = np.ones(self.mix), np.zeros(self.mix)
            running["mix.mean"], running["mix.var"] = np.zeros(self.mix), np.ones(self.mix)
            inputs = self.mix
        # no ReLU after the head: Glorot's initialisation, the rule for a linear layer
        params["head.w"] = glorot_init((self.num_classes, inputs, 1, 1), seed=seed + 100)
        params["head.b"] = np.zeros(self.num_classes)
        cast = {name: value.astype(self.dtype) for name, value in params.items()}
        return cast, {name: value.astype(self.dtype) for name, value in running.items()}

    @property
    def num_params(self) -> int:
        """Number of trainable parameters (the running statistics are not)."""
        return int(sum(value.size for value in self.params.values()))

    def __repr__(self):
        return (f"ModernCNN(channels={self.channels}, num_classes={self.num_classes}, "
                f"mix={self.mix}, dropout={self.dropout}, dtype=np.{self.dtype.name})")

    def prepare(self, x) -> np.ndarray:
        """Images as the network's input ``(N, 1, 28, 28)``, standardised like LeNet5's.

        uint8 pixels are divided by 255, float pixels are taken to be in [0, 1].
        """
        x = as_numeric_array(x, "x", ndim=(3, 4))
        if x.ndim == 3:
            x = x[:, None]
        if x.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"x must be a batch of 28x28 images, shape (N, 28, 28) or "
                             f"(N, 1, 28, 28), got shape {x.shape}")
        scale = 1 / 255 if x.dtype == np.uint8 else 1.0
        return ((x * scale - PIXEL_MEAN) / PIXEL_STD).astype(self.dtype)

    # ------------------------------------------------------------ forward/backward

    def forward_pass(self, x, mode="train"):
        """Class scores and the caches of every layer, ``(scores, caches)``."""
        if mode not in MODES:
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        p, out, caches = self.params, self.prepare(x), []
        for i, name in enumerate(self.blocks):
            no_bias = np.zeros(self.channels[i], dtype=self.dtype)
            out, cache = conv2d_forward(out, p[f"{name}.w"], no_bias, padding=1)
            caches.append(("conv", name, cache))
            out = self._bn_relu(out, name, mode, caches)
            if i < len(self.blocks) - 1:
                out, cache = max_pool2d_forward(out, 2)
                caches.append(("pool", name, cache))
        if self.mix:
            out, cache = conv1x1_forward(out, p["mix.w"], np.zeros(self.mix, dtype=self.dtype))
            caches.append(("conv1x1", "mix", cache))
            out = self._bn_relu(out, "mix", mode, caches)
        if self.dropout > 0:
            seed = int(self._rng.integers(2**31)) if mode == "train" else None
            out, cache = dropout_forward(out, self.dropout, mode=mode, seed=seed)
            caches.append(("dropout", "head", cache))
        out, cache = conv1x1_forward(out, p["head.w"], p["head.b"])
        caches.append(("conv1x1", "head", cache))
        scores, cache = global_avg_pool_forward(out)
        caches.append(("gap", "head", cache))
        return scores, caches

    def _bn_relu(self, out, name, mode, caches):
        """Batch norm ``name`` then ReLU, their caches appended to ``caches``."""
        out, cache = batchnorm2d_forward(out, self.params[f"{name}.gamma"],
                                         self.params[f"{name}.beta"],
                                         self.running[f"{name}.mean"],
                                         self.running[f"{name}.var"], mode=mode)
        caches.append(("bn", name, cache))
        out, cache = relu_forward(out)
        caches.append(("relu", name, cache))
        return out

    def backward_pass(self, dscores, caches):
        """Gradients of every parameter, keyed like :attr:`params`."""
        grads, dout = {}, dscores
        for kind, name, cache in reversed(caches):
            if kind == "gap":
                dout = global_avg_pool_backward(dout, cache)
            elif kind == "conv1x1":  # a 1x1 convolution is a conv2d with a 1x1 kernel
                x, w = cache["x"], cache["w"]
                grads[f"{name}.w"] = np.einsum("nfhw,nchw->fc", dout, x).reshape(w.shape)
                if f"{name}.b" in self.params:
                    grads[f"{name}.b"] = dout.sum(axis=(0, 2, 3))
                dout = np.einsum("nfhw,fc->nchw", dout, w[:, :, 0, 0])
            elif kind == "dropout":
                dout = dropout_backward(dout, cache)
            elif kind == "pool":
                dout = max_pool2d_backward(dout, cache)
            elif kind == "relu":
                dout = relu_backward(dout, cache)
            elif kind == "bn":
                dout, grads[f"{name}.gamma"], grads[f"{name}.beta"] = batchnorm2d_backward(
                    dout, cache)
            else:  # the first block's input is the image: no gradient needed
                dout, grads[f"{name}.w"], _ = conv2d_backward(dout, cache,
                                                              need_dx=name != self.blocks[0])
        return {name: np.asarray(grad, dtype=self.dtype) for name, grad in grads.items()}

    def forward(self, x) -> np.ndarray:
        """Class scores (logits) in eval mode, shape ``(N, num_classes)``."""
        return self.forward_pass(x, mode="eval")[0]

    def loss_and_scores(self, x, y):
        """Mean softmax cross-entropy of a batch in train mode, the gradients and the scores."""
        y = as_numeric_array(y, "y", ndim=1)
        n = np.shape(x)[0] if np.ndim(x) else 0
        if y.shape[0] != n:
            raise ValueError(f"y must hold one label per image: x has {n} images, got "
                             f"{y.shape[0]} labels")
        scores, caches = self.forward_pass(x, mode="train")
        loss, dscores = softmax_cross_entropy(scores, y)
        return loss, self.backward_pass(dscores, caches), scores

    def loss(self, x, y):
        """``(loss, grads)`` of a batch, as :meth:`cnnlab.lenet.LeNet5.loss`."""
        loss, grads, _ = self.loss_and_scores(x, y)
        return loss, grads

    def predict(self, x, batch_size=1000) -> np.ndarray:
        """Predicted class of every image (eval mode), ``batch_size`` images at a time."""
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        x = as_numeric_array(x, "x", ndim=(3, 4))
        labels = [np.argmax(self.forward(x[i:i + batch_size]), axis=1)
                  for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(labels).astype(np.int64)
