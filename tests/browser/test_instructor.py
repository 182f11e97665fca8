"""An instructor's JupyterLab on a graded course: nbgrader's formgrader shows the gradebook.

A small ps1 class is built and graded with ``python -m autograder`` (real nbgrader,
real sandbox, a real SQLite gradebook); JupyterLab is opened on the course folder
and the formgrader (the *Nbgrader* menu's *Formgrader*, an iframe in JupyterLab)
must show the assignments and every submission's score as nbgrader's ``Gradebook``
holds them. Then the written answers of one student are graded by hand in the
browser: the scores must reach the gradebook and ``autograder export``.

=======  ====================================================  ===================
student  submission                                            score (of 22)
=======  ====================================================  ===================
alice    the reference, with the model written answers         18 + 4 answers, by hand
bob      ``convolve`` forgets to flip the kernel (1 pt lost)   17 (answers unchanged: 0)
carol    the untouched release                                 0
=======  ====================================================  ===================
"""

from __future__ import annotations

import csv
import re
import shutil
import warnings
from pathlib import Path

import nbformat
import pytest

from autograder.submissions import from_release, patch_function, solve
from tests.browser.conftest import ROOT
from tests.test_autograder_e2e import run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NB1, NB2 = "01_convolution_1d", "02_convolution_2d"
# alice's written answers, graded by hand in the browser: {notebook: {grade_id: score}}
MANUAL = {NB1: {"answer_dl_convolution_is_correlation": 1.0, "answer_fft_zero_padding": 0.5},
          NB2: {"answer_equivariance": 1.0, "answer_parameter_sharing": 0.0}}
UNFLIPPED = ["    return correlate(in1, in2.conj(), mode)"]


def autograder(*args: str, timeout: float = 900) -> str:
    return run_cli(*args, cwd=ROOT, timeout=timeout)


