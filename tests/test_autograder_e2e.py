"""End to end: build ps1, grade a whole class through the CLI, feedback, export, report.

Real nbgrader, a real SQLite gradebook, the real notebooks; no mocks. The
submissions are made from the release (then patched), so they stay in step with
the source. Scores are out of 18 autograded points (ps1's test cells) plus 4
points of written answers graded by hand:

=================  =========================================================  =====
student            what it does                                               score
=================  =========================================================  =====
reference          the reference package, the model answers                    18 + pending
release            the untouched release                                       0
buggy              convolve forgets to flip the kernel (test_convolve: 1 pt)   17
infinite_loop      dilate_kernel never returns (1 pt)                          17
sys_exit           convolution_matrix calls sys.exit() (2 pts)                 16
os_exit            fftconvolve calls os._exit(3): the kernel dies (3 pts)      15
deleted_test       deletes the test_convolve cell (nbgrader restores it)       18
edited_test        test_fftconvolve replaced by `pass`, fftconvolve a stub     15
duplicated_test    test_correlate cell pasted twice                            18
corrupt            02's .ipynb is truncated JSON: failed-to-grade, tests 18    18 *
monkeypatch        stubs + numpy.isclose / check machinery patched at import   0
shadow_scipy       unflipped convolve + a scipy/ folder patching the reference 17
input_transformer  stubs + an IPython transformer blanking every later cell    0
reference_hunter   looks for the instructor's cnnlab on disk and imports it    0
big_output         the reference, and prints 100 MB and draws large figures    18
empty              an empty folder                                             missing
ghost              in the gradebook, submitted nothing                         missing
=================  =========================================================  =====
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course import REPO
from autograder.submissions import submission

pytestmark = pytest.mark.slow

AUTOGRADED = 18.0
I = "    "  # noqa: E741 -- one indentation level of a function body
EXPECTED = {
    # student: (status, total score, autograded score)
    "reference": ("manual-pending", 18.0, 18.0),
    "release": ("scored", 0.0, 0.0),
    "buggy": ("scored", 17.0, 17.0),
    "infinite_loop": ("scored", 17.0, 17.0),
    "sys_exit": ("scored", 16.0, 16.0),
    "os_exit": ("scored", 15.0, 15.0),
    "deleted_test": ("scored", 18.0, 18.0),
    "edited_test": ("scored", 15.0, 15.0),
    "duplicated_test": ("scored", 18.0, 18.0),
    "corrupt": ("failed-to-grade", 18.0, 18.0),
    "monkeypatch": ("scored", 0.0, 0.0),
    "shadow_scipy": ("scored", 17.0, 17.0),
    "input_transformer": ("scored", 0.0, 0.0),
    "reference_hunter": ("scored", 0.0, 0.0),
    "big_output": ("scored", 18.0, 18.0),
}
NB1, NB2 = "01_convolution_1d", "02_convolution_2d"


def run_cli(*args, cwd=REPO, timeout=900):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def edit_notebook(path: Path, change) -> None:
    notebook = nbformat.read(str(path), as_version=4)
    change(notebook)
    nbformat.write(notebook, str(path))


def cell_index(notebook, grade_id: str) -> int:
    return next(i for i, c in enumerate(notebook.cells)
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def fill_answers(course: Path, folder: Path) -> None:
    for name in (NB1, NB2):
        source = nbformat.read(str(course / "source" / "ps1" / f"{name}.ipynb"), as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}

        def change(notebook, answers=answers):
            for cell in notebook.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in answers:
                    cell.source = answers[grade_id]
        edit_notebook(folder / f"{name}.ipynb", change)


def prepend(package: Path, module: str, code: str) -> None:
    path = package / module
    text = path.read_text(encoding="utf-8")
    marker = "\n__all__ = ["
    path.write_text(text.replace(marker, "\n" + textwrap.dedent(code) + marker, 1),
                    encoding="utf-8")


UNFLIPPED = [I + "return correlate(in1, in2.conj(), mode)"]
MONKEYPATCH = """
import numpy as _np
import cnnlab.checks._core as _core
_np.isclose = lambda a, b, *args, **kwargs: _np.ones(_np.broadcast(a, b).shape, bool)
_np.allclose = lambda *args, **kwargs: True
_core.run_case = lambda *args, **kwargs: None  # every check passes in the notebook
"""
TRANSFORMER = """
try:
    from IPython import get_ipython as _get_ipython
    _shell = _get_ipython()
except ImportError:
    _shell = None
if _shell is not None:
    _shell.input_transformers_post.append(lambda lines: [])  # every later cell runs nothing
