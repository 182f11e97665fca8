"""One output entry of a 1-D or 2-D convolution (or correlation) as a sum of products."""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_real_array
from cnnlab.widgets._explorer import (
    Explorer,
    _agreement,
    _number,
    _operation_buttons,
    _position_slider,
    _red,
    _student,
    _width_ratios,
)


class FlipAndSlide1D(Explorer):
    figsize = (9.0, 3.4)

    def __init__(self, signal, kernel, operation):
        self.f = as_real_array(signal, "signal", ndim=1)
        self.g = as_real_array(kernel, "kernel", ndim=1)
        if not 1 <= len(self.g) <= len(self.f) <= 16:
            raise ValueError(f"kernel and signal must have 1 <= len(kernel) <= len(signal) "
                             f"<= 16 (to fit the picture), got {len(self.g)} and {len(self.f)}")
        controls = {"k": _position_slider(len(self.f) + len(self.g) - 1, "output k"),
                    "operation": _operation_buttons(operation)}
        super().__init__(controls)

    def draw(self, figure, k, operation):
        from matplotlib.patches import Rectangle

        f, g, m = self.f, self.g, len(self.g)
        out = _student("signal", operation)(f, g, "full")
        taps = g[::-1] if operation == "convolve" else g  # as they lie, left to right
        labels = [f"g[{i}]" for i in (range(m)[::-1] if operation == "convolve" else range(m))]
        positions = np.arange(k - m + 1, k + 1)  # the input samples under the kernel
        padded = np.concatenate([np.zeros(m - 1, f.dtype), f, np.zeros(m - 1, f.dtype)])
        under = padded[positions + m - 1]
        products_sum = (under * taps).sum()
        ax = figure.subplots()
        rows = {"f": 3, "kernel": 2, "products": 1, "z": 0}
        for i in range(-(m - 1), len(f) + m - 1):
            inside = 0 <= i < len(f)
            ax.add_patch(Rectangle((i, rows["f"]), 0.9, 0.8, fc="white" if inside else "0.85",
                                   ec="0.5"))
            ax.text(i + 0.45, rows["f"] + 0.4, _number(f[i]) if inside else "0",
                    ha="center", va="center", fontsize=9)
        for i, (x, w, label) in enumerate(zip(positions, taps, labels)):
            ax.add_patch(Rectangle((x, rows["kernel"]), 0.9, 0.8, fc="C1", alpha=0.35,
                                   ec="C1"))
            ax.text(x + 0.45, rows["kernel"] + 0.5, _number(w), ha="center", va="center",
                    fontsize=9)
            ax.text(x + 0.45, rows["kernel"] + 0.15, label, ha="center", va="center",
                    fontsize=6, color="0.3")
            ax.text(x + 0.45, rows["products"] + 0.4, f"{_number(under[i])}·{_number(w)}",
                    ha="center", va="center", fontsize=8)
        for i, value in enumerate(out):
            here = i == k
            ax.add_patch(Rectangle((i, rows["z"]), 0.9, 0.8, fc="C2" if here else "white",
                                   alpha=0.5 if here else 1, ec="0.5"))
            ax.text(i + 0.45, rows["z"] + 0.4, _number(value), ha="center", va="center",
                    fontsize=8)
        ax.axvspan(positions[0] - 0.05, positions[-1] + 0.95, color="C1", alpha=0.08)
        for name, row in rows.items():
            ax.text(-m - 0.2, row + 0.4, name, ha="right", va="center", fontsize=9)
        ax.set_xlim(-m - 1.8, len(f) + m - 0.9)
        ax.set_ylim(-0.3, 4)
        ax.axis("off")
        flipped = "flipped " if operation == "convolve" else ""
        ax.set_title(f"{operation}(f, g, 'full')[{k}]: the {flipped}kernel over f[{k - m + 1}] "
                     f"… f[{k}], products added up", fontsize=9)
        figure.tight_layout()
        terms = " + ".join(f"{_number(a)}·{_number(w)}" for a, w in zip(under, taps))
        caption = f"<b>z[{k}] = {terms} = {_number(products_sum)}</b>; "
        if len(out) != len(f) + len(g) - 1:
            return caption + _red(f"your {operation} returned {len(out)} values, 'full' has "
                                  f"{len(f) + len(g) - 1}")
        return caption + _agreement(operation, out[k], products_sum)


def flip_and_slide_1d(signal, kernel, *, operation="convolve"):
    """Step the (flipped) kernel along a 1-D signal, one output sample at a time.

    A slider picks the output position ``k`` of the ``'full'`` result; the picture
    shows the kernel where it lies for that ``k`` (flipped for convolution, as it is
    for correlation), the zero padding, the products, and the whole output of your
    ``cnnlab.signal.convolve`` or ``correlate`` with entry ``k`` highlighted. The
    caption adds up the products and compares the sum with your entry.

    Parameters
    ----------
    signal : array_like, 1-D
        At most 16 real samples.
    kernel : array_like, 1-D
        Real taps, no more than the signal has.
    operation : {'convolve', 'correlate'}, optional
        The operation shown first (a toggle switches).

    Returns
    -------
    Explorer

    Raises
    ------
    ValueError
        If ``signal`` or ``kernel`` is not a real 1-D array of the sizes above, or
        ``operation`` is not one of the two.
    """
    return FlipAndSlide1D(signal, kernel, operation)


