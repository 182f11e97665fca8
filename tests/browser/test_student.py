"""A student's ps1 release in JupyterLab: a stub's test cell says so; a solution passes it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.submissions import solve
from tests.browser.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "01_convolution_1d.ipynb"


def cell_index(notebook, grade_id: str) -> int:
    return next(i for i, cell in enumerate(notebook.cells)
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_ps1_stub_then_solution(lab, page, tmp_path):
    course = tmp_path / "course"
    subprocess.run([sys.executable, "-m", "autograder", "build", "ps1", "--course", str(course)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    student = tmp_path / "ps1"
    shutil.copytree(course / "release" / "ps1", student)
    release = nbformat.read(student / NOTEBOOK, as_version=4)
    first, second = cell_index(release, "test_correlate"), cell_index(release, "test_convolve")

    server = lab(student)
    server.open(page, NOTEBOOK)
    server.run_all(page, timeout=300)
    test_cell = server.cell(page, first)
    test_cell.scroll_into_view_if_needed()
    page.shot("stub")
    assert "`correlate` is not implemented yet" in test_cell.inner_text()

    solve(student / "cnnlab", "signal.py", ["correlate"])
    server.run_all(page, timeout=300, restart=True)
    test_cell = server.cell(page, first)
    test_cell.scroll_into_view_if_needed()
    page.shot("solved")
    text = test_cell.inner_text()
    assert "✔ correlate:" in text and "not implemented" not in text, text
    # the next exercise is still a stub, and says so
    assert "`convolve` is not implemented yet" in server.cell(page, second).inner_text()