def fill_answers(course: Path, folder: Path) -> None:
    """Give ``folder``'s notebooks the model answers of the source notebooks."""
    for name in (NB1, NB2):
        source = nbformat.read(course / "source" / "ps1" / f"{name}.ipynb", as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        nbformat.write(notebook, folder / f"{name}.ipynb")


def make_class(course: Path, folder: Path) -> None:
    alice = from_release(course, "ps1", folder / "alice" / "ps1")
    solve(alice / "cnnlab", "signal.py")
    fill_answers(course, alice)
    bob = from_release(course, "ps1", folder / "bob" / "ps1")
    patch_function(bob / "cnnlab", "signal.py", "convolve", UNFLIPPED)
    solve(bob / "cnnlab", "signal.py")  # every other stub
    from_release(course, "ps1", folder / "carol" / "ps1")


def gradebook(course: Path):
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    from autograder.nbg import ensure_tools_on_path
    ensure_tools_on_path()
    return Gradebook(db_url(course), "cnnlab")


def number(x: float) -> str:
    """A score as formgrader prints it (JavaScript's rounding to 2 decimals)."""
    return f"{round(x, 2):g}"


def status(submission) -> str:
    return "needs manual grading" if submission.needs_manual_grade else "graded"


def held_by_gradebook(course: Path) -> dict:
    """What formgrader should show, read from the gradebook through nbgrader's API."""
    with warnings.catch_warnings(), gradebook(course) as gb:
        warnings.simplefilter("ignore")
        assignments = {a.name: len(a.submissions) for a in gb.assignments}
        submissions = {s.student_id: (f"{number(s.score)} / {number(s.max_score)}", status(s))
                       for s in gb.assignment_submissions("ps1")}
        notebooks = {nb: {s.student.id: {
            "score": f"{number(s.score)} / {number(s.max_score)}",
            "code": f"{number(s.code_score)} / {number(s.max_code_score)}",
            "written": f"{number(s.written_score)} / {number(s.max_written_score)}"}
            for s in gb.notebook_submissions(nb, "ps1")} for nb in (NB1, NB2)}
    return {"assignments": assignments, "submissions": submissions, "notebooks": notebooks}


def table(frame, selector: str, key: str, columns: dict[str, str]) -> dict:
    """The rows of a formgrader table once loaded: {key cell's text: {name: cell's text}}."""
    rows = frame.locator(f"{selector} tr")
    rows.first.locator(f".{key}").wait_for(timeout=30_000)
    seen = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        values = {name: row.locator(f".{cls}").inner_text().strip()
                  for name, cls in columns.items()}
        seen[row.locator(f".{key}").inner_text().strip()] = values
    return seen


def shown_assignments(frame) -> dict:
    rows = table(frame, "#main-table", "name", {"submissions": "num-submissions"})
    return {name: int(row["submissions"]) for name, row in rows.items()}


def shown_submissions(frame) -> dict:
    rows = table(frame, "#main-table", "student-id", {"score": "score", "status": "status"})
    return {student: (row["score"], row["status"]) for student, row in rows.items()}


def shown_notebook_submissions(frame) -> dict:
    frame.locator("#main-table tr .name-shown").first.wait_for(state="attached",
                                                                      timeout=30_000)
    rows = frame.locator("#main-table tr")
    seen = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        student = row.locator("a.name-shown").text_content().strip()
        seen[student] = {name: row.locator(f".{cls}").inner_text().strip() for name, cls in
                         (("score", "score"), ("code", "code-score"),
                          ("written", "written-score"))}
    return seen


def open_formgrader(server, page):
    """JupyterLab on the course, then the Nbgrader menu's Formgrader: its iframe."""
    page.goto(f"{server.url}/lab?reset&token={server.token}")
    page.wait_for_selector(".jp-LauncherCard", timeout=60_000)
    server.menu(page, "Nbgrader", "nbgrader:open-formgrader")
    page.wait_for_selector("#formgrader-iframe iframe", timeout=30_000)
    frame = page.frame_locator("#formgrader-iframe iframe")
    frame.locator("#main-table tr .name").first.wait_for(timeout=60_000)
    return frame


def go(frame, name: str) -> None:
    """Click formgrader's ``name`` link (a grading page has only "Manual Grading")."""
    if name != "Manual Grading" and not frame.get_by_role("link", name=name).count():
        go(frame, "Manual Grading")
    frame.get_by_role("link", name=name).first.click()


def open_notebook_submissions(frame, notebook: str) -> None:
    """Manual Grading → ps1 → ``notebook``: one row per submission of it."""
    go(frame, "Manual Grading")
    frame.locator("#main-table tr .name a", has_text="ps1").click()
    frame.locator("#main-table tr .name a", has_text=notebook).click()
    frame.locator("#main-table tr a.name-shown").first.wait_for(state="attached",
                                                                timeout=30_000)


def assert_formgrader_shows(frame, page, expected: dict, step: str) -> None:
    """Manage Assignments, and Manual Grading's scores of each ps1 notebook, as held."""
    go(frame, "Manage Assignments")
    frame.locator("#main-table tr .num-submissions").first.wait_for(timeout=30_000)
    assert shown_assignments(frame) == expected["assignments"]
    page.shot(f"{step}-assignments")
    for notebook in (NB1, NB2):
        open_notebook_submissions(frame, notebook)
        shown = shown_notebook_submissions(frame)
        page.shot(f"{step}-{notebook}")
        assert shown == expected["notebooks"][notebook], (notebook, shown,
                                                          expected["notebooks"][notebook])


def grade_by_hand(frame, page, notebook: str, student: str, scores: dict[str, float]):
    """Open ``student``'s submission of ``notebook`` and type each written answer's score."""
    open_notebook_submissions(frame, notebook)
    frame.locator("#main-table tr", has=frame.locator(
        "a.name-shown", has_text=re.compile(rf"^{student}$"))).locator("a.name-hidden").click()
    for grade_id, score in scores.items():
        field = frame.locator(f"input.score#{grade_id}")
        field.scroll_into_view_if_needed()
        with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                                  and r.request.method == "PUT" and r.ok):
            field.fill(number(score))
            field.press("Tab")  # formgrader saves on change
    page.shot(f"graded-{notebook}")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """ps1 built, the class above graded; the gradebook checked to hold what was meant."""
    root = tmp_path_factory.mktemp("instructor")
    course, submissions = root / "course", root / "submissions"
    autograder("build", "ps1", "--course", str(course))
    make_class(course, submissions)
    autograder("grade", "ps1", "--course", str(course), "--submissions", str(submissions),
               "--workers", "2", "--cell-timeout", "30")
    held = held_by_gradebook(course)
    assert held["assignments"] == {"ps1": 3}
    assert held["submissions"] == {"alice": ("18 / 22", "needs manual grading"),
                                   "bob": ("17 / 22", "graded"),
                                   "carol": ("0 / 22", "graded")}
    return course


