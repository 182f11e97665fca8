"""Interactive figures for the notebooks: move a slider, see the picture change.

Given code, not an exercise. Every explorer calls *your* functions from ``cnnlab``
(looked up each time it redraws, so a saved change shows at the next move): what you
see is your own implementation at work, and when your function disagrees with the
picture, the caption says so in red.

- :func:`geometry_explorer`: padding, stride and dilation, and your ``conv_output_size``;
- :func:`flip_and_slide_1d` and :func:`flip_and_slide_2d`: one output entry of your
  ``convolve``/``correlate`` (``convolve2d``/``correlate2d``) as a sum of products;
- :func:`kernel_editor`: type a 3×3 kernel, see your ``correlate2d`` filter a photo;
- :func:`max_pool_explorer`: where your ``max_pool2d_backward`` sends a gradient.

Each returns an :class:`Explorer`: controls, a caption and a picture. In JupyterLab
moving a control redraws the picture. Where no widget can be shown (a notebook run
headless, an HTML copy, a viewer without a kernel) the same output carries the first
picture as a plain PNG, so the notebook still shows it. ipywidgets and matplotlib
are imported only when an explorer is built: ``import cnnlab`` needs NumPy alone.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import re
from contextlib import contextmanager

import numpy as np

from cnnlab._validate import as_real_array, check_int

PRESETS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "Sobel x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "Sobel y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}
LECTURE_POOL_INPUT = [[1, 1, 2, 4, 0, 3], [5, 6, 7, 8, 1, 2], [3, 2, 1, 0, 4, 6],
                      [1, 2, 3, 4, 5, 1], [0, 7, 2, 2, 3, 3], [4, 1, 6, 0, 2, 9]]
WINDOW_COLOURS = ("C3", "C0", "C2")  # the first windows of a row, and their output cells


def _student(module: str, name: str):
    """``cnnlab.<module>.<name>`` as it is now: the student's own function."""
    return getattr(importlib.import_module(f"cnnlab.{module}"), name)


def _checked_range(value, name: str, low: int, high: int) -> int:
    value = check_int(value, name)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (the slider's range), "
                         f"got {value}")
    return value


