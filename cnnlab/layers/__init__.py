"""Layers of a convolutional network, each a ``*_forward`` / ``*_backward`` pair.

Arrays follow PyTorch's layout: images are ``(N, C, H, W)``. Every forward
returns ``(out, cache)`` and every backward takes ``(dout, cache)``;
:mod:`cnnlab.layers.shapes` does the arithmetic of a stack's shapes and costs.
"""

from cnnlab.layers.conv import *  # noqa: F403
from cnnlab.layers.conv import __all__ as _conv_all
from cnnlab.layers.dense import *  # noqa: F403
from cnnlab.layers.dense import __all__ as _dense_all
from cnnlab.layers.modern import *  # noqa: F403
from cnnlab.layers.modern import __all__ as _modern_all
from cnnlab.layers.shapes import *  # noqa: F403
from cnnlab.layers.shapes import __all__ as _shapes_all

__all__ = [*_conv_all, *_dense_all, *_modern_all, *_shapes_all]
