"""Authoritative scores for the test cells: the student's package run in a sandbox.

The grading process (trusted) makes every test case from the instructor's
:mod:`cnnlab.checks` and computes its reference answer. A fresh interpreter
(``python -I -S``, see :mod:`autograder._sandbox_child`) in a fresh folder that
holds only the submitted ``cnnlab/*.py`` (with the instructor's ``checks``)
calls the student's functions on those inputs and streams the outputs back as
``.npy`` bytes; they are compared here. Nothing the student's code does in the
sandbox can change the reference answers or the comparison.

Guards on the sandboxed process: the jail of :mod:`autograder.jail` where
available (no view of the course, repository or /tmp; no network); an audit hook
that forbids writing files, reading outside the sandbox and the Python
installation, starting processes, sockets and ctypes; resource limits on CPU
time, memory and file size; a wall-clock time limit per test and per
submission; a scrubbed environment with one BLAS thread; bounded output.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.casebank import CaseBank
from autograder.package import assemble_package
from autograder.runner import TaskRun
from autograder.testcells import GradedCell
from cnnlab.checks import exercise_file, exercise_of
from cnnlab.checks._core import BY_FUNCTION
from cnnlab.checks.rules import Violation, check_source


@dataclass
class Limits:
    cell_timeout: float = 60.0          # wall seconds per check call (test)
    submission_timeout: float = 600.0   # wall seconds for the whole package
    startup_timeout: float = 60.0       # wall seconds to import NumPy and the checks
    memory_mb: int = 2048               # address space of the sandboxed process
    max_output_mb: int = 64             # per output array
    max_total_output_mb: int = 512      # per submission
    unsafe_no_isolation: bool = False   # the instructor's explicit choice to grade unjailed


@dataclass
class CellOutcome:
    grade_id: str
    notebook: str
    points: float
    passed: bool
    score: float
    cases: int = 0
    failed_cases: int = 0
    message: str | None = None   # the first failure, in plain words
    summary: str | None = None   # a short normalized form, for reports
    visible_passed: bool = False  # the cases a notebook run also sees (no hidden test)


@dataclass
class SandboxReport:
    cells: dict[str, CellOutcome] = field(default_factory=dict)
    error: str | None = None     # an infrastructure failure: the package could not be graded
    isolation: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"cells": {k: asdict(v) for k, v in self.cells.items()}, "error": self.error,
                "isolation": self.isolation, "seconds": round(self.seconds, 2),
                "notes": self.notes}


# -- one submission ----------------------------------------------------------------------

def run_sandbox(submitted_package: Path | None, trusted_package: Path, bank: CaseBank,
                cells: list[GradedCell], limits: Limits, course: Path | None = None,
                workroot: Path | None = None) -> SandboxReport:
    """Score the sandboxed cells of one submission."""
    started = time.monotonic()
    report = SandboxReport()
    cells = [c for c in cells if c.sandboxed]
    box = Path(tempfile.mkdtemp(prefix="cnnlab-sandbox-", dir=workroot))
    try:
        if submitted_package is None or not submitted_package.is_dir():
            for cell in cells:
                report.cells[cell.grade_id] = CellOutcome(
                    cell.grade_id, cell.notebook, cell.points, False, 0.0,
                    message="the submission has no cnnlab/ folder: nothing to test",
                    summary="no cnnlab/ folder")
            return report
        report.notes = assemble_package(submitted_package, trusted_package, box / "cnnlab")
        static = rule_violations(box, bank)  # before student code runs
        outcomes = TaskRun(box, bank, limits, course, cells).run(report)
        violations = {**_dynamic_violations(outcomes), **static}
        for cell in cells:
            report.cells[cell.grade_id] = _cell_result(cell, bank, outcomes, violations)
        return report
    finally:
        report.seconds = time.monotonic() - started
        shutil.rmtree(box, ignore_errors=True)


def _normalize(text: str) -> str:
    text = text.splitlines()[0] if text else ""
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text)
    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", text)[:160]


# -- the exercises' rules ---------------------------------------------------------------------

def rule_violations(box: Path, bank: CaseBank) -> dict:
    """{exercise: Violation} of the forbidden names the submitted exercise modules use
    (read here, on the trusted side, from the package assembled in ``box``)."""
    found = {}
    for task in bank.tasks.values():
        exercise = exercise_of(task.check.function)
        if exercise is not None and exercise not in found:
            violation = check_source(exercise, package_root=box)
            if violation is not None:
                found[exercise] = violation
    return found


def _dynamic_violations(outcomes: dict) -> dict:
    """{exercise: Violation} of the forbidden calls the sandbox's tripwires reported.

    The child is untrusted: a report counts only if it names an exercise function and a
    call that exercise's rule forbids (a forged one can only cost its sender).
    """
    found = {}
    for outcome in outcomes.values():
        for function, call in outcome.get("rules", []):
            exercise = BY_FUNCTION.get(function) if isinstance(function, str) else None
            if exercise is not None and isinstance(call, str) and exercise.rule.forbids(call):
                found.setdefault(exercise, Violation(exercise, function, call[:200]))
    return found


def _cell_result(cell: GradedCell, bank: CaseBank, outcomes: dict,
                 violations: dict | None = None) -> CellOutcome:
    total, failed, message, summary = 0, 0, None, None
    visible_failed = 0
    for call in cell.calls:
        task = bank.tasks[call.key]
        chk = task.check
        outcome = outcomes[task.id]
        violation = (violations or {}).get(exercise_of(chk.function))
        for index, case in enumerate(task.cases):
            total += 1
            if violation is not None:  # the exercise broke its rule: every case fails
                problem, short = violation.message(), violation.summary()
            else:
                problem, short = _case_problem(chk, case, task.references[index],
                                               outcome["cases"].get(index), outcome["error"])
            if problem:
                failed += 1
                visible_failed += not call.hidden
                if message is None:
                    message, summary = problem, short
    passed = failed == 0 and total > 0
    return CellOutcome(cell.grade_id, cell.notebook, cell.points, passed,
                      cell.points if passed else 0.0, total, failed, message, summary,
                      visible_passed=visible_failed == 0 and total > 0)


def _case_problem(chk, case, expected, result, error) -> tuple[str | None, str | None]:
    """(message, normalized summary) for a failed case, or (None, None)."""
    name = chk.function
    if result is None:
        why = error or "no result came back"
        return f"{name}: {why}", _normalize(why)
    header, arrays = result
    if not header.get("ok"):
        if header.get("kind") == "not-implemented":
            return (f"{name} is not implemented yet: replace the `raise NotImplementedError` "
                    f"in {exercise_file(chk.name)}", "not implemented")
        text = str(header.get("error"))[:2000]
        return f"{name} raised {text} on {case.describe()}", "raised " + _normalize(text)
    for value in arrays.values():
        if isinstance(value, Exception):
            return f"{name}: {value}", _normalize(str(value))
    try:
        problem = chk.compare(case, arrays, expected)
    except Exception as exc:  # a malformed output the comparison chokes on
        problem = f"the output could not be compared with the reference ({exc})"
    if problem is None:
        return None, None
    hint = problem.split("hint:", 1)[1].strip() if "hint:" in problem else None
    return f"{name} is wrong on {case.describe()}:\n  {problem}", hint or _normalize(problem)
