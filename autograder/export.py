"""Grades out of the gradebook, each with a status; and a per-test report of a class."""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from pathlib import Path

from autograder.course import COURSE_ID, db_path, db_url
from autograder.nbg import ensure_tools_on_path
from autograder.results import StudentResult, load_results
from autograder.testcells import assignment_cells

COLUMNS = ["student_id", "assignment", "status", "reason", "score", "max_score",
           "autograded_score", "autograded_max", "written_score", "written_max",
           "manual_pending", "notes"]
STATUSES = ("scored", "failed-to-grade", "missing", "manual-pending")


def export_rows(course: Path, assignments: list[str] | None = None) -> list[dict]:
    """One row per student and assignment. Status is one of :data:`STATUSES`:

    * scored: every cell has its score (autograded by the sandbox, written answers
      graded by hand);
    * manual-pending: written answers still to grade (the score so far is given);
    * failed-to-grade: something could not be graded; ``reason`` says what (the
      score column holds what could be graded);
    * missing: no submission (score left empty: not a 0).
    """
    from nbgrader.api import Gradebook, MissingEntry

    ensure_tools_on_path()
    course = Path(course).resolve()
    if not db_path(course).exists():
        raise FileNotFoundError(f"no gradebook in {course}: build and grade first")
    rows = []
    with warnings.catch_warnings(), Gradebook(db_url(course), COURSE_ID) as gb:
        warnings.simplefilter("ignore")
        names = [a.name for a in gb.assignments]
        names = [n for n in names if assignments is None or n in assignments]
        students = sorted(s.id for s in gb.students)
        for name in names:
            results = load_results(course, name)
            for student in students + sorted(set(results) - set(students)):
                rows.append(_row(gb, MissingEntry, name, student, results.get(student)))
    return rows


def _row(gb, missing_entry, assignment: str, student: str,
         result: StudentResult | None) -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row.update(student_id=student, assignment=assignment)
    try:
        submission = gb.find_submission(assignment, student)
    except missing_entry:
        submission = None
    if submission is None or (result and result.empty):
        row.update(status="missing", reason="no submission")
        return row
    autograded = written = auto_max = written_max = 0.0
    pending = 0
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.cell_type == "code":
                autograded += grade.score
                auto_max += grade.max_score
            else:
                written += grade.score
                written_max += grade.max_score
            pending += bool(grade.needs_manual_grade)
    row.update(score=f"{submission.score:g}", max_score=f"{submission.max_score:g}",
               autograded_score=f"{autograded:g}", autograded_max=f"{auto_max:g}",
               written_score=f"{written:g}", written_max=f"{written_max:g}",
               manual_pending=str(pending))
    if result is None:
        row.update(status="failed-to-grade",
                   reason="not graded by `python -m autograder grade` (no sandbox score)")
    elif result.reasons:
        row.update(status="failed-to-grade", reason="; ".join(result.reasons))
    elif pending:
        row.update(status="manual-pending", reason=f"{pending} cell(s) to grade by hand")
    else:
        row.update(status="scored")
    row["notes"] = "; ".join(result.notes)[:2000] if result else ""
    return row


def export_csv(course: Path, out: Path, assignments: list[str] | None = None) -> list[dict]:
    rows = export_rows(course, assignments)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return rows


def _csv_safe(value: str) -> str:
    """Keep spreadsheet programs from running student-controlled text as a formula."""
    value = str(value).replace("\r", " ").replace("\n", " ")
    return "'" + value if value[:1] in ("=", "+", "-", "@") and not _number(value) else value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def report(course: Path, assignment: str) -> list[dict]:
    """Per test cell: how many students failed it, and the commonest problem."""
    course = Path(course).resolve()
    results = load_results(course, assignment)
    notebooks = sorted(p.stem for p in (course / "source" / assignment).glob("*.ipynb"))
    lines = []
    for cell in assignment_cells(course / "source" / assignment, notebooks):
        if cell.kind != "test":
            continue
        graded = failed = disagreements = 0
        problems: Counter = Counter()
        for result in results.values():
            entry = None if result.empty else result.cells.get(cell.grade_id)
            if entry is None or entry.sandbox is None:
                continue
            graded += 1
            if not entry.sandbox.passed:
                failed += 1
                problems[entry.sandbox.summary or "?"] += 1
            # a notebook run executes the visible tests only
            visible = entry.sandbox.visible_passed
            if entry.notebook_score is not None and \
                    entry.notebook_score != (cell.points if visible else 0.0):
                disagreements += 1
        common = problems.most_common(1)
        lines.append({"notebook": cell.notebook, "grade_id": cell.grade_id,
                      "points": cell.points, "graded": graded, "failed": failed,
                      "commonest_problem": common[0][0] if common else "",
                      "commonest_count": common[0][1] if common else 0,
                      "notebook_disagrees": disagreements})
    return lines


def unisolated(course: Path, assignment: str) -> list[str]:
    """The students graded with --unsafe-no-isolation (their code ran unsandboxed)."""
    results = load_results(Path(course).resolve(), assignment)
    return sorted(s for s, r in results.items() if str(r.isolation).startswith("NONE"))


def format_report(lines: list[dict]) -> str:
    out = [f"{'test':<28} {'pts':>4} {'failed':>8}  {'notebook≠sandbox':>16}  commonest problem"]
    for line in lines:
        problem = (f"{line['commonest_problem']} ({line['commonest_count']}×)"
                   if line["commonest_problem"] else "")
        out.append(f"{line['grade_id']:<28} {line['points']:>4g} "
                   f"{line['failed']:>3}/{line['graded']:<4}  {line['notebook_disagrees']:>16}  "
                   f"{problem}")
    return "\n".join(out)
