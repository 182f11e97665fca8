"""The reference notebooks run to the end in JupyterLab, with figures and rendered maths."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from tests.browser.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every error, figure and formula in the page, as the reader sees them.
INSPECT = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map(p => p.textContent.trim());
    const errors = [...panel.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr'
                     && /Traceback|Error\\b/.test(o.textContent))
        .map(o => o.textContent.slice(0, 500));
    const figures = [...panel.querySelectorAll('.jp-OutputArea-output img')];
    const pictures = [...panel.querySelectorAll('.jp-RenderedMarkdown img')];
    const raw = [];
    for (const md of panel.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')) {
        const copy = md.cloneNode(true);
        copy.querySelectorAll('code, pre, mjx-container, script, .MathJax')
            .forEach(e => e.remove());
        if (copy.textContent.includes('$')) raw.push(copy.textContent.slice(0, 200));
    }
    return {prompts, errors, raw,
            figures: figures.length,
            brokenFigures: figures.filter(i => !i.complete || i.naturalWidth === 0).length,
            pictures: pictures.length,
            brokenPictures: pictures.filter(i => !i.complete || i.naturalWidth === 0).length,
            formulas: panel.querySelectorAll('mjx-container').length,
            // tqdm.auto's bars: ipywidgets' progress views, and any widget that failed
            bars: panel.querySelectorAll('.jp-OutputArea-output .widget-hprogress').length,
            fullBars: [...panel.querySelectorAll(
                '.jp-OutputArea-output .widget-hprogress .progress-bar')]
                .filter(b => parseFloat(b.style.width) >= 99.9).length,
            widgetErrors: [...panel.querySelectorAll('.jp-OutputArea-output')]
                .filter(o => /Error displaying widget|Loading widget|HBox\\(children/
                             .test(o.textContent))
                .map(o => o.textContent.slice(0, 200))};
}"""

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Seconds Run All may take in the browser on a 2-core machine (04 trains LeNet5 for
# about a minute, after timing this machine; the rest take well under a minute).
TIMEOUT = {"04": 900}


def run_reference(lab, page, tmp_path, notebook: str, timeout: float,
                  folder: Path | None = None) -> dict:
    if folder is None:
        folder = tmp_path / "notebooks"
        shutil.copytree(ROOT / "notebooks", folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = lab(folder)
    server.open(page, notebook)
    page.shot("opened")
    server.run_all(page, timeout=timeout)
    page.shot("ran", full_page=True)
    return page.evaluate(INSPECT)


def assert_ran_cleanly(seen: dict):
    assert seen["errors"] == [], "error output in the browser:\n" + "\n".join(seen["errors"])
    unrun = [i for i, p in enumerate(seen["prompts"]) if not any(c.isdigit() for c in p)]
    assert not unrun, f"code cells {unrun} did not run (prompts {seen['prompts']})"
    assert seen["figures"] > 0, "no figure in the outputs"
    assert seen["brokenFigures"] == 0, f"{seen['brokenFigures']} figure(s) did not load"
    assert seen["brokenPictures"] == 0, f"{seen['brokenPictures']} picture(s) did not load"
    assert seen["formulas"] > 0, "MathJax rendered no formula"
    assert seen["raw"] == [], "raw $ left in rendered markdown:\n" + "\n".join(seen["raw"])


def assert_bars_are_widgets(seen: dict):
    assert seen["widgetErrors"] == [], seen["widgetErrors"]
    assert seen["bars"] > 0, "no progress bar rendered as a widget"
    assert seen["fullBars"] > 0, seen  # at least one epoch's bar ran to the end


def test_every_notebook_is_tested():
    assert len(NOTEBOOKS) >= 5 and NOTEBOOKS[0] == "01_convolution_1d.ipynb", NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda name: name[:2])
def test_notebook_runs_in_jupyterlab(lab, page, tmp_path, notebook):
    seen = run_reference(lab, page, tmp_path, notebook, timeout=TIMEOUT.get(notebook[:2], 420))
    assert_ran_cleanly(seen)
    if notebook.startswith("04"):
        assert_bars_are_widgets(seen)


# What each check above must catch: a cell that raises (and the cells it leaves unrun),
# a formula MathJax could not typeset, a figure that does not load, no progress widget.
PLANTED = [
    nbformat.v4.new_markdown_cell("A formula, $e^{i\\pi} + 1 = 0$, typeset."),
    nbformat.v4.new_markdown_cell("A dollar MathJax leaves alone: it costs $5."),
    nbformat.v4.new_markdown_cell("![a picture that is not there](images/missing.png)"),
    nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                              "plt.plot([1, 2, 3]); plt.show()"),
    nbformat.v4.new_code_cell("raise ValueError('a planted failure')"),
    nbformat.v4.new_code_cell("print('after the failure')"),
]


def test_the_checks_fail_on_a_notebook_that_breaks_them(lab, page, tmp_path):
    folder = tmp_path / "planted"
    folder.mkdir()
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=PLANTED, metadata={"kernelspec": kernel}),
                   folder / "planted.ipynb")
    seen = run_reference(lab, page, tmp_path, "planted.ipynb", timeout=120, folder=folder)
    assert seen["figures"] == 1 and seen["formulas"] >= 1, seen  # the rest did render
    # each check in turn: the first that fails is passed over to reach the next
    with pytest.raises(AssertionError, match="a planted failure"):
        assert_ran_cleanly(seen)
    seen["errors"] = []
    with pytest.raises(AssertionError, match=r"code cells \[2\] did not run"):
        assert_ran_cleanly(seen)  # Run All stops at the error: the last cell never runs
    seen["prompts"] = seen["prompts"][:2]
    with pytest.raises(AssertionError, match="1 picture\\(s\\) did not load"):
        assert_ran_cleanly(seen)
    seen["brokenPictures"] = 0
    with pytest.raises(AssertionError, match="raw \\$ left"):
        assert_ran_cleanly(seen)
    with pytest.raises(AssertionError, match="no progress bar"):
        assert_bars_are_widgets(seen)
