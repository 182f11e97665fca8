"""Padding, stride and dilation: the windows of a convolution, and your ``conv_output_size``."""

from __future__ import annotations

import html

import numpy as np

from cnnlab.widgets._explorer import (
    WINDOW_COLOURS,
    Explorer,
    _checked_range,
    _red,
    _student,
    _width_ratios,
)


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
