"""The notebooks' explorers: they redraw when a control moves, use the student's
functions, say when those disagree with the picture, and show a PNG where no widget can."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

import cnnlab.pooling
import cnnlab.signal
from cnnlab import widgets
from cnnlab.widgets.kernel_editor import PRESETS

PNG = b"\x89PNG\r\n\x1a\n"
F, G = [1, 2, 3, 4, 5], [1, 2, 3]
IMAGE, KERNEL = np.arange(1, 10).reshape(3, 3), np.array([[1, 2], [3, 4]])


@pytest.fixture(scope="module")
def photo():
    return np.linspace(0, 1, 40 * 30).reshape(40, 30) ** 2


def test_importing_the_module_imports_neither_ipywidgets_nor_matplotlib():
    code = ("import sys, cnnlab, cnnlab.widgets; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"


def test_geometry_caption_and_picture_follow_the_sliders():
    explorer = widgets.geometry_explorer()
    first = bytes(explorer.image.value)
    assert first.startswith(PNG)
    assert "conv_output_size(7, 3, stride=1, padding=0, dilation=1, strict=False) = 5" \
        in explorer.caption.value
    explorer.controls["stride"].value = 2
    assert "stride=2" in explorer.caption.value and "= 3</b>" in explorer.caption.value
    assert bytes(explorer.image.value).startswith(PNG) and bytes(explorer.image.value) != first
    explorer.controls["padding"].value = 1
    assert "= 4</b>" in explorer.caption.value  # (7 + 2 - 3) // 2 + 1


def test_geometry_says_visibly_when_the_sizes_do_not_fit():
    explorer = widgets.geometry_explorer(n=7, kernel_size=3, stride=3)
    assert "= 2</b>" in explorer.caption.value
    assert "input rows/columns [6] are never looked at" in explorer.caption.value
    explorer.controls["strict"].value = True
    assert "raises" in explorer.caption.value and "does not fit" in explorer.caption.value
    assert "color:#c00" in explorer.caption.value
    explorer.controls["kernel_size"].value = 7
    explorer.controls["dilation"].value = 2
    assert "no window fits" in explorer.caption.value
    assert "the kernel spans 13 samples" in explorer.caption.value  # the function's message


def test_geometry_uses_the_students_function_and_flags_a_wrong_one(monkeypatch):
    monkeypatch.setattr(cnnlab.signal, "conv_output_size", lambda n, k, **_: n - k)  # no + 1
    explorer = widgets.geometry_explorer()
    assert "= 4</b>" in explorer.caption.value
    assert "but 5 windows fit in the picture" in explorer.caption.value


def test_a_stub_stops_the_cell_and_a_later_error_shows_in_the_caption(monkeypatch):
    def stub(*args, **kwargs):
        raise NotImplementedError("conv_output_size: exercise 3 of 02_convolution_2d.ipynb")

    real = cnnlab.signal.conv_output_size
    monkeypatch.setattr(cnnlab.signal, "conv_output_size", stub)
    with pytest.raises(NotImplementedError, match="exercise 3"):
        widgets.geometry_explorer()  # the notebook's skip_unfinished names the exercise
    monkeypatch.setattr(cnnlab.signal, "conv_output_size", real)
    explorer = widgets.geometry_explorer()
    monkeypatch.setattr(cnnlab.signal, "conv_output_size", stub)
    explorer.controls["n"].value = 9
    assert "NotImplementedError: conv_output_size: exercise 3" in explorer.caption.value


def test_headless_display_carries_the_picture_as_a_png():
    explorer = widgets.geometry_explorer()
    bundle = explorer._repr_mimebundle_()
    assert "model_id" in bundle["application/vnd.jupyter.widget-view+json"]
    assert base64.b64decode(bundle["image/png"]) == bytes(explorer.image.value)
    assert bundle["text/plain"].startswith("GeometryExplorer: conv_output_size(7, 3,")
    assert "<" not in bundle["text/plain"]


@pytest.mark.slow
def test_a_notebook_run_headless_keeps_a_static_figure(monkeypatch):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from cnnlab import widgets\nwidgets.geometry_explorer(stride=2)")])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    (output,) = notebook.cells[0].outputs
    assert base64.b64decode(output.data["image/png"]).startswith(PNG)
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert "= 3" in output.data["text/plain"]
    # `make demo`'s offline HTML copy shows that picture, not a widget it cannot load
    tools = str(Path(__file__).resolve().parents[1] / "tools")
    monkeypatch.syspath_prepend(tools)
    from run_notebooks import keep_static_pictures

    page = HTMLExporter(embed_images=True).from_notebook_node(notebook)[0]
    assert "application/vnd.jupyter.widget-view+json\">" in page  # what it would show
    keep_static_pictures(notebook)
    page = HTMLExporter(embed_images=True).from_notebook_node(notebook)[0]
    assert "application/vnd.jupyter.widget-view+json\">" not in page
    assert f"data:image/png;base64,{output.data['image/png']}" in page.replace("\n", "")


def test_flip_and_slide_1d_steps_through_the_students_output():
    explorer = widgets.flip_and_slide_1d(F, G)
    assert "z[0] = 0·3 + 0·2 + 1·1 = 1</b>; your convolve gives 1 here too" \
        in explorer.caption.value
    explorer.controls["k"].value = 2
    assert "z[2] = 1·3 + 2·2 + 3·1 = 10" in explorer.caption.value  # the flipped kernel
    explorer.controls["operation"].value = "correlate"
    assert "z[2] = 1·1 + 2·2 + 3·3 = 14</b>; your correlate gives 14" in explorer.caption.value
    assert explorer.controls["k"].max == 6


def test_flip_and_slide_1d_flags_a_convolve_that_does_not_flip(monkeypatch):
    monkeypatch.setattr(cnnlab.signal, "convolve", cnnlab.signal.correlate)
    explorer = widgets.flip_and_slide_1d(F, G)
    explorer.controls["k"].value = 2
    assert "= 10</b>" in explorer.caption.value
    assert "but your convolve gives 14 here" in explorer.caption.value


def test_flip_and_slide_2d_gives_the_lecture_entry():
    explorer = widgets.flip_and_slide_2d(IMAGE, KERNEL)
    explorer.controls["index"].value = 10  # (2, 2) of the 4x4 'full' output
    assert "Z[2, 2] = 5·4 + 6·3 + 8·2 + 9·1 = 63</b>; your convolve2d gives 63" \
        in explorer.caption.value
    explorer.controls["operation"].value = "correlate"
    assert "= 77</b>; your correlate2d gives 77" in explorer.caption.value


def test_flip_and_slide_2d_flags_a_wrong_shape(monkeypatch):
    monkeypatch.setattr(cnnlab.signal, "convolve2d", lambda a, b, mode: np.zeros((3, 3)))
    explorer = widgets.flip_and_slide_2d(IMAGE, KERNEL)
    assert "returned shape (3, 3), 'full' has (4, 4)" in explorer.caption.value


def test_kernel_editor_presets_fill_the_boxes_and_edits_make_it_custom(photo, monkeypatch):
    calls = []

    def spy(name, real):
        def function(in1, in2, mode="full"):
            calls.append((name, np.array(in2), mode))
            return real(in1, in2, mode)
        return function

    for name in ("correlate2d", "convolve2d"):
        monkeypatch.setattr(cnnlab.signal, name, spy(name, getattr(cnnlab.signal, name)))
    editor = widgets.kernel_editor(photo)
    assert calls[-1][0] == "correlate2d" and calls[-1][2] == "same"
    assert "signed: red > 0 > blue" in editor.caption.value
    assert np.array_equal(calls[-1][1], PRESETS["Sobel x"])
    editor.controls["preset"].value = "box blur"
    assert len(calls) == 2, "one redraw for nine new weights"
    assert np.allclose(calls[-1][1], 1 / 9) and "the photo's grey levels" in editor.caption.value
    editor.cells[4].value = 2.0
    assert editor.controls["preset"].value == "custom"
    assert calls[-1][1][1, 1] == 2.0 and "scaled to fit" in editor.caption.value
    editor.cells[4].value = 1 / 9
    assert editor.controls["preset"].value == "box blur"  # the preset's weights again
    editor.controls["operation"].value = "convolve"
    assert calls[-1][0] == "convolve2d"


def test_kernel_editor_feature_map_is_the_students(photo, monkeypatch):
    monkeypatch.setattr(cnnlab.signal, "correlate2d", lambda a, b, mode: np.full((2, 2), 7.0))
    editor = widgets.kernel_editor(photo, kernel="identity")
    assert "from 7 to 7" in editor.caption.value
    assert "'same' should keep the photo's shape (40, 30)" in editor.caption.value


def test_max_pool_explorer_routes_the_gradient_to_the_maximum():
    explorer = widgets.max_pool_explorer()
    assert "output (0, 0) is the maximum 6" in explorer.caption.value
    assert explorer.controls["index"].max == 8  # a 3x3 output
    explorer.controls["index"].value = 4
    assert "output (1, 1) is the maximum 4" in explorer.caption.value
    explorer.controls["stride"].value = 1  # overlapping windows: a 5x5 output
    assert explorer.controls["index"].max == 24
    explorer.controls["everywhere"].value = True
    assert "add up" in explorer.caption.value and "color:#c00" not in explorer.caption.value


def test_max_pool_explorer_flags_a_backward_pass_that_loses_the_gradient(monkeypatch):
    monkeypatch.setattr(cnnlab.pooling, "max_pool2d_backward",
                        lambda dout, cache: np.zeros(cache["x"].shape))
    explorer = widgets.max_pool_explorer()
    assert "but your dx adds up to 0, not 1" in explorer.caption.value


def test_max_pool_explorer_flags_a_gradient_on_the_wrong_entry(monkeypatch):
    def first_entry(dout, cache):
        dx = np.zeros(cache["x"].shape)
        dx[..., 0, 0] = dout.sum()
        return dx

    monkeypatch.setattr(cnnlab.pooling, "max_pool2d_backward", first_entry)
    explorer = widgets.max_pool_explorer()
    assert "not the window's maximum" in explorer.caption.value


@pytest.mark.parametrize("call, match", [
    (lambda: widgets.geometry_explorer(n=20), r"n must be between 1 and 16 .*got 20"),
    (lambda: widgets.geometry_explorer(stride=1.5), r"stride must be an integer, got 1.5"),
    (lambda: widgets.geometry_explorer(strict="yes"), r"strict must be True or False"),
    (lambda: widgets.flip_and_slide_1d(F, G, operation="conv"),
     r"operation must be one of 'convolve', 'correlate', got 'conv'"),
    (lambda: widgets.flip_and_slide_1d(G, F), r"len\(kernel\) <= len\(signal\).*got 5 and 3"),
    (lambda: widgets.flip_and_slide_1d([[1, 2]], G), r"signal must be 1-D"),
    (lambda: widgets.flip_and_slide_2d(np.zeros((9, 9)), KERNEL), r"image must be at most 8×8"),
    (lambda: widgets.flip_and_slide_2d(IMAGE, [1, 2]), r"kernel must be 2-D"),
    (lambda: widgets.kernel_editor(np.zeros((2, 5))), r"image must be at least 3×3"),
    (lambda: widgets.kernel_editor(np.zeros((9, 9)), kernel="blur"),
     r"kernel must be one of 'identity', .*got 'blur'"),
    (lambda: widgets.kernel_editor(np.zeros((9, 9)), kernel=np.ones((5, 5))),
     r"kernel must be a preset name or a 3×3 array, got shape \(5, 5\)"),
    (lambda: widgets.max_pool_explorer(np.zeros((12, 4))), r"image must be at most 10×10"),
    (lambda: widgets.max_pool_explorer(size=7), r"size must be between 1 and 6"),
    (lambda: widgets.max_pool_explorer(stride=0), r"stride must be between 1 and 4"),
])
def test_bad_arguments_get_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
