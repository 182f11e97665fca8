"""End to end: the exercises' rules, through `python -m autograder grade` on ps1.

Each cheat below gives the right answer, so it loses its points only because of the
rule of the exercise it cheats on, and only that exercise's points (ps1 has 18
autograded points):

================  ==========================================================  =====
student           what it does                                                 auto
================  ==========================================================  =====
reference         the reference package                                        18
direct            correlate2d returns scipy.signal.correlate2d(...)            16
alias             convolve2d via a module-level ``from scipy import signal``   16
dynamic           fftconvolve found through sys.modules/importlib/getattr      15
                  with names built at run time (no syntax tree shows it)
ndimage           correlate via scipy.ndimage.correlate (convolve calls it)    16
numpy_convolve    convolve via numpy.convolve                                  17
checks_import     dilate_kernel answers with cnnlab.checks' reference          17
================  ==========================================================  =====
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from autograder.submissions import from_release, submission
from tests.test_autograder_e2e import I, fill_answers, prepend, run_cli

pytestmark = pytest.mark.slow

NB1, NB2 = "01_convolution_1d", "02_convolution_2d"
CHEATS = {
    # student: (function, body, module-level code, test cell, points, forbidden call, rule of)
    "direct": ("correlate2d", [I + "import scipy.signal",
                               I + "return scipy.signal.correlate2d(in1, in2, mode)"], "",
               "test_correlate2d", 2, "scipy.signal.correlate2d", f"exercise 1 of {NB2}"),
    "alias": ("convolve2d", [I + "return _s.convolve2d(in1, in2, mode)"],
              "from scipy import signal as _s\n", "test_convolve2d", 2,
              "scipy.signal.convolve2d", f"exercise 2 of {NB2}"),
    "dynamic": ("fftconvolve", [
        I + "import importlib, sys",
        I + "name = 'scipy.' + 'sig' + 'nal'",
        I + "module = sys.modules.get(name) or importlib.import_module(name)",
        I + "return getattr(module, 'fft' + 'convolve')(in1, in2, mode)"], "",
        "test_fftconvolve", 3, "scipy.signal.fftconvolve", f"exercise 4 of {NB1}"),
    "ndimage": ("correlate", [
        I + "import scipy.ndimage as ndi",
        I + "n1, n2 = in1.size, in2.size",
        I + "padded = np.pad(in1, (n2 - 1, n2 - 1))",
        I + "full = ndi.correlate(padded, in2, mode='constant')[n2 // 2:n2 // 2 + n1 + n2 - 1]",
        I + "start = {'full': 0, 'same': (n2 - 1) // 2, 'valid': min(n1, n2) - 1}[mode]",
        I + "size = {'full': n1 + n2 - 1, 'same': n1, 'valid': abs(n1 - n2) + 1}[mode]",
        I + "return full[start:start + size]"], "",
        "test_correlate", 2, "scipy.ndimage.correlate", f"exercise 1 of {NB1}"),
    "numpy_convolve": ("convolve", [
        I + "n1, n2 = in1.size, in2.size",
        I + "full = np.convolve(in1, in2)",
        I + "start = {'full': 0, 'same': (n2 - 1) // 2, 'valid': min(n1, n2) - 1}[mode]",
        I + "size = {'full': n1 + n2 - 1, 'same': n1, 'valid': abs(n1 - n2) + 1}[mode]",
        I + "return full[start:start + size]"], "",
        "test_convolve", 1, "numpy.convolve", f"exercise 2 of {NB1}"),
    "checks_import": ("dilate_kernel", [
        I + "return get_check('signal.dilate_kernel').reference(kernel=kernel, "
            "dilation=dilation)['out']"],
        "from cnnlab.checks import get_check\n", "test_dilate_kernel", 1,
        "cnnlab.checks", f"exercise 5 of {NB2}"),
}
AUTOGRADED = 18.0


def make_class(course: Path, subs: Path) -> None:
    """The reference, and one folder per cheat: the reference but for one function."""
    fill_answers(course, from_release(course, "ps1", subs / "reference" / "ps1", solved=True))
    for student, (function, body, prelude, *_) in CHEATS.items():
        folder = submission(course, "ps1", subs / student / "ps1", "signal.py",
                            broken={function: body})
        if prelude:
            prepend(folder / "cnnlab", "signal.py", prelude)


@pytest.fixture(scope="module")
def graded():
    root = Path(tempfile.mkdtemp(prefix="cnnlab-rules-"))
    try:
        course = root / "course"
        run_cli("build", "ps1", "--course", str(course))
        make_class(course, root / "class")
        run_cli("grade", "ps1", "--course", str(course), "--submissions", str(root / "class"),
                "--workers", "2", "--cell-timeout", "60", "--submission-timeout", "300")
        report = run_cli("report", "ps1", "--course", str(course))
        run_cli("export", "--course", str(course), "--out", str(root / "grades.csv"))
        with open(root / "grades.csv", newline="", encoding="utf-8") as handle:
            rows = {row["student_id"]: row for row in csv.DictReader(handle)}
        results = {p.stem: json.loads(p.read_text()) for p in
                   (course / "grading" / "ps1").glob("*.json")}
        yield {"rows": rows, "results": results, "report": report, "course": course}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_reference_obeys_every_rule(graded):
    row = graded["rows"]["reference"]
    assert float(row["autograded_score"]) == AUTOGRADED, graded["results"]["reference"]
    for cell, entry in graded["results"]["reference"]["cells"].items():
        if entry["sandbox"]:
            assert entry["sandbox"]["passed"], (cell, entry)


@pytest.mark.parametrize("student", sorted(CHEATS))
def test_a_cheat_loses_exactly_its_exercise_and_is_told_why(graded, student):
    function, _, _, cell, points, call, rule_of = CHEATS[student]
    row, result = graded["rows"][student], graded["results"][student]
    assert row["autograded_score"], (row, result.get("reasons"))
    assert float(row["autograded_score"]) == AUTOGRADED - points, (row, result["cells"])
    for grade_id, entry in result["cells"].items():
        sandbox = entry["sandbox"]
        if sandbox is None:
            continue
        assert sandbox["passed"] == (grade_id != cell), (grade_id, sandbox)
    sandbox = result["cells"][cell]["sandbox"]
    assert f"{function} " in sandbox["message"] and call in sandbox["message"], sandbox
    assert f"implement it yourself (rule of {rule_of}" in sandbox["message"], sandbox
    assert sandbox["summary"].startswith("rule: ") and call in sandbox["summary"], sandbox
    # the notebook's own test cell told the student the same (no disagreement to flag)
    assert result["cells"][cell]["notebook_score"] == 0.0, result["cells"][cell]
    # and the instructor sees it in the gradebook, on the flagged notebook
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    notebook = result["cells"][cell]["notebook"]
    with warnings.catch_warnings(), Gradebook(db_url(graded["course"]), "cnnlab") as gb:
        warnings.simplefilter("ignore")
        submission = gb.find_submission_notebook(notebook, "ps1", student)
        comments = " ".join(c.auto_comment or "" for c in submission.comments)
        assert submission.flagged and "calls what its rule forbids" in comments, comments
        assert call in comments, comments


def test_the_report_names_the_rule(graded):
    lines = graded["report"].splitlines()
    for _, _, _, cell, *_ in CHEATS.values():
        line = next(line for line in lines if line.startswith(f"{cell} "))
        assert "rule: " in line, line
