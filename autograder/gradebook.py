"""Write one submission's grades into the course gradebook (nbgrader's API only).

:func:`record` applies :func:`autograder.reconcile.reconcile`'s verdict to every graded
cell, copies the notebook run's comments, and adds the autograder's notes (a
disagreement with the notebook run, a broken exercise rule) to the first comment.
:func:`template_gradebook` makes the copy of the gradebook that notebook runs get.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder.course import COURSE_ID, db_path, db_url
from autograder.ingest import collection_time
from autograder.reconcile import (
    RUN_STATES_WITH_GRADES,
    Cell,
    SandboxOutcome,
    Verdict,
    reconcile,
)
from autograder.results import CellResult, SandboxResult, StudentResult
from autograder.sandbox import SandboxReport
from autograder.testcells import strip_hidden

MAX_COMMENT = 4000
SANDBOX_FIELDS = ("passed", "score", "cases", "failed_cases", "message", "summary",
                  "visible_passed")

if TYPE_CHECKING:  # the grading run's shared state (grading imports this module)
    from autograder.grading import Context


def template_gradebook(course: Path, assignment: str, source: Path, dest: Path) -> None:
    """A copy of the gradebook with the assignment, no student, and nothing secret.

    nbgrader restores a submission's test cells from the gradebook's source
    cells, and the notebook run executes them in the student's kernel. The copy
    given to notebook runs therefore holds the test cells as released: hidden
    tests taken out (and their checksums recomputed), so that no kernel ever
    runs, or sees, a hidden test. The hidden cases are scored by the sandbox.
    """
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum
    shutil.copyfile(db_path(course), dest)
    with Gradebook(f"sqlite:///{dest}", COURSE_ID) as gb:
        assignment = gb.find_assignment(assignment)
        for student in list(gb.students):
            gb.remove_student(student.id)
        for notebook in assignment.notebooks:
            master = nbformat.read(str(source / f"{notebook.name}.ipynb"), as_version=4)
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in master.cells}
            for cell in notebook.source_cells:
                released = strip_hidden(cell.source)
                if released != cell.source and cell.name in by_id:
                    copy = nbformat.from_dict(dict(by_id[cell.name]))
                    copy.source = released
                    cell.source, cell.checksum = released, compute_checksum(copy)
        gb.db.commit()



def record(ctx: Context, student: str, states: dict, runs: dict, in_notebook: dict,
           sandbox: SandboxReport, result: StudentResult) -> None:
    """Write this submission's grades into the course gradebook (nbgrader's API)."""
    from nbgrader.api import Gradebook
    pending = 0
    with ctx.lock, warnings.catch_warnings(), Gradebook(db_url(ctx.course), COURSE_ID) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarning from nbgrader's API
        _open_submission(gb, ctx, student)
        for nb in ctx.notebooks:
            snb = gb.find_submission_notebook(nb, ctx.assignment, student)
            state = runs.get(nb, {}).get("state", "failed")
            produced = in_notebook.get(nb, {"grades": {}, "comments": {}})
            verdicts = [_record_grade(ctx, nb, grade, state, produced, sandbox, result)
                        for grade in snb.grades]
            verdicts = [v for v in verdicts if v is not None]
            pending += sum(v.needs_manual_grade for v in verdicts)
            _record_comments(snb, nb, state, produced, verdicts, result)
        gb.db.commit()
        submission = gb.find_submission(ctx.assignment, student)
        result.score = float(submission.score)
        result.max_score = float(submission.max_score)
    if "_error" in in_notebook:
        result.notes.append("the notebook run's gradebook could not be read: "
                            + in_notebook["_error"])
    result.pending = pending


def _open_submission(gb, ctx: Context, student: str) -> None:
    gb.update_or_create_student(student)
    # when the grader collected it, never a file the student could write
    stamp = collection_time(ctx.course, ctx.assignment, student)
    try:
        submission = gb.update_or_create_submission(ctx.assignment, student,
                                                    **({"timestamp": stamp} if stamp else {}))
    except Exception:
        submission = gb.update_or_create_submission(ctx.assignment, student)
    _write_timestamp(ctx.course / "submitted" / student / ctx.assignment, submission.timestamp)


def _write_timestamp(submitted: Path, timestamp) -> None:
    """Put the gradebook's submission time in ``timestamp.txt``, where nbgrader's formgrader
    looks: it counts a submission as autograded only when the two agree (and offers to
    autograde it again, unsandboxed, when they do not). A student's own copy of the file
    is never collected (:mod:`autograder.ingest`)."""
    path = submitted / "timestamp.txt"
    if not submitted.is_dir():
        return
    if timestamp is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(timestamp.isoformat(), encoding="utf-8")


def _record_grade(ctx: Context, nb: str, grade, state: str, produced: dict,
                  sandbox: SandboxReport, result: StudentResult) -> Verdict | None:
    """Apply :func:`reconcile`'s verdict to one nbgrader grade; note it in ``result``."""
    cell = ctx.cell_index.get((nb, grade.name))
    if cell is None:
        return None
    outcome = sandbox.cells.get(cell.grade_id) if cell.sandboxed else None
    verdict = reconcile(Cell(cell.grade_id, cell.kind, cell.points, cell.sandboxed), state,
                        produced["grades"].get(grade.name), _outcome(outcome),
                        bool(sandbox.error), grade.manual_score)
    grade.auto_score, grade.manual_score = verdict.auto_score, verdict.manual_score
    grade.needs_manual_grade = verdict.needs_manual_grade
    counted = outcome is not None and not sandbox.error
    result.cells[cell.grade_id] = CellResult(
        nb, cell.kind, cell.points, verdict.notebook_score,
        SandboxResult(**{k: getattr(outcome, k) for k in SANDBOX_FIELDS}) if counted else None,
        verdict.score)
    return verdict


def _record_comments(snb, nb: str, state: str, produced: dict, verdicts: list[Verdict],
                     result: StudentResult) -> None:
    """The notebook run's comments, and the autograder's notes on the first comment."""
    comments = sorted(snb.comments, key=lambda c: c.name)
    for comment in comments:
        text = produced["comments"].get(comment.name) if state in RUN_STATES_WITH_GRADES \
            else None
        comment.auto_comment = None if text is None else str(text)[:MAX_COMMENT]
    disagreements = [v.disagreement for v in verdicts if v.disagreement]
    rule_breaks = [v.rule_break for v in verdicts if v.rule_break]
    snb.flagged = bool(disagreements or rule_breaks)
    notes = []
    if disagreements:
        notes.append("Autograder: the scores of these tests come from a sandboxed re-run "
                     "of the submitted package, which disagreed with the notebook run: "
                     + "; ".join(disagreements))
    if rule_breaks:
        notes.append("Autograder: these tests score 0 because the exercise's code calls "
                     "what its rule forbids: " + "; ".join(rule_breaks))
    for note in notes:
        result.notes.append(f"{nb}: " + note)
        if comments:
            first = comments[0]
            first.auto_comment = ((first.auto_comment + "\n\n") if first.auto_comment
                                  else "") + note[:MAX_COMMENT]


def _outcome(outcome) -> SandboxOutcome | None:
    if outcome is None:
        return None
    return SandboxOutcome(outcome.passed, outcome.score, outcome.visible_passed,
                          outcome.message, outcome.summary)