class FlipAndSlide2D(Explorer):
    figsize = (9.0, 4.2)

    def __init__(self, image, kernel, operation):
        self.x = as_real_array(image, "image", ndim=2)
        self.w = as_real_array(kernel, "kernel", ndim=2)
        if max(self.x.shape) > 8 or any(k > n for k, n in zip(self.w.shape, self.x.shape)):
            raise ValueError(f"image must be at most 8×8 and kernel no larger than image, "
                             f"got image {self.x.shape} and kernel {self.w.shape}")
        out_shape = np.add(self.x.shape, self.w.shape) - 1
        controls = {"index": _position_slider(int(np.prod(out_shape)), "output (i, j)"),
                    "operation": _operation_buttons(operation)}
        super().__init__(controls)

    def draw(self, figure, index, operation):
        from matplotlib.patches import Rectangle

        x, w = self.x, self.w
        (kh, kw), name = w.shape, f"{operation}2d"
        out = _student("signal", name)(x, w, "full")
        full_shape = tuple(int(a + b - 1) for a, b in zip(x.shape, w.shape))
        i, j = np.unravel_index(index, full_shape)
        taps = np.rot90(w, 2) if operation == "convolve" else w
        padded = np.pad(x, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
        under = padded[i:i + kh, j:j + kw]
        products_sum = (under * taps).sum()
        left, right = figure.subplots(1, 2, **_width_ratios(padded.shape[1], full_shape[1]))
        for r in range(padded.shape[0]):
            for c in range(padded.shape[1]):
                inside = kh - 1 <= r < kh - 1 + x.shape[0] and kw - 1 <= c < kw - 1 + x.shape[1]
                in_window = i <= r < i + kh and j <= c < j + kw
                left.add_patch(Rectangle((c, r), 1, 1, ec="0.55", lw=0.5,
                                         fc="white" if inside else "0.85"))
                if in_window:
                    left.add_patch(Rectangle((c, r), 1, 1, fc="C1", alpha=0.3, lw=0))
                    left.text(c + 0.5, r + 0.35, _number(padded[r, c]), ha="center",
                              va="center", fontsize=8)
                    left.text(c + 0.5, r + 0.72, "×" + _number(taps[r - i, c - j]),
                              ha="center", va="center", fontsize=7, color="C1")
                else:
                    left.text(c + 0.5, r + 0.5, _number(padded[r, c]), ha="center",
                              va="center", fontsize=8, color="0.4")
        left.add_patch(Rectangle((j, i), kw, kh, fill=False, ec="C1", lw=2))
        rotated = "rotated by 180° " if operation == "convolve" else ""
        left.set_title(f"zero-padded image; orange: the kernel {rotated}(small numbers)",
                       fontsize=9)
        if np.shape(out) == full_shape:
            for r in range(full_shape[0]):
                for c in range(full_shape[1]):
                    here = (r, c) == (i, j)
                    right.add_patch(Rectangle((c, r), 1, 1, ec="0.5", lw=0.5,
                                              fc="C2" if here else "white",
                                              alpha=0.5 if here else 1))
                    right.text(c + 0.5, r + 0.5, _number(out[r, c]), ha="center",
                               va="center", fontsize=8)
        right.set_title(f"your {name}(image, kernel, 'full')", fontsize=9)
        for ax, shape in ((left, padded.shape), (right, full_shape)):
            ax.set_xlim(-0.1, shape[1] + 0.1)
            ax.set_ylim(shape[0] + 0.1, -0.1)
            ax.set_aspect("equal")
            ax.axis("off")
        figure.tight_layout()
        terms = " + ".join(f"{_number(a)}·{_number(b)}" for a, b in zip(under.flat, taps.flat))
        caption = f"<b>Z[{i}, {j}] = {terms} = {_number(products_sum)}</b>; "
        if np.shape(out) != full_shape:
            return caption + _red(f"your {name} returned shape {np.shape(out)}, 'full' has "
                                  f"{full_shape}")
        return caption + _agreement(name, out[i, j], products_sum)


def flip_and_slide_2d(image, kernel, *, operation="convolve"):
    """Step the (rotated) kernel over a small image, one output pixel at a time.

    A slider picks the output pixel ``(i, j)`` of the ``'full'`` result, in reading
    order; the picture shows the zero-padded image with the kernel where it lies for
    that pixel (rotated by 180° for convolution), and the output of your
    ``cnnlab.signal.convolve2d`` or ``correlate2d``. The caption adds up the products
    and compares the sum with your entry.

    Parameters
    ----------
    image : array_like, 2-D
        Real, at most 8×8.
    kernel : array_like, 2-D
        Real, no larger than ``image`` along either axis.
    operation : {'convolve', 'correlate'}, optional
        The operation shown first (a toggle switches).

    Returns
    -------
    Explorer

    Raises
    ------
    ValueError
        If ``image`` or ``kernel`` is not a real 2-D array of the sizes above, or
        ``operation`` is not one of the two.
    """
    return FlipAndSlide2D(image, kernel, operation)


# --- 3. a kernel editor on a photograph -----------------------------------------------
