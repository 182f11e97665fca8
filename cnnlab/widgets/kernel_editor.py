"""Type a 3×3 kernel, see your ``correlate2d`` or ``convolve2d`` filter a photo."""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_real_array
from cnnlab.widgets._explorer import (
    Explorer,
    _checked_choice,
    _number,
    _operation_buttons,
    _red,
    _student,
)

PRESETS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "Sobel x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "Sobel y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}


class KernelEditor(Explorer):
    figsize = (9.0, 3.9)

    def __init__(self, image, kernel, operation):
        import ipywidgets

        self.photo = as_real_array(image, "image", ndim=2)
        if min(self.photo.shape) < 3:
            raise ValueError(f"image must be at least 3×3, got shape {self.photo.shape}")
        if isinstance(kernel, str):
            _checked_choice(kernel, "kernel", tuple(PRESETS))
            preset, kernel = kernel, PRESETS[kernel]
        else:
            preset = "custom"
        kernel = as_real_array(kernel, "kernel", ndim=2)
        if kernel.shape != (3, 3):
            raise ValueError(f"kernel must be a preset name or a 3×3 array, got shape "
                             f"{kernel.shape}")
        self.cells = [ipywidgets.FloatText(value=float(kernel[r, c]), step=0.1,
                                           layout=ipywidgets.Layout(width="70px"))
                      for r in range(3) for c in range(3)]
        controls = {f"w{r}{c}": self.cells[3 * r + c] for r in range(3) for c in range(3)}
        controls["preset"] = ipywidgets.Dropdown(options=[*PRESETS, "custom"], value=preset,
                                                 description="preset")
        controls["operation"] = _operation_buttons(operation)
        grid = ipywidgets.GridBox(self.cells, layout=ipywidgets.Layout(
            grid_template_columns="repeat(3, 74px)"))
        arrange = ipywidgets.HBox([grid, ipywidgets.VBox([controls["preset"],
                                                          controls["operation"]])])
        super().__init__(controls, arrange)

    def _changed(self, change) -> None:
        preset = self.controls["preset"]
        if change["owner"] is preset and preset.value in PRESETS:
            with self.quiet():  # nine new weights, one redraw
                for cell, weight in zip(self.cells, np.ravel(PRESETS[preset.value])):
                    cell.value = float(weight)
        elif change["owner"] in self.cells:
            with self.quiet():
                preset.value = next((name for name, weights in PRESETS.items()
                                     if np.allclose(weights, self.kernel())), "custom")
        super()._changed(change)

    def kernel(self) -> np.ndarray:
        return np.array([cell.value for cell in self.cells]).reshape(3, 3)

    def draw(self, figure, preset, operation, **weights):
        kernel = self.kernel()
        name = f"{operation}2d"
        feature_map = np.asarray(_student("signal", name)(self.photo, kernel, "same"))
        left, right = figure.subplots(1, 2)
        left.imshow(self.photo, cmap="gray")
        left.set_title("the photo", fontsize=9)
        if np.isclose(kernel.sum(), 1):  # keeps the brightness: the photo's grey levels
            shown = "the photo's grey levels"
            right.imshow(feature_map, cmap="gray", vmin=self.photo.min(), vmax=self.photo.max())
        elif feature_map.min() >= 0:  # brighter or darker overall
            shown = "grey levels, scaled to fit"
            right.imshow(feature_map, cmap="gray")
        else:  # signed (an edge detector): zero is white
            shown = "signed: red > 0 > blue"
            limit = max(np.percentile(np.abs(feature_map), 99.5), 1e-12)
            right.imshow(feature_map, cmap="RdBu_r", vmin=-limit, vmax=limit)
        right.set_title(f"your {name}(photo, kernel, 'same')", fontsize=9)
        for ax in (left, right):
            ax.axis("off")
        figure.tight_layout()
        rows = "; ".join(" ".join(_number(round(v, 3)) for v in row) for row in kernel)
        caption = (f"kernel [{rows}] (sum {_number(round(kernel.sum(), 3))}); feature map "
                   f"{feature_map.shape}, from {_number(feature_map.min())} to "
                   f"{_number(feature_map.max())} ({shown})")
        if feature_map.shape != self.photo.shape:
            caption += "<br>" + _red(f"'same' should keep the photo's shape {self.photo.shape}")
        return caption


def kernel_editor(image, *, kernel="Sobel x", operation="correlate"):
    """Type a 3×3 kernel (or pick a preset) and see your filter applied to ``image``.

    The nine boxes are the kernel's weights; the presets are the identity, a box
    blur, Sobel x and y, and sharpen. The right panel is your
    ``cnnlab.signal.correlate2d`` (or ``convolve2d``) of the image with the kernel in
    ``'same'`` mode: in the photo's grey levels for a kernel that keeps the brightness
    (weights adding up to 1), in grey levels scaled to fit for any other map without
    negative values, else signed, red positive and blue negative.

    Parameters
    ----------
    image : array_like, 2-D
        A grey-level picture, at least 3×3.
    kernel : str or array_like, optional
        The starting kernel: a preset name or a 3×3 array.
    operation : {'correlate', 'convolve'}, optional
        The operation shown first (a toggle switches).

    Returns
    -------
    Explorer

    Raises
    ------
    ValueError
        If ``image`` is not a real 2-D array of at least 3×3, ``kernel`` is neither a
        preset nor a 3×3 real array, or ``operation`` is not one of the two.
    """
    return KernelEditor(image, kernel, operation)


# --- 4. where max pooling's gradient goes ---------------------------------------------