"""
SHADOW_SCIPY = '''
"""A scipy that loads the real one, then makes its convolve agree with the student's."""
import importlib.machinery, importlib.util, os, sys
_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_paths = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_spec = importlib.machinery.PathFinder.find_spec("scipy", _paths)
_real = importlib.util.module_from_spec(_spec)
sys.modules["scipy"] = _real
_spec.loader.exec_module(_real)
import scipy.signal as _signal  # noqa: E402
_original = _signal.convolve
def _student_convolve(in1, in2, mode="full", method="auto"):
    import numpy as np
    return _signal.correlate(in1, np.conj(in2), mode)
_signal.convolve = _student_convolve
'''
HUNTER = """
import importlib.util as _util
import os as _os

def _looks_like_reference(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return "BEGIN SOLUTION" in handle.read()
    except OSError:
        return False

def _find_reference():
    here = _os.path.dirname(_os.path.abspath(__file__))
    candidates = [{repo!r}, {course!r}]
    folder = here
    for _ in range(12):  # walk up, and look around each level
        candidates.append(folder)
        try:
            for entry in _os.scandir(folder):
                if entry.is_dir():
                    candidates.append(entry.path)
        except OSError:
            pass
        folder = _os.path.dirname(folder)
    for root in candidates:
        for base, dirs, files in _os.walk(root):
            if base.count(_os.sep) - root.count(_os.sep) > 4:
                dirs[:] = []
            if base.endswith("cnnlab") and "signal.py" in files:
                path = _os.path.join(base, "signal.py")
                if _os.path.abspath(path) != _os.path.abspath(__file__) and \\
                        _looks_like_reference(path):
                    spec = _util.spec_from_file_location("_found_reference", path)
                    module = _util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    return module
    return None

_REFERENCE = _find_reference()
"""


def delegate(name: str, args: str) -> list[str]:
    return [I + "if _REFERENCE is None:", I + I + "raise NotImplementedError",
            I + f"return _REFERENCE.{name}({args})"]


def make_class(course: Path, root: Path) -> Path:
    """Every submission, in an LMS-like zip (one folder per student)."""
    subs = root / "class"

    def student(name, solved=True, broken=None):
        """The release, with the reference solutions except for ``broken`` {function: body}."""
        return submission(course, "ps1", subs / name / "ps1", "signal.py", solved, broken)

    fill_answers(course, student("reference"))
    student("release", solved=False)
    student("buggy", broken={"convolve": UNFLIPPED})
    student("infinite_loop", broken={"dilate_kernel": [I + "while True:", I + I + "pass"]})
    student("sys_exit", broken={"convolution_matrix": [I + "import sys", I + "sys.exit()"]})
    student("os_exit", broken={"fftconvolve": [I + "import os", I + "os._exit(3)"]})

    folder = student("deleted_test")
    edit_notebook(folder / f"{NB1}.ipynb",
                  lambda nb: nb.cells.pop(cell_index(nb, "test_convolve")))

    folder = student("edited_test", broken={"fftconvolve": [I + "raise NotImplementedError"]})

    def blank_test(nb):
        nb.cells[cell_index(nb, "test_fftconvolve")].source = "pass"
    edit_notebook(folder / f"{NB1}.ipynb", blank_test)

    folder = student("duplicated_test")

    def duplicate(nb):
        index = cell_index(nb, "test_correlate")
        copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[index])))
        copy.id = "duplicated-test-cell"
        nb.cells.insert(index + 1, copy)
    edit_notebook(folder / f"{NB1}.ipynb", duplicate)

    folder = student("corrupt")
    text = (folder / f"{NB2}.ipynb").read_text(encoding="utf-8")
    (folder / f"{NB2}.ipynb").write_text(text[: len(text) // 2], encoding="utf-8")

    folder = student("monkeypatch", solved=False)
    prepend(folder / "cnnlab", "signal.py", MONKEYPATCH)

    folder = student("shadow_scipy", broken={"convolve": UNFLIPPED})
    (folder / "scipy").mkdir()
    (folder / "scipy" / "__init__.py").write_text(SHADOW_SCIPY, encoding="utf-8")

    folder = student("input_transformer", solved=False)
    prepend(folder / "cnnlab", "signal.py", TRANSFORMER)

    signatures = {"correlate": "in1, in2, mode", "convolve": "in1, in2, mode",
                  "correlate2d": "in1, in2, mode", "convolve2d": "in1, in2, mode",
                  "fftconvolve": "in1, in2, mode", "convolution_matrix": "a, n, mode",
                  "convolution_matrix2d": "kernel, shape, mode",
                  "conv_output_size": "n, kernel_size, stride, padding, dilation, strict",
                  "pad2d": "x, padding, value", "dilate_kernel": "kernel, dilation"}
    folder = student("reference_hunter", solved=False,
                     broken={name: delegate(name, args) for name, args in signatures.items()})
    prepend(folder / "cnnlab", "signal.py", HUNTER.format(repo=str(REPO), course=str(course)))

    folder = student("big_output")

    def shout(nb):
        nb.cells.append(nbformat.v4.new_code_cell(
            "print('spam ' * 20_000_000)  # 100 MB on one line"))
        nb.cells.append(nbformat.v4.new_code_cell(
            "for _ in range(3000):\n    print('eggs ' * 2000)  # 30 MB over many lines"))
        nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent("""\
            import matplotlib.pyplot as plt
            import numpy as np
            for seed in range(6):
                fig = plt.figure(figsize=(12, 12), dpi=100)
                plt.imshow(np.random.default_rng(seed).random((1200, 1200)))
                plt.show()
            """)))
    edit_notebook(folder / f"{NB1}.ipynb", shout)

    (subs / "empty").mkdir()

    archive = root / "lms_export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(subs.rglob("*")):
            zf.write(path, Path("ps1 submissions") / path.relative_to(subs))
    return archive


@pytest.fixture(scope="module")
def graded():
    # not tmp_path_factory: a concurrent pytest session may prune its folders mid-run
    root = Path(tempfile.mkdtemp(prefix="cnnlab-e2e-"))
    try:
        yield _grade_class(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _grade_class(root: Path) -> dict:
    course = root / "course"
    run_cli("build", "ps1", "--course", str(course))
    archive = make_class(course, root)
    _add_student(course, "ghost")
    grade_out = run_cli("grade", "ps1", "--course", str(course), "--submissions", str(archive),
                        "--workers", "2", "--cell-timeout", "15",
                        "--submission-timeout", "300")
    feedback_out = run_cli("feedback", "ps1", "--course", str(course))
    export_out = run_cli("export", "--course", str(course), "--out", str(root / "grades.csv"))
    report_out = run_cli("report", "ps1", "--course", str(course))
    with open(root / "grades.csv", newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    results = {p.stem: json.loads(p.read_text()) for p in
               (course / "grading" / "ps1").glob("*.json")}
    return {"course": course, "rows": rows, "results": results, "grade": grade_out,
            "feedback": feedback_out, "export": export_out, "report": report_out}


def _add_student(course: Path, name: str) -> None:
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    from autograder.nbg import ensure_tools_on_path
    ensure_tools_on_path()
    with warnings.catch_warnings(), Gradebook(db_url(course), "cnnlab") as gb:
        warnings.simplefilter("ignore")
        gb.update_or_create_student(name)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_its_deserved_score_and_status(graded, student):
    status, total, autograded = EXPECTED[student]
    row = graded["rows"][student]
    assert row["status"] == status, (row, graded["results"][student]["reasons"])
    assert float(row["score"]) == total, row
    assert float(row["autograded_score"]) == autograded, row
    assert float(row["autograded_max"]) == AUTOGRADED


def test_missing_students_are_missing_not_zero(graded):
    for student in ("empty", "ghost"):
        row = graded["rows"][student]
        assert row["status"] == "missing" and row["score"] == "", row


def test_the_gradebook_holds_the_sandbox_scores(graded):
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    with warnings.catch_warnings(), Gradebook(db_url(graded["course"]), "cnnlab") as gb:
        warnings.simplefilter("ignore")
        for student, (_, total, _) in EXPECTED.items():
            assert gb.find_submission("ps1", student).score == total, student
        # The forged notebook runs said full marks; the gradebook keeps both, and says why.
        for student in ("monkeypatch", "input_transformer"):
            grade = gb.find_grade("test_convolve", NB1, "ps1", student)
            assert grade.auto_score == 1.0 and grade.manual_score == 0.0, student
            notebook = gb.find_submission_notebook(NB1, "ps1", student)
            assert notebook.flagged
            comment = gb.find_comment("answer_dl_convolution_is_correlation", NB1, "ps1",
                                      student)
            assert "sandboxed re-run" in comment.comment
        # A release's test cells read their answers from its answer book, not from SciPy:
        # a shadowed SciPy fools neither the notebook run nor the sandbox.
        grade = gb.find_grade("test_convolve", NB1, "ps1", "shadow_scipy")
        assert (grade.auto_score, grade.manual_score) == (0.0, 0.0)
        grade = gb.find_grade("test_fftconvolve", NB1, "ps1", "edited_test")
        assert grade.auto_score == 0.0  # nbgrader restored the test cell, which failed
        grade = gb.find_grade("answer_equivariance", NB2, "ps1", "reference")
        assert grade.needs_manual_grade  # a written answer waits for a human


def test_formgrader_counts_every_graded_submission_as_autograded(graded):
    """nbgrader's formgrader calls a submission autograded only when submitted/'s
    timestamp.txt matches the gradebook; otherwise it shows "needs autograding" and offers
    to autograde it again, outside the sandbox."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    course = graded["course"]
    coursedir = CourseDirectory(root=str(course))
    coursedir.course_id = "cnnlab"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        autograded = NbGraderAPI(coursedir=coursedir).get_autograded_students("ps1")
    expected = {p.parent.name for p in (course / "autograded").glob("*/ps1") if p.is_dir()}
    assert "reference" in expected and autograded == expected, expected ^ autograded


def test_failures_are_explained(graded):
    results = graded["results"]
    assert "is not a valid notebook" in results["corrupt"]["reasons"][0]
    assert "kernel died" in results["os_exit"]["notebooks"][NB1]["reason"]
    assert results["os_exit"]["notebooks"][NB2]["state"] == "graded"
    loop = results["infinite_loop"]["cells"]["test_dilate_kernel"]["sandbox"]
    assert "did not finish" in loop["message"]
    assert "exited with code 3" in results["os_exit"]["cells"]["test_fftconvolve"]["sandbox"][
        "message"]
    assert "SystemExit" in results["sys_exit"]["cells"]["test_convolution_matrix"]["sandbox"][
        "message"]
    assert "kernel was not flipped" in results["buggy"]["cells"]["test_convolve"]["sandbox"][
        "message"]
    corrupt_row = graded["rows"]["corrupt"]
    assert "02_convolution_2d.ipynb is not a valid notebook" in corrupt_row["reason"]


def test_feedback_is_bounded_and_hides_hidden_tests(graded):
    course = graded["course"]
    files = sorted((course / "feedback").glob("*/ps1/*.html"))
    assert {p.parents[1].name for p in files} >= set(EXPECTED)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert path.stat().st_size < 4_000_000, (path, path.stat().st_size)
        assert "HIDDEN TESTS" not in text and "seed=" not in text, path
    big = course / "feedback" / "big_output" / "ps1" / f"{NB1}.html"
    assert "output truncated by the autograder" in big.read_text(encoding="utf-8")
    autograded = course / "autograded" / "big_output" / "ps1" / f"{NB1}.ipynb"
    assert autograded.stat().st_size < 8_000_000


def test_report_counts_failures(graded):
    lines = graded["report"].splitlines()
    convolve = next(line for line in lines if line.startswith("test_convolve "))
    # release, monkeypatch, input_transformer, reference_hunter, buggy, shadow_scipy
    assert " 6/15 " in convolve, convolve
    assert "kernel was not flipped" in convolve or "not implemented" in convolve


def test_regrading_one_student_leaves_the_others_intact(graded):
    course = graded["course"]
    run_cli("grade", "ps1", "--course", str(course), "--student", "corrupt", "--workers", "1",
            "--cell-timeout", "15")
    export = run_cli("export", "--course", str(course), "--out", str(course / "again.csv"))
    assert "wrote" in export
    with open(course / "again.csv", newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    for student, (status, total, _) in EXPECTED.items():
        assert rows[student]["status"] == status and float(rows[student]["score"]) == total


def test_release_zip_and_collect_commands(graded, tmp_path):
    course = graded["course"]
    archive = tmp_path / "ps1-release.zip"
    run_cli("release", "ps1", "--course", str(course), "--zip", str(archive))
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        signal = zf.read("ps1/cnnlab/signal.py").decode()
        notebook = zf.read(f"ps1/{NB1}.ipynb").decode()
    assert {f"ps1/{NB1}.ipynb", f"ps1/{NB2}.ipynb", "ps1/cnnlab/checks/_core.py"} <= names
    assert "raise NotImplementedError" in signal
    assert "# BEGIN SOLUTION" not in [line.strip() for line in signal.splitlines()]
    assert "HIDDEN" not in notebook and "seed=" not in notebook
    # a student unzips it, works, and hands in a zip named after themselves
    handed_in = tmp_path / "lms" / "zoe.zip"
    handed_in.parent.mkdir()
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(handed_in, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    out = run_cli("collect", "ps1", "--course", str(course), "--submissions",
                  str(handed_in.parent))
    assert "collected 1 submissions" in out
    assert (course / "submitted" / "zoe" / "ps1" / "cnnlab" / "signal.py").exists()

