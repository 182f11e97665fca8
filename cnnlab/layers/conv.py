"""Convolution layers: the batched ``conv2d`` forward/backward pair and the lecture's
single-map backpropagation equations.

A convolution layer computes, for every image ``n`` and filter ``f``, a
cross-correlation (the kernel is *not* flipped, as in PyTorch) summed over the
input channels, plus a bias:

    out[n, f] = sum_c x[n, c] ⋆ w[f, c] + b[f]

Backpropagation, for one input map ``a`` and one kernel ``K`` with output
sensitivity ``δ`` (stride 1, no padding):

* the sensitivity of the layer below is the *full convolution* ``δ * K``
  (:func:`conv_delta_input`);
* the kernel gradient is the *valid correlation* ``a ⋆ δ`` (:func:`conv_grad_kernel`);
* the bias gradient is the sum of ``δ`` (:func:`conv_grad_bias`).

With stride ``s``, the sensitivity of the layer below is the full convolution of ``δ``
*dilated* by ``s`` (``s - 1`` zeros between its entries): multiplication by the
transpose of the convolution's matrix, the operation frameworks call a *transposed
convolution* (:func:`conv_transpose2d`, like ``torch.nn.functional.conv_transpose2d``).

:func:`conv2d_forward` / :func:`conv2d_backward` do the same for a whole batch,
with stride, zero padding and dilation, vectorized with ``im2col`` (every
receptive field as a row of a matrix, through ``sliding_window_view``) and its
adjoint ``col2im``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab._validate import as_numeric_array, as_pair, as_real_array, check_cache, checked_dout
from cnnlab.signal import convolve2d, correlate2d, dilate_kernel

__all__ = [
    "conv2d_backward",
    "conv2d_forward",
    "conv_delta_input",
    "conv_grad_bias",
    "conv_grad_kernel",
    "conv_transpose2d",
]


def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1):
    """Forward pass of a 2-D convolution layer, like ``torch.nn.functional.conv2d``.

    ``out[n, f, p, q] = b[f] + sum_{c, i, j} w[f, c, i, j] *
    xpad[n, c, p * sh + i * dh, q * sw + j * dw]``, where ``xpad`` is ``x`` with
    ``ph`` (``pw``) zero rows (columns) added on each side: a cross-correlation
    (no kernel flip), summed over the input channels.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input batch.
    w : array_like, shape (F, C, KH, KW)
        Filters: ``F`` kernels of ``C`` channels each.
    b : array_like, shape (F,)
        One bias per filter.
    stride : int or pair of ints, optional
        Step ``(sh, sw)`` between receptive fields.
    padding : int or pair of ints, optional
        Zeros ``(ph, pw)`` added on each side of the height and width axes.
    dilation : int or pair of ints, optional
        Spacing ``(dh, dw)`` between kernel taps; 1 means none.

    Returns
    -------
    out : ndarray, shape (N, F, OH, OW)
        ``OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1`` (likewise ``OW``), dtype
        ``numpy.result_type(x, w, b)``: float32 inputs give a float32 output.
    cache : dict
        ``{"x": x, "w": w, "stride": (sh, sw), "padding": (ph, pw),
        "dilation": (dh, dw), "out_shape": out.shape}``, for :func:`conv2d_backward`.
        It is built around your code: you compute ``out`` only. You may store more in
        ``cache`` for your backward pass (the reference keeps its im2col matrix there,
        ``cache["cols"]``), but a backward pass must work without such extras.

    Raises
    ------
    ValueError
        If ``x`` or ``w`` is not a non-empty real 4-D array, their channel counts
        differ, ``b`` does not have shape ``(F,)``, ``stride`` or ``dilation`` is not
        a positive int or pair, ``padding`` is not a non-negative int or pair, or
        the (dilated) kernel is larger than the padded input.

    Examples
    --------
    >>> x = np.arange(1, 10).reshape(1, 1, 3, 3)
    >>> w = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> out, cache = conv2d_forward(x, w, np.array([100]))
    >>> out
    array([[[[137, 147],
             [167, 177]]]])
    >>> conv2d_forward(np.ones((2, 3, 28, 28)), np.ones((6, 3, 5, 5)), np.zeros(6),
    ...                stride=2, padding=1)[0].shape
    (2, 6, 13, 13)
    """
    x = as_real_array(x, "x", 4, "(N, C, H, W)")
    w = as_real_array(w, "w", 4, "(F, C, KH, KW)")
    b = as_numeric_array(b, "b", allow_empty=True)
    if b.shape != (w.shape[0],) or b.dtype.kind == "c":
        raise ValueError(f"b must be a real array of shape (F,) = ({w.shape[0]},), one bias "
                         f"per filter of w, got shape {b.shape} and dtype {b.dtype}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has C={x.shape[1]} channels but w expects C={w.shape[1]}: "
                         f"x.shape[1] must equal w.shape[1], got x.shape={x.shape} and "
                         f"w.shape={w.shape}")
    stride = as_pair(stride, "stride")
    padding = as_pair(padding, "padding", minimum=0)
    dilation = as_pair(dilation, "dilation")
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, w.shape[2:])]
    room = [n + 2 * p for n, p in zip(x.shape[2:], padding)]
    if spans[0] > room[0] or spans[1] > room[1]:
        raise ValueError(
            f"w: the {w.shape[2]}x{w.shape[3]} kernel with dilation {dilation} spans "
            f"{spans[0]}x{spans[1]} pixels, more than the padded input's {room[0]}x{room[1]} "
            f"(x is {x.shape[2]}x{x.shape[3]}, padding {padding})"
        )
    cache = {"x": x, "w": w, "stride": stride, "padding": padding, "dilation": dilation}
    # BEGIN SOLUTION
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c = x.shape[:2]
    f, _, kh, kw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # windows[n, c, p, q] is the (kh, kw) receptive field of output pixel (p, q): a view.
    windows = sliding_window_view(xpad, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW)
    oh, ow = windows.shape[2:4]
    # im2col, copied once: cols[n] has a row per weight (c, i, j) and a column per output
    # pixel. Contiguous, it makes fast matrix products here and in the backward (for dw).
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
    # One matrix product per image, (F, C*KH*KW) @ (C*KH*KW, OH*OW): already (N, F, ...).
    out = np.matmul(w.reshape(f, -1), cols, dtype=np.result_type(x, w, b))
    out += b.reshape(f, 1)  # in place: no second output-sized array
    out = out.reshape(n, f, oh, ow)
    cache["cols"] = cols  # kept for the backward pass's dw
    # END SOLUTION
    cache["out_shape"] = out.shape
    return out, cache


def conv2d_backward(dout, cache, need_dx=True):
    """Backward pass of a 2-D convolution layer.

    With ``xpad`` the padded input and ``(p, q)`` running over the output pixels:

    * ``dw[f, c, i, j] = sum_{n, p, q} dout[n, f, p, q] * xpad[n, c, p*sh + i*dh, q*sw + j*dw]``
      (the correlation of the input with the sensitivity);
    * ``db[f] = sum_{n, p, q} dout[n, f, p, q]``;
    * ``dx``: every output pixel sends ``dout[n, f, p, q] * w[f, c, i, j]`` back to
      the input pixel tap ``(i, j)`` read, and the contributions add up (for
      stride 1, no padding, this is the full convolution ``δ * K`` summed over
      the filters); padding rows and columns are then cut off.

    Parameters
    ----------
    dout : array_like, shape (N, F, OH, OW)
        Upstream gradient, the shape of the forward output.
    cache : dict
        The cache returned by :func:`conv2d_forward`.
    need_dx : bool, optional
        If False, skip the input gradient and return ``dx=None``: for a first
        layer, whose input (the images) has no parameters, it is the most
        expensive part of the backward and nobody uses it.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None
        Gradient with respect to ``x``, dtype ``numpy.result_type(w, dout)``
        (``None`` if ``need_dx`` is False).
    dw : ndarray, shape (F, C, KH, KW)
        Gradient with respect to ``w``, dtype ``numpy.result_type(x, dout)``.
    db : ndarray, shape (F,)
        Gradient with respect to ``b``, ``dout``'s dtype.

    Raises
    ------
    ValueError
        If ``cache`` is not a convolution cache or ``dout`` does not have the
        forward output's shape.

    Examples
    --------
    >>> x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    >>> out, cache = conv2d_forward(x, w, np.zeros(1))
    >>> dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    >>> dx[0, 0]
    array([[ 1.,  3.,  2.],
           [ 4., 10.,  6.],
           [ 3.,  7.,  4.]])
    >>> dw[0, 0]
    array([[12., 16.],
           [24., 28.]])
    >>> db
    array([4.])
    """
    keys = ("x", "w", "stride", "padding", "dilation", "out_shape")
    check_cache(cache, "conv2d_forward", keys)
    dout = checked_dout(dout, cache["out_shape"], ndim=4, layout="(N, F, OH, OW)")
    # BEGIN SOLUTION
    x, w, cols = cache["x"], cache["w"], cache.get("cols")
    (sh, sw), (ph, pw) = cache["stride"], cache["padding"]
    dil_h, dil_w = cache["dilation"]  # (named so as not to clash with the gradient dw)
    n, c, height, width = x.shape
    f, _, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    if cols is None:  # a cache without the forward's im2col: build it again
        xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        windows = sliding_window_view(xpad, (dil_h * (kh - 1) + 1, dil_w * (kw - 1) + 1),
                                      axis=(2, 3))[:, :, ::sh, ::sw, ::dil_h, ::dil_w]
        cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
    dout = dout.reshape(n, f, oh * ow)
    # dw with the forward's im2col: per image (C*KH*KW, OH*OW) @ (OH*OW, F), summed over n.
    dw = np.matmul(cols, dout.transpose(0, 2, 1)).sum(axis=0).T.reshape(w.shape)
    db = dout.sum(axis=(0, 2))
    if not need_dx:  # e.g. the first layer: nobody needs the gradient of the images
        return None, dw, db
    # dx with the batch as the *last* axis, so that col2im adds long contiguous runs.
    dout_rows = dout.transpose(1, 2, 0).reshape(f, oh * ow * n)  # (F, OH*OW*N)
    dxpad = np.zeros((c, height + 2 * ph, width + 2 * pw, n),
                     dtype=np.result_type(w, dout))
    # col2im, one kernel tap (i, j) at a time: (C, F) @ (F, OH*OW*N) is the gradient of
    # tap (i, j) of every receptive field, and those taps are one strided slice of the
    # padded input; where receptive fields overlap, += adds up their contributions.
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dil_h, i * dil_h + sh * (oh - 1) + 1, sh)
            columns = slice(j * dil_w, j * dil_w + sw * (ow - 1) + 1, sw)
            dxpad[:, rows, columns] += (w[:, :, i, j].T @ dout_rows).reshape(c, oh, ow, n)
    # Cut the padding off and put the batch axis first again.
    dx = dxpad[:, ph:ph + height, pw:pw + width].transpose(3, 0, 1, 2)
    return np.ascontiguousarray(dx), dw, db
    # END SOLUTION


def conv_delta_input(delta, kernel):
    """Sensitivity of the layer below one convolution: the full convolution ``δ * K``.

    For one input map and one kernel (stride 1, no padding), the forward is the
    valid correlation ``z = a ⋆ K``; each ``δ[u, v]`` reaches the input through
    the kernel placed at ``(u, v)``, so ``∂J/∂a = δ * K`` (``'full'`` mode: the
    result has the input's shape). In a layer, the sensitivities of all the
    filters that read the map add up.

    Parameters
    ----------
    delta : array_like, shape (OH, OW)
        Sensitivity ``∂J/∂z`` of the convolution's output.
    kernel : array_like, shape (KH, KW)
        The kernel ``K`` the forward correlated with.

    Returns
    -------
    ndarray, shape (OH + KH - 1, OW + KW - 1)
        ``scipy.signal.convolve2d(delta, kernel, 'full')``.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 2-D array.

    Examples
    --------
    The lecture's 2x2 sensitivity and 2x2 kernel give a 3x3 input sensitivity:

    >>> conv_delta_input([[1, 3], [2, 4]], [[1, 2], [3, 4]])
    array([[ 1,  5,  6],
           [ 5, 21, 20],
           [ 6, 20, 16]])
    """
    delta = as_numeric_array(delta, "delta", ndim=2)
    kernel = as_numeric_array(kernel, "kernel", ndim=2)
    # BEGIN SOLUTION
    return convolve2d(delta, kernel, "full")
    # END SOLUTION


def conv_grad_kernel(a, delta):
    """Kernel gradient of one convolution: the valid correlation ``a ⋆ δ``.

    ``∂J/∂K[i, j] = sum_{u, v} δ[u, v] * a[u + i, v + j]``: every output pixel adds
    the patch of ``a`` it saw, weighted by its sensitivity. Equivalently
    ``a * rot90(δ, 2)`` (a convolution with the flipped sensitivity).

    Parameters
    ----------
    a : array_like, shape (H, W)
        The input map the forward correlated (the previous layer's activation).
    delta : array_like, shape (OH, OW)
        Sensitivity of the output, with ``OH <= H`` and ``OW <= W``.

    Returns
    -------
    ndarray, shape (H - OH + 1, W - OW + 1)
        ``scipy.signal.correlate2d(a, delta, 'valid')``: the kernel's shape.

    Raises
    ------
    ValueError
        If an input is not a non-empty numeric 2-D array or ``delta`` is larger
        than ``a`` along an axis.

    Examples
    --------
    The lecture's magic square and 3x3 sensitivity give a 2x2 kernel gradient:

    >>> a = np.array([[16, 2, 3, 13], [5, 11, 10, 8], [9, 7, 6, 12], [4, 14, 15, 1]])
    >>> delta = np.array([[0.8, 0.1, -0.6], [0.3, 0.5, 0.7], [-0.4, 0.0, -0.2]])
    >>> np.round(conv_grad_kernel(a, delta), 10)
    array([[20.4,  2.8],
           [ 4.9, 12.7]])
    """
    a = as_numeric_array(a, "a", ndim=2)
    delta = as_numeric_array(delta, "delta", ndim=2)
    if delta.shape[0] > a.shape[0] or delta.shape[1] > a.shape[1]:
        raise ValueError(f"delta must not be larger than a along either axis (it is the "
                         f"sensitivity of a valid correlation of a), got delta.shape="
                         f"{delta.shape} and a.shape={a.shape}")
    # BEGIN SOLUTION
    return correlate2d(a, delta, "valid")
    # END SOLUTION


def conv_grad_bias(delta):
    """Bias gradient of one convolution: the sum of the sensitivity ``δ``.

    The bias is added to every output pixel, so ``∂J/∂b = sum_{u, v} δ[u, v]``.

    Parameters
    ----------
    delta : array_like, shape (OH, OW)
        Sensitivity of the output.

    Returns
    -------
    scalar
        ``delta.sum()``, a NumPy scalar of ``delta``'s dtype.

    Raises
    ------
    ValueError
        If ``delta`` is not a non-empty numeric 2-D array.

    Examples
    --------
    >>> conv_grad_bias([[0.5, -1.0], [2.0, 0.25]])
    np.float64(1.75)
    """
    delta = as_numeric_array(delta, "delta", ndim=2)
    # BEGIN SOLUTION
    return delta.sum()
    # END SOLUTION


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0):
    """Transposed convolution ("deconvolution"), like ``torch.nn.functional.conv_transpose2d``.

    The adjoint of :func:`conv2d_forward`: every input pixel ``input[n, c, p, q]`` adds
    ``input[n, c, p, q] * weight[c, o]`` to the output window that starts at
    ``(p * sh, q * sw)``, and ``padding`` rows (columns) are then cut off each side.
    Equivalently, for each output channel ``o``: insert ``stride - 1`` zeros between the
    entries of each input map (dilate it), take the *full convolution* with
    ``weight[c, o]``, sum over ``c``, and crop. With stride ``s > 1`` the map grows about
    ``s`` times: it upsamples. ``conv_transpose2d(dout, w, stride=s, padding=p)`` is the
    ``dx`` of a ``conv2d_forward(x, w, b, s, p)`` whose windows cover all of ``x``.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
        Input batch (for instance the sensitivity ``δ`` of a convolution's output).
    weight : array_like, shape (C_in, C_out, KH, KW)
        Kernels, laid out as in PyTorch: input channels first. A ``conv2d_forward``
        weight of shape ``(F, C, KH, KW)`` is the transposed convolution from ``F``
        channels back to ``C``.
    bias : array_like, shape (C_out,), optional
        One bias per output channel, added to every pixel; None for none.
    stride : int or pair of ints, optional
        ``(sh, sw)``: the output windows of neighbouring input pixels are ``sh`` rows
        (``sw`` columns) apart.
    padding : int or pair of ints, optional
        ``(ph, pw)``: rows (columns) cut off each side of the full result, as if the
        matching convolution had padded its input by as much.

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW)
        ``OH = (H - 1) * sh - 2 * ph + KH`` (likewise ``OW``), dtype
        ``numpy.result_type(input, weight, bias)``.

    Raises
    ------
    ValueError
        If ``input`` or ``weight`` is not a non-empty real 4-D array, their channel
        counts differ, ``bias`` does not have shape ``(C_out,)``, ``stride`` is not a
        positive int or pair, ``padding`` is not a non-negative int or pair, or the
        padding would crop the output away.

    Examples
    --------
    Stride 1: the full convolution of section 7 (``conv_delta_input``):

    >>> delta = np.array([[1, 3], [2, 4]]).reshape(1, 1, 2, 2)
    >>> kernel = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> conv_transpose2d(delta, kernel)[0, 0]
    array([[ 1,  5,  6],
           [ 5, 21, 20],
           [ 6, 20, 16]])

    Stride 2 spreads the copies of the kernel two pixels apart, a 4x4 map:

    >>> conv_transpose2d(delta, kernel, stride=2)[0, 0]
    array([[ 1,  2,  3,  6],
           [ 3,  4,  9, 12],
           [ 2,  4,  4,  8],
           [ 6,  8, 12, 16]])
    >>> conv_transpose2d(np.ones((2, 3, 7, 7)), np.ones((3, 6, 3, 3)), stride=2,
    ...                  padding=1).shape
    (2, 6, 13, 13)
    """
    input = as_real_array(input, "input", 4, "(N, C_in, H, W)")
    weight = as_real_array(weight, "weight", 4, "(C_in, C_out, KH, KW)")
    if input.shape[1] != weight.shape[0]:
        raise ValueError(f"input has C_in={input.shape[1]} channels but weight expects "
                         f"C_in={weight.shape[0]}: input.shape[1] must equal weight.shape[0] "
                         f"(weight is (C_in, C_out, KH, KW)), got input.shape={input.shape} "
                         f"and weight.shape={weight.shape}")
    if bias is not None:
        bias = as_numeric_array(bias, "bias", allow_empty=True)
        if bias.shape != (weight.shape[1],) or bias.dtype.kind == "c":
            raise ValueError(f"bias must be None or a real array of shape (C_out,) = "
                             f"({weight.shape[1]},), one bias per output channel, got shape "
                             f"{bias.shape} and dtype {bias.dtype}")
    stride = as_pair(stride, "stride")
    padding = as_pair(padding, "padding", minimum=0)
    full = [(n - 1) * s + k for n, s, k in zip(input.shape[2:], stride, weight.shape[2:])]
    if full[0] - 2 * padding[0] < 1 or full[1] - 2 * padding[1] < 1:
        raise ValueError(f"padding {padding} crops the whole output away: the full result is "
                         f"{full[0]}x{full[1]} (input {input.shape[2]}x{input.shape[3]}, "
                         f"stride {stride}, kernel {weight.shape[2]}x{weight.shape[3]}), "
                         f"so 2 * padding must be smaller than that along each axis")
    # BEGIN SOLUTION
    (sh, sw), (ph, pw) = stride, padding
    kh, kw = weight.shape[2:]
    # The stride: stride - 1 zeros between the entries of every map (last two axes).
    spread = dilate_kernel(input, (sh, sw))
    # The full convolution: pad by kernel - 1 on each side, then correlate with the
    # kernels rotated by 180 degrees (one valid window per output pixel).
    framed = np.pad(spread, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    windows = sliding_window_view(framed, (kh, kw), axis=(2, 3))  # (N, C_in, OH, OW, KH, KW)
    rotated = weight[:, :, ::-1, ::-1]
    out = np.einsum("ncpqij,coij->nopq", windows, rotated)
    # The padding the matching convolution added is cut off each side.
    out = out[:, :, ph:out.shape[2] - ph, pw:out.shape[3] - pw]
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out
    # END SOLUTION