def test_formgrader_shows_the_gradebook(course, lab, page):
    held = held_by_gradebook(course)
    frame = open_formgrader(lab(course), page)
    page.shot("formgrader")
    assert_formgrader_shows(frame, page, held, "autograded")


def test_a_score_the_gradebook_does_not_hold_fails_the_check(course, lab, page, tmp_path):
    """The check above, against a formgrader whose gradebook says bob passed a test he failed."""
    held = held_by_gradebook(course)
    forged = tmp_path / "course"
    shutil.copytree(course, forged)
    with warnings.catch_warnings(), gradebook(forged) as gb:
        warnings.simplefilter("ignore")
        gb.find_grade("test_convolve", NB1, "ps1", "bob").manual_score = 1.0
        gb.db.commit()
    frame = open_formgrader(lab(forged), page)
    with pytest.raises(AssertionError, match=r"'bob': \{'score': '8 / 10'"):
        assert_formgrader_shows(frame, page, held, "forged")
    page.shot("forged-caught")


def test_manage_submissions_shows_each_score(course, lab, page):
    """Formgrader's Manage Submissions lists each graded submission with its score (it does
    so only when submitted/'s timestamp.txt, which grading writes, matches the gradebook)."""
    held = held_by_gradebook(course)
    frame = open_formgrader(lab(course), page)
    frame.locator("#main-table tr", has_text="ps1").locator(".num-submissions a").click()
    frame.locator("#main-table tr .student-id").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.shot("manage-submissions")
    shown = shown_submissions(frame)
    assert shown == held["submissions"], (shown, held["submissions"])


def test_written_answers_graded_by_hand_reach_gradebook_and_export(course, lab, page, tmp_path):
    frame = open_formgrader(lab(course), page)
    for notebook, scores in MANUAL.items():
        grade_by_hand(frame, page, notebook, "alice", scores)

    with warnings.catch_warnings(), gradebook(course) as gb:
        warnings.simplefilter("ignore")
        for notebook, scores in MANUAL.items():
            for grade_id, score in scores.items():
                grade = gb.find_grade(grade_id, notebook, "ps1", "alice")
                assert grade.manual_score == score, (grade_id, grade.manual_score)
                assert not grade.needs_manual_grade
        alice = gb.find_submission("ps1", "alice")
        assert alice.score == 18 + sum(sum(s.values()) for s in MANUAL.values()) == 20.5
        assert not alice.needs_manual_grade

    held = held_by_gradebook(course)
    assert held["notebooks"][NB1]["alice"]["written"] == "1.5 / 2"
    assert held["notebooks"][NB2]["alice"]["written"] == "1 / 2"
    assert_formgrader_shows(frame, page, held, "hand-graded")

    out = tmp_path / "grades.csv"
    autograder("export", "--course", str(course), "--out", str(out))
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert (rows["alice"]["status"], float(rows["alice"]["score"])) == ("scored", 20.5)
    assert float(rows["alice"]["autograded_score"]) == 18.0
    assert (rows["bob"]["status"], float(rows["bob"]["score"])) == ("scored", 17.0)
    assert (rows["carol"]["status"], float(rows["carol"]["score"])) == ("scored", 0.0)
