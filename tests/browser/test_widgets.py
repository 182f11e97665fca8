"""Notebook 02's explorers are live in JupyterLab: a slider moved with the keyboard
makes the geometry explorer recompute the output size and redraw; a preset and a
typed weight change the kernel editor's kernel."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from tests.browser.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "02_convolution_2d.ipynb"
SIZE = re.compile(r"= (\d+): a \d+×\d+ output")


def output_size(caption) -> int:
    found = SIZE.search(caption.inner_text())
    assert found, caption.inner_text()
    return int(found.group(1))


def test_moving_the_stride_slider_updates_the_output_size(lab, page, tmp_path):
    # (and the kernel editor further down the same notebook answers its controls)
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    cells = nbformat.read(folder / NOTEBOOK, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if c.get("id") == "nb02-geometry-explorer")
    editor_index = next(i for i, c in enumerate(cells) if c.get("id") == "nb02-kernel-editor")
    server = lab(folder)
    server.open(page, NOTEBOOK)
    server.run_all(page, timeout=420)
    cell = server.cell(page, index)
    cell.scroll_into_view_if_needed()
    output = cell.locator(".jp-OutputArea-output")
    slider = output.locator(".widget-slider", has=page.locator("label", has_text="stride"))
    slider.wait_for(timeout=30_000)  # the widget itself, not its static PNG
    assert "GeometryExplorer:" not in output.first.inner_text()  # not the text fallback
    caption = output.locator(".widget-html-content").first
    picture = output.locator(".widget-image")
    assert output_size(caption) == 5  # n = 7, k = 3, stride 1
    before = picture.get_attribute("src")
    page.shot("stride-1")

    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")  # stride 2
    page.wait_for_function(
        """el => /= 3: a 3×3 output/.test(el.textContent)""", arg=caption.element_handle(),
        timeout=30_000)
    assert slider.locator(".widget-readout").inner_text().strip() == "2"
    assert output_size(caption) == 3  # (7 - 3) // 2 + 1
    assert picture.get_attribute("src") != before  # the picture was redrawn too
    page.shot("stride-2")

    page.keyboard.press("ArrowRight")  # stride 3: a pixel column left over
    page.wait_for_function("""el => /= 2: a 2×2 output/.test(el.textContent)""",
                           arg=caption.element_handle(), timeout=30_000)
    assert "never looked at" in caption.inner_text()
    page.shot("stride-3")

    editor = server.cell(page, editor_index).locator(".jp-OutputArea-output")
    editor.locator(".widget-dropdown select").scroll_into_view_if_needed()
    weights = editor.locator(".widget-text input")
    assert weights.count() == 9 and weights.nth(0).input_value() == "1"  # Sobel x
    caption = editor.locator(".widget-html-content").first
    editor.locator(".widget-dropdown select").select_option("box blur")
    page.wait_for_function("""el => /grey levels/.test(el.textContent)""",
                           arg=caption.element_handle(), timeout=30_000)
    assert float(weights.nth(4).input_value()) == pytest.approx(1 / 9)
    weights.nth(4).fill("2")
    weights.nth(4).press("Enter")
    page.wait_for_function("""el => /sum 2.89/.test(el.textContent)""",
                           arg=caption.element_handle(), timeout=30_000)
    assert "scaled to fit" in caption.inner_text()
    assert editor.locator(".widget-dropdown select").input_value() == "custom"
    page.shot("kernel-editor")