def _checked_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _number(value) -> str:
    """A compact label for an array entry: 3, 2.5, -0.333."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _red(text: str) -> str:
    return f"<span style='color:#c00'>{html.escape(text, quote=False)}</span>"


class Explorer:
    """Controls above a caption and a picture, redrawn whenever a control changes.

    ``controls`` maps each parameter of :meth:`draw` to its widget; ``arrange`` is
    the widget that lays them out (default: one row). A subclass's ``draw(figure,
    **values)`` draws on an empty matplotlib figure and returns the caption (HTML).
    Displayed in a notebook, an explorer is its widget, with the current picture as
    a PNG for frontends that cannot show widgets.
    """

    figsize = (9.0, 3.6)
    dpi = 90

    def __init__(self, controls: dict, arrange=None):
        import ipywidgets

        self.controls = controls
        self.image = ipywidgets.Image(format="png")
        self.caption = ipywidgets.HTML()
        row = arrange if arrange is not None else ipywidgets.HBox(list(controls.values()))
        self.widget = ipywidgets.VBox([row, self.caption, self.image])
        self._quiet = False
        for control in controls.values():
            control.observe(self._changed, names="value")
        self.update()  # the first picture: an error here (a stub, say) stops the cell

    @contextmanager
    def quiet(self):
        """Change several controls without a redraw for each (the caller redraws once)."""
        was, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = was

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=self.figsize)
        FigureCanvasAgg(figure)
        with self.quiet():  # draw may set a slider's range
            caption = self.draw(figure, **self.values())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=self.dpi)
        self.image.value = buffer.getvalue()
        self.caption.value = caption

    def _changed(self, change) -> None:
        if self._quiet:
            return
        try:
            self.update()
        except Exception as error:  # noqa: BLE001 -- shown in the caption, not lost in a log
            self.caption.value = _red(f"{type(error).__name__}: {error}")

    def draw(self, figure, **values) -> str:
        raise NotImplementedError("an Explorer subclass draws its own picture")

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.widget._repr_mimebundle_()
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        text = re.sub(r"<[^>]*>", "", self.caption.value.replace("<br>", "\n"))
        bundle["text/plain"] = f"{type(self).__name__}: {html.unescape(text)}"
        return bundle


# --- 1. padding, stride and dilation --------------------------------------------------

class GeometryExplorer(Explorer):
    figsize = (9.0, 4.4)

    def __init__(self, n, kernel_size, stride, padding, dilation, strict):
        import ipywidgets

        def slider(value, name, low, high):
            return ipywidgets.IntSlider(value=_checked_range(value, name, low, high), min=low,
                                        max=high, description=name,
                                        style={"description_width": "initial"})

        if not isinstance(strict, bool):
            raise ValueError(f"strict must be True or False, got {strict!r}")
        controls = {"n": slider(n, "n", 1, 16),
                    "kernel_size": slider(kernel_size, "kernel_size", 1, 7),
                    "padding": slider(padding, "padding", 0, 4),
                    "stride": slider(stride, "stride", 1, 5),
                    "dilation": slider(dilation, "dilation", 1, 4),
                    "strict": ipywidgets.Checkbox(value=strict, description="strict")}
        rows = ipywidgets.VBox([ipywidgets.HBox([controls[k] for k in ("n", "kernel_size",
                                                                       "padding")]),
                                ipywidgets.HBox([controls[k] for k in ("stride", "dilation",
                                                                       "strict")])])
        super().__init__(controls, rows)

    def draw(self, figure, n, kernel_size, stride, padding, dilation, strict):
        size, span = n + 2 * padding, dilation * (kernel_size - 1) + 1
        starts = np.arange(0, size - span + 1, stride)  # empty when the kernel is too big
        call = (f"conv_output_size({n}, {kernel_size}, stride={stride}, padding={padding}, "
                f"dilation={dilation}, strict={strict})")
        try:
            answer = _student("signal", "conv_output_size")(n, kernel_size, stride=stride,
                                                             padding=padding, dilation=dilation,
                                                             strict=strict)
            said = f"<b>{call} = {answer}</b>: a {answer}×{answer} output"
        except ValueError as error:
            answer, said = None, f"<b>{html.escape(call)}</b> raises " + _red(str(error))
        covered = np.zeros(size, bool)
        for start in starts:
            covered[start:start + span:dilation] = True
        unseen = [i - padding for i in range(padding, padding + n) if not covered[i]]
        notes = [said]
        if len(starts) == 0:
            notes.append(_red(f"the dilated kernel spans {span} pixels, the padded input has "
                              f"only {size}: no window fits"))
        if answer is not None and answer != len(starts):
            notes.append(_red(f"but {len(starts)} windows fit in the picture: check your "
                              "conv_output_size"))
        if len(starts) and unseen:
            notes.append(_red(f"input rows/columns {unseen} are never looked at (hatched)"))
        left, right = figure.subplots(1, 2, **_width_ratios(size, len(starts)))
        self._draw_input(left, n, kernel_size, padding, dilation, span, starts, covered)
        self._draw_output(right, len(starts), answer)
        figure.tight_layout()
        return "<br>".join(notes)

    @staticmethod
    def _draw_input(ax, n, kernel_size, padding, dilation, span, starts, covered):
        from matplotlib.patches import Rectangle

        size = n + 2 * padding
        for r in range(size):
            for c in range(size):
                is_pad = min(r, c) < padding or max(r, c) >= size - padding
                ax.add_patch(Rectangle((c, r), 1, 1, fc="0.82" if is_pad else "white",
                                       ec="0.55", lw=0.5))
                if not is_pad and not (covered[r] and covered[c]):
                    ax.add_patch(Rectangle((c, r), 1, 1, fc="none", ec="C3", hatch="///",
                                           lw=0))
        if len(starts) == 0:  # the kernel, too big, drawn from the corner
            ax.add_patch(Rectangle((0.08, 0.08), span - 0.16, span - 0.16, fill=False,
                                   ec="C3", lw=2, ls=":"))
        for start, colour in zip(starts, WINDOW_COLOURS):
            ax.add_patch(Rectangle((start + 0.08, 0.08), span - 0.16, span - 0.16,
                                   fill=False, ec=colour, lw=2))
        first = starts[0] if len(starts) else 0
        taps = first + np.arange(kernel_size) * dilation + 0.5
        ax.plot(*np.meshgrid(taps, np.arange(kernel_size) * dilation + 0.5), "s",
                color="C3", ms=4, alpha=0.7)
        centres = starts + span / 2
        ax.plot(*np.meshgrid(centres, centres), "o", color="k", ms=3)
        limit = max(size, span)
        ax.set_xlim(-0.2, limit + 0.2)
        ax.set_ylim(limit + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"input {n}×{n}, padded to {size}×{size} (grey)\n"
                     f"kernel {kernel_size}×{kernel_size} spans {span}×{span}; "
                     f"dots: window centres", fontsize=9)

    @staticmethod
    def _draw_output(ax, windows, answer):
        from matplotlib.patches import Rectangle

        for r in range(windows):
            for c in range(windows):
                colour = WINDOW_COLOURS[c] if r == 0 and c < len(WINDOW_COLOURS) else "white"
                ax.add_patch(Rectangle((c, r), 1, 1, fc=colour, alpha=0.5 if r == 0 else 1,
                                       ec="0.4", lw=0.5))
        ax.set_xlim(-0.2, max(windows, 1) + 0.2)
        ax.set_ylim(max(windows, 1) + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
        yours = "raises ValueError" if answer is None else f"says {answer}"
        ax.set_title(f"output {windows}×{windows}\n(your conv_output_size {yours})", fontsize=9)


def _width_ratios(input_size: int, output_size: int) -> dict:
    """Subplot widths in proportion to the grids, so a cell is about as wide in both."""
    return {"width_ratios": [input_size + 1, max(output_size, 2) + 1]}


def geometry_explorer(*, n=7, kernel_size=3, stride=1, padding=0, dilation=1, strict=False):
    """Sliders for the input size, kernel size, padding, stride and dilation.

    The picture is the padded input (grey: padding) with the first windows and every
    window's centre, and the output grid; the caption is what your
    ``cnnlab.signal.conv_output_size`` says for the sliders' values, in red when it
    raises (a kernel that does not fit, or ``strict`` and a stride that leaves pixels
    over) or disagrees with the number of windows drawn. Hatched pixels are never
    looked at by any window.

    Parameters
    ----------
    n, kernel_size, stride, padding, dilation : int, optional
        Starting values of the sliders (``n`` 1..16, ``kernel_size`` 1..7,
        ``stride`` 1..5, ``padding`` 0..4, ``dilation`` 1..4).
    strict : bool, optional
        Starting value of the ``strict`` checkbox.

    Returns
    -------
    Explorer
        Shown as the widget when it is the value of a notebook cell.

    Raises
    ------
    ValueError
        If a starting value is not an integer in its slider's range.
    NotImplementedError
        If ``conv_output_size`` is still a stub.
    """
    return GeometryExplorer(n, kernel_size, stride, padding, dilation, strict)


# --- 2. flip and slide ----------------------------------------------------------------

def _operation_buttons(operation: str):
    import ipywidgets

    _checked_choice(operation, "operation", ("convolve", "correlate"))
    return ipywidgets.ToggleButtons(options=["convolve", "correlate"], value=operation,
                                    description="operation")


def _position_slider(count: int, description: str):
    import ipywidgets

    return ipywidgets.IntSlider(value=0, min=0, max=count - 1, description=description,
                                continuous_update=True)


def _agreement(name: str, yours, products_sum) -> str:
    if np.isclose(yours, products_sum):
        return f"your {name} gives {_number(yours)} here too"
    return _red(f"but your {name} gives {_number(yours)} here")


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
