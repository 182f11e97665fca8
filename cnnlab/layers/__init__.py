"""Layers of a convolutional network, each a ``*_forward`` / ``*_backward`` pair.

Arrays follow PyTorch's layout: images are ``(N, C, H, W)``. Every forward
returns ``(out, cache)`` and every backward takes ``(dout, cache)``.
"""

from cnnlab.layers.conv import *  # noqa: F403
from cnnlab.layers.conv import __all__ as _conv_all
from cnnlab.layers.dense import *  # noqa: F403
from cnnlab.layers.dense import __all__ as _dense_all
from cnnlab.layers.modern import *  # noqa: F403
from cnnlab.layers.modern import __all__ as _modern_all

__all__ = [*_conv_all, *_dense_all, *_modern_all]
