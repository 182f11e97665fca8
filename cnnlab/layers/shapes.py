"""The arithmetic of a network's shape: a convolution's geometry read off its windows, and
what each layer of a stack outputs, holds and costs.

The exercises are the bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; input
checks, signatures and docstrings are given.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab._validate import as_numeric_array
from cnnlab.signal import conv_output_size

__all__ = ["layer_costs", "window_geometry"]

#: The layers :func:`layer_costs` knows, with the integers each takes after its kind.
LAYER_KINDS = {"conv": ("filters", "kernel_size", "stride", "padding"),
               "pool": ("kernel_size", "stride"), "relu": (), "fc": ("units",)}


# ------------------------------------------------------------------ reading a picture


def window_geometry(taps):
    """``(kernel_size, stride, dilation)`` of a 1-D convolution, read off its windows.

    ``taps`` is the picture of the convolution: one row per output position, one
    column per input position, 1 where the output's kernel reads that input. Then

    * ``kernel_size`` is the number of taps of a window (the number of weights);
    * ``dilation`` is the distance between neighbouring taps of a window (1: next to
      each other; PyTorch's ``dilation``; the number of zeros inserted between the
      weights is ``dilation - 1``), taken as 1 for a single tap;
    * ``stride`` is how far a window moves from one output to the next.

    Parameters
    ----------
    taps : array_like of 0 and 1 (or bool), shape (outputs, inputs)
        At least two outputs, each reading at least one input; the windows of a
        convolution (equally spaced taps, each window the previous one shifted).

    Returns
    -------
    (kernel_size, stride, dilation) : tuple of 3 ints

    Raises
    ------
    ValueError
        If ``taps`` is not a 2-D array of 0s and 1s with at least two rows, or a row
        has no tap.

    Examples
    --------
    The lecture's 3x3 filter sliding over a 7-pixel row with stride 2:

    >>> window_geometry([[1, 1, 1, 0, 0, 0, 0],
    ...                  [0, 0, 1, 1, 1, 0, 0],
    ...                  [0, 0, 0, 0, 1, 1, 1]])
    (3, 2, 1)
    """
    if isinstance(taps, np.ndarray) and taps.dtype == bool:
        taps = taps.astype(np.int64)
    taps = as_numeric_array(taps, "taps", ndim=2, layout="(outputs, inputs)")
    if taps.dtype.kind == "c" or not np.isin(taps, (0, 1)).all():
        raise ValueError(f"taps must hold only 0 and 1 (1: the output reads that input), got "
                         f"values {np.unique(taps)[:6]}")
    if taps.shape[0] < 2:
        raise ValueError(f"taps must have at least 2 rows (outputs), to show a stride, got "
                         f"shape {taps.shape}")
    empty = np.flatnonzero(taps.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"taps: every output must read at least one input, row "
                         f"{int(empty[0])} has no 1")
    # BEGIN SOLUTION
    first = np.flatnonzero(taps[0])
    kernel_size = first.size
    dilation = int(first[1] - first[0]) if kernel_size > 1 else 1
    stride = int(np.flatnonzero(taps[1])[0] - first[0])
    return int(kernel_size), stride, dilation
    # END SOLUTION


# ------------------------------------------------------------------ a stack's costs


def _checked_layers(layers, input_shape):
    """Validate layer_costs' arguments; return them as tuples of ints."""
    if not (isinstance(input_shape, tuple) and len(input_shape) == 3 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
            for s in input_shape)):
        raise ValueError(f"input_shape must be a tuple of 3 positive ints (C, H, W), got "
                         f"{input_shape!r}")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers must be a non-empty list of layer tuples, got {layers!r}")
    checked, flat = [], False
    for i, layer in enumerate(layers):
        kind = layer[0] if isinstance(layer, tuple) and layer else None
        if kind not in LAYER_KINDS:
            raise ValueError(f"layers[{i}] must be a tuple starting with one of "
                             f"{sorted(LAYER_KINDS)}, got {layer!r}")
        names = LAYER_KINDS[kind]
        values = layer[1:]
        if len(values) != len(names) or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            raise ValueError(f"layers[{i}] must be ({kind!r}, {', '.join(names)}) with int "
                             f"values, got {layer!r}")
        low = {"padding": 0}
        for name, value in zip(names, values):
            if value < low.get(name, 1):
                raise ValueError(f"layers[{i}]: {name} must be >= {low.get(name, 1)}, got "
                                 f"{value}")
        if kind in ("conv", "pool") and flat:
            raise ValueError(f"layers[{i}]: a {kind} layer needs feature maps, but it comes "
                             "after a fully connected layer")
        flat = flat or kind == "fc"
        checked.append((kind, *(int(v) for v in values)))
    return checked


def layer_costs(layers, input_shape):
    """Output shape, parameters and activations of every layer of a stack, for one image.

    The stack follows the pattern INPUT → [[CONV → RELU]*N → POOL?]*M → [FC → RELU]*K →
    FC. Each layer is a tuple:

    * ``("conv", filters, kernel_size, stride, padding)``: square kernels, with a bias
      per filter;
    * ``("pool", kernel_size, stride)``: square windows, no padding;
    * ``("relu",)``;
    * ``("fc", units)``: a fully connected layer with a bias per unit; the first one
      flattens the feature maps before it.

    Output sizes follow ``conv_output_size`` (PyTorch's floor formula).

    Parameters
    ----------
    layers : list of tuples
        The layers, in order.
    input_shape : tuple of 3 ints
        ``(C, H, W)`` of the input image.

    Returns
    -------
    list of ``(shape, params, activations)``, one per layer
        ``shape``: the layer's output shape, ``(C, H, W)`` for maps and ``(units,)``
        after a fully connected layer; ``params``: its number of trainable
        parameters (weights and biases); ``activations``: the number of values in its
        output, what the backward pass must keep in memory (4 bytes each in float32).

    Raises
    ------
    ValueError
        If ``input_shape`` is not 3 positive ints, a layer is not one of the tuples
        above (with kernel sizes, strides, filters and units ≥ 1, padding ≥ 0), a conv
        or pool layer follows a fully connected one, or a window does not fit in its
        input (the message of ``conv_output_size``).

    Examples
    --------
    The lecture's example: ten 5x5 filters, stride 1, padding 2, on a 32x32x3 image:

    >>> layer_costs([("conv", 10, 5, 1, 2)], (3, 32, 32))
    [((10, 32, 32), 760, 10240)]
    >>> layer_costs([("pool", 2, 2), ("fc", 10)], (6, 4, 4))
    [((6, 2, 2), 0, 24), ((10,), 250, 10)]
    """
    layers = _checked_layers(layers, input_shape)
    # BEGIN SOLUTION
    shape = tuple(int(s) for s in input_shape)
    rows = []
    for kind, *values in layers:
        params = 0
        if kind == "conv":
            filters, kernel, stride, padding = values
            channels, h, w = shape
            shape = (filters, conv_output_size(h, kernel, stride, padding),
                     conv_output_size(w, kernel, stride, padding))
            params = filters * (channels * kernel * kernel + 1)
        elif kind == "pool":
            kernel, stride = values
            channels, h, w = shape
            shape = (channels, conv_output_size(h, kernel, stride),
                     conv_output_size(w, kernel, stride))
        elif kind == "fc":
            inputs = int(np.prod(shape))
            params = values[0] * (inputs + 1)
            shape = (values[0],)
        rows.append((shape, params, int(np.prod(shape))))
    return rows
    # END SOLUTION
