"""A student's release in JupyterLab: a stub's test cell says so; a solution passes it.

One exercise per assignment: the first of ps1 (notebook 01), ps2 (03) and ps3 (04).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import NamedTuple

import nbformat
import pytest

from autograder.submissions import patch_function, solve
from tests.browser.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Exercise(NamedTuple):
    assignment: str
    notebook: str
    module: str      # the student's file, relative to cnnlab/
    function: str    # the exercise solved in the browser
    following: str   # the next exercise, still a stub
    wrong: tuple[str, ...] = ()  # a wrong body to try first: its pass line must not appear


EXERCISES = [
    Exercise("ps1", "01_convolution_1d.ipynb", "signal.py", "correlate", "convolve",
             wrong=("    return np.zeros(1)",)),
    Exercise("ps2", "03_pooling_and_backprop.ipynb", "pooling.py", "max_pool2d_forward",
             "avg_pool2d_forward"),
    Exercise("ps3", "04_lenet5_mnist.ipynb", "layers/dense.py", "linear_forward",
             "linear_backward"),
]


def cell_index(notebook, grade_id: str) -> int:
    return next(i for i, cell in enumerate(notebook.cells)
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_one_exercise_per_assignment_with_notebooks():
    from autograder.course import available_assignments
    assert {e.assignment for e in EXERCISES} == {"ps1", "ps2", "ps3"}
    assert {e.assignment for e in EXERCISES} <= {a.name for a in available_assignments()}


def assert_passes(test_cell, function: str) -> None:
    text = test_cell.inner_text()
    assert f"✔ {function}:" in text and "not implemented" not in text, text


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.assignment)
def test_stub_then_solution(lab, page, tmp_path, exercise):
    course = tmp_path / "course"
    subprocess.run([sys.executable, "-m", "autograder", "build", exercise.assignment,
                    "--course", str(course)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    student = tmp_path / exercise.assignment
    shutil.copytree(course / "release" / exercise.assignment, student)
    release = nbformat.read(student / exercise.notebook, as_version=4)
    first = cell_index(release, f"test_{exercise.function}")
    second = cell_index(release, f"test_{exercise.following}")

    server = lab(student)
    server.open(page, exercise.notebook)
    server.run_all(page, timeout=600)
    test_cell = server.cell(page, first)
    test_cell.scroll_into_view_if_needed()
    page.shot("stub")
    assert f"`{exercise.function}` is not implemented yet" in test_cell.inner_text()
    with pytest.raises(AssertionError):  # the check below, on a stub
        assert_passes(test_cell, exercise.function)

    module = student / "cnnlab" / exercise.module
    if exercise.wrong:  # a wrong answer: the test cell says so, without the pass line
        released = module.read_text(encoding="utf-8")
        patch_function(student / "cnnlab", exercise.module, exercise.function,
                       list(exercise.wrong))
        server.run_all(page, timeout=600, restart=True)
        test_cell = server.cell(page, first)
        test_cell.scroll_into_view_if_needed()
        page.shot("wrong")
        assert f"{exercise.function} is wrong on" in test_cell.inner_text(), test_cell.inner_text()
        with pytest.raises(AssertionError, match=f"{exercise.function} is wrong on"):
            assert_passes(test_cell, exercise.function)
        module.write_text(released, encoding="utf-8")

    solve(student / "cnnlab", exercise.module, [exercise.function])
    server.run_all(page, timeout=600, restart=True)
    test_cell = server.cell(page, first)
    test_cell.scroll_into_view_if_needed()
    page.shot("solved")
    assert_passes(test_cell, exercise.function)
    # the next exercise is still a stub, and says so
    assert (f"`{exercise.following}` is not implemented yet"
            in server.cell(page, second).inner_text())
