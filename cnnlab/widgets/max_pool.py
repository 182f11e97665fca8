"""Where your ``max_pool2d_backward`` sends the gradient of one pooled output."""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_real_array
from cnnlab.widgets._explorer import (
    Explorer,
    _checked_range,
    _number,
    _position_slider,
    _red,
    _student,
)

LECTURE_POOL_INPUT = [[1, 1, 2, 4, 0, 3], [5, 6, 7, 8, 1, 2], [3, 2, 1, 0, 4, 6],
                      [1, 2, 3, 4, 5, 1], [0, 7, 2, 2, 3, 3], [4, 1, 6, 0, 2, 9]]


class MaxPoolExplorer(Explorer):
    figsize = (9.0, 3.4)

    def __init__(self, image, size, stride):
        import ipywidgets

        self.x = as_real_array(image, "image", ndim=2)
        if max(self.x.shape) > 10:
            raise ValueError(f"image must be at most 10×10 (to fit the picture), got shape "
                             f"{self.x.shape}")
        size = _checked_range(size, "size", 1, min(self.x.shape))
        stride = size if stride is None else _checked_range(stride, "stride", 1, 4)
        controls = {"size": ipywidgets.IntSlider(value=size, min=1, max=min(self.x.shape),
                                                 description="size"),
                    "stride": ipywidgets.IntSlider(value=stride, min=1, max=4,
                                                   description="stride"),
                    "index": _position_slider(1, "output (p, q)"),
                    "everywhere": ipywidgets.Checkbox(value=False,
                                                      description="δ = 1 at every output")}
        self.index = controls["index"]
        super().__init__(controls, ipywidgets.VBox([
            ipywidgets.HBox([controls["size"], controls["stride"]]),
            ipywidgets.HBox([controls["index"], controls["everywhere"]])]))

    def draw(self, figure, size, stride, index, everywhere):
        from matplotlib.patches import Rectangle

        forward = _student("pooling", "max_pool2d_forward")
        backward = _student("pooling", "max_pool2d_backward")
        out, cache = forward(self.x[None, None], size, stride)
        out = np.asarray(out)[0, 0]
        self.index.max = out.size - 1  # the caller keeps this quiet
        index = self.index.value
        p, q = np.unravel_index(index, out.shape)
        dout = np.ones(out.shape) if everywhere else np.zeros(out.shape)
        dout[p, q] = 1
        dx = np.asarray(backward(dout[None, None], cache))[0, 0]
        panels = figure.subplots(1, 3)
        for ax, grid, title in zip(panels, (self.x, out, dx),
                                   ("x, and the window of (p, q)",
                                    "your max_pool2d_forward", "your max_pool2d_backward: dx")):
            for (r, c), value in np.ndenumerate(grid):
                lit = (ax is panels[1] and (r, c) == (p, q)) or (ax is panels[2] and value)
                ax.add_patch(Rectangle((c, r), 1, 1, ec="0.5", lw=0.5,
                                       fc="C1" if lit else "white", alpha=0.5 if lit else 1))
                ax.text(c + 0.5, r + 0.5, _number(value), ha="center", va="center",
                        fontsize=8)
            ax.set_xlim(-0.1, grid.shape[1] + 0.1)
            ax.set_ylim(grid.shape[0] + 0.1, -0.1)
            ax.set_aspect("equal")
            ax.axis("off")
            ax.set_title(title, fontsize=9)
        panels[0].add_patch(Rectangle((q * stride, p * stride), size, size, fill=False,
                                      ec="C3", lw=2))
        figure.tight_layout()
        window = self.x[p * stride:p * stride + size, q * stride:q * stride + size]
        caption = (f"output ({p}, {q}) is the maximum {_number(out[p, q])} of its red "
                   f"window; δ = 1 there")
        caption += " and at every other output: the windows' gradients add up in dx" \
            if everywhere else ", 0 elsewhere: dx is 1 where the maximum sits, 0 elsewhere"
        if not everywhere:
            if not np.isclose(dx.sum(), 1):
                caption += "<br>" + _red(f"but your dx adds up to {_number(dx.sum())}, not 1: "
                                         "the gradient is not conserved")
            elif not np.isclose(self.x[np.unravel_index(np.argmax(dx), dx.shape)],
                                window.max()):
                caption += "<br>" + _red("but your dx puts it on an entry that is not the "
                                         "window's maximum")
        return caption


def max_pool_explorer(image=None, *, size=2, stride=None):
    """Pick an output of max pooling and see where your backward pass sends its gradient.

    The picture is the input with the window of the chosen output ``(p, q)`` (in
    reading order), your ``cnnlab.pooling.max_pool2d_forward`` output, and the ``dx``
    your ``max_pool2d_backward`` returns for a ``dout`` that is 1 at ``(p, q)`` and
    0 elsewhere (or 1 everywhere: then overlapping windows, a stride smaller than
    the size, add up).

    Parameters
    ----------
    image : array_like, 2-D, optional
        Real, at most 10×10; default a 6×6 example around the lecture's 4×4.
    size : int, optional
        Starting window size (1 to the image's smaller side).
    stride : int, optional
        Starting stride (1..4); defaults to ``size``.

    Returns
    -------
    Explorer

    Raises
    ------
    ValueError
        If ``image`` is not a real 2-D array of at most 10×10, or ``size`` or
        ``stride`` is out of range.
    """
    return MaxPoolExplorer(LECTURE_POOL_INPUT if image is None else image, size, stride)
