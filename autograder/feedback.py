"""Feedback HTML without hidden tests and with bounded outputs.

``nbgrader generate_feedback`` renders the autograded notebooks as they are,
hidden tests included. Here it renders copies instead: hidden-test code (and
any output that shows it) taken out, outputs capped, and a note after each test
cell whose score came out differently in the sandbox, or that failed there.
Scores and comments come from the gradebook, as usual.
"""

from __future__ import annotations

import html as html_module
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograder.build import notebook_names
from autograder.grading import load_results
from autograder.nbg import base_env, run_nbgrader
from autograder.outputs import cap_notebook, strip_hidden_tests
from autograder.testcells import assignment_cells, hidden_lines

MAX_FEEDBACK_BYTES = 8_000_000


def _note_cell(text: str):
    return nbformat.v4.new_markdown_cell("> **Autograder:** " + text.replace("\n", "\n> "))


def prepare(notebook, result: dict | None) -> None:
    """Strip hidden tests, cap outputs, and add the sandbox's verdict after test cells."""
    strip_hidden_tests(notebook)
    cap_notebook(notebook)
    if not result:
        return
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        entry = (result.get("cells") or {}).get(grade_id) if grade_id else None
        sandbox = (entry or {}).get("sandbox")
        if not sandbox:
            continue
        if not sandbox["passed"]:
            message = (sandbox.get("message") or "").split(" on random case")[0]
            cells.append(_note_cell(
                "your package was tested again, outside this notebook, on the visible and the "
                f"hidden cases: **failed** ({sandbox['failed_cases']} of {sandbox['cases']} "
                f"cases), so this test scores 0.\n\nFirst problem: `{message[:400]}`"))
        elif entry.get("notebook_score") is not None and \
                entry["notebook_score"] != sandbox["score"]:
            cells.append(_note_cell("your package passed every case of this test when run "
                                    "outside the notebook, so it scores full marks."))
    notebook.cells = cells


def placeholder(name: str, reason: str, result: dict | None):
    lines = [f"# {name}", "", f"This notebook could not be graded: {reason}", ""]
    for grade_id, entry in sorted(((result or {}).get("cells") or {}).items()):
        if entry.get("sandbox"):
            verdict = "passed" if entry["sandbox"]["passed"] else "failed"
            lines.append(f"* `{grade_id}`: {verdict} when your package was tested "
                         f"({entry['sandbox']['score']:g}/{entry['points']:g})")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n".join(lines))])


def generate_feedback(course: Path, assignment: str, students: list[str] | None = None,
                      timeout: float = 1800) -> dict[str, list[Path]]:
    """Write ``feedback/<student>/<assignment>/*.html``; return the files per student."""
    course = Path(course).resolve()
    results = load_results(course, assignment)
    notebooks = notebook_names(course, assignment)
    secret = {line for cell in assignment_cells(course / "source" / assignment, notebooks)
              for line in hidden_lines(cell.source)}
    autograded = course / "autograded"
    chosen = sorted(p.parent.name for p in autograded.glob(f"*/{assignment}") if p.is_dir())
    chosen = [s for s in chosen if students is None or s in students]
    produced: dict[str, list[Path]] = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-feedback-") as scratch_name:
        scratch = Path(scratch_name)
        for student in chosen:
            result = results.get(student)
            dest = scratch / "autograded" / student / assignment
            dest.mkdir(parents=True)
            for nb in notebooks:
                source = autograded / student / assignment / f"{nb}.ipynb"
                if source.exists():
                    try:
                        notebook = nbformat.read(str(source), as_version=4)
                    except Exception as exc:
                        notebook = placeholder(nb, f"it cannot be read ({exc})", result)
                    else:
                        prepare(notebook, result)
                else:
                    run = ((result or {}).get("notebooks") or {}).get(nb, {})
                    notebook = placeholder(nb, run.get("reason") or "it was not autograded",
                                           result)
                nbformat.write(notebook, str(dest / f"{nb}.ipynb"))
            out = course / "feedback" / student / assignment
            if out.exists():
                shutil.rmtree(out)
        if chosen:
            args = ["generate_feedback", assignment, "--force",
                    f"--CourseDirectory.autograded_directory={scratch / 'autograded'}"]
            run = run_nbgrader(args, course, timeout, scratch / "feedback.log", env=base_env())
            if not run.ok:
                print("warning: nbgrader generate_feedback reported errors:\n"
                      + "\n".join(run.error_lines()))
    for student in chosen:
        files = sorted((course / "feedback" / student / assignment).glob("*.html"))
        for html in files:
            check_feedback(html, secret)
        produced[student] = files
    return produced


def check_feedback(html: Path, secret: set[str]) -> None:
    """Refuse feedback that is too large or shows a hidden test (never expected)."""
    size = html.stat().st_size
    if size > MAX_FEEDBACK_BYTES:
        html.unlink()
        raise RuntimeError(f"{html} is {size:,} bytes: removed (limit {MAX_FEEDBACK_BYTES:,})")
    text = html.read_text(encoding="utf-8", errors="replace")
    plain = html_module.unescape(re.sub(r"<[^>]+>", "", text))
    leaked = [line for line in secret if line in plain]
    if "HIDDEN TESTS" in plain or leaked:
        html.unlink()
        raise RuntimeError(f"{html} showed hidden tests: removed")
