"""The machinery every explorer shares: controls, caption, picture, and a static fallback."""

from __future__ import annotations

import base64
import html
import importlib
import io
import re
from contextlib import contextmanager

import numpy as np

from cnnlab._validate import check_int

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

def _width_ratios(input_size: int, output_size: int) -> dict:
    """Subplot widths in proportion to the grids, so a cell is about as wide in both."""
    return {"width_ratios": [input_size + 1, max(output_size, 2) + 1]}
