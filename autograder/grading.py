"""Grade a class: nbgrader runs the notebooks, the sandbox scores the tests.

For each submission, in parallel workers (each pinned to one BLAS/OpenMP
thread):

1. the notebooks are checked (present? valid?);
2. the sandbox (:mod:`autograder.sandbox`) re-runs every check call of every test
   cell, visible and hidden, on the submitted package: this is the score;
3. ``nbgrader autograde`` runs each notebook, in a private throwaway course
   directory (a copy of ``source/<ps>``, the submission, and a gradebook that
   holds only the assignment) inside the jail where available: the kernel never
   sees the real gradebook or other students' work, and parallel workers never
   share a SQLite file. A notebook whose run dies (``os._exit``, a crash, a
   hang past the time budget) is autograded again without execution, so that
   its written answers can still be graded by hand;
4. the results go into the course gradebook through nbgrader's API: a test
   cell's ``manual_score`` is the sandbox score (its ``auto_score`` keeps the
   notebook run's, for comparison), and the submission is flagged, with a
   comment saying why, when the two disagree. Written answers wait for manual
   grading; a notebook run cannot award points to them;
5. the autograded notebooks, with bounded outputs, go to ``autograded/``, and a
   record with every reason and message to ``grading/<ps>/<student>.json``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autograder import jail
from autograder.build import BuildError, notebook_names
from autograder.casebank import CaseBank
from autograder.course import db_path
from autograder.gradebook import record, template_gradebook
from autograder.ingest import FAILED, ingest
from autograder.nbg import ensure_tools_on_path
from autograder.notebook_runs import copy_autograded, kernel_dirs, notebook_state, run_notebooks
from autograder.results import StudentResult, results_dir
from autograder.sandbox import Limits, run_sandbox
from autograder.testcells import assignment_cells


@dataclass
class Options:
    workers: int = max(1, os.cpu_count() or 1)
    cell_timeout: float = 120.0
    submission_timeout: float = 900.0
    memory_mb: int = 2048
    unsafe_no_isolation: bool = False   # grade without the sandbox (recorded everywhere)
    quiet: bool = False


class Context:
    """What every worker shares while grading one assignment."""

    def __init__(self, course: Path, assignment: str, options: Options):
        ensure_tools_on_path()
        self.course = Path(course).resolve()
        self.assignment = assignment
        self.options = options
        self.source = self.course / "source" / assignment
        if not db_path(self.course).exists() or not self.source.is_dir():
            raise BuildError(f"{assignment} is not built in {self.course}: run "
                             f"`python -m autograder build {assignment}` first")
        self.notebooks = notebook_names(self.course, assignment)
        self.cells = assignment_cells(self.source, self.notebooks)
        self.cell_index = {(c.notebook, c.grade_id): c for c in self.cells}
        self.bank = CaseBank([c for c in self.cells if c.sandboxed])
        self.trusted_package = self.source / "cnnlab"
        self.isolation = jail.require(options.unsafe_no_isolation)
        self.limits = Limits(cell_timeout=options.cell_timeout,
                             submission_timeout=options.submission_timeout,
                             memory_mb=options.memory_mb,
                             unsafe_no_isolation=options.unsafe_no_isolation)
        self.lock = threading.Lock()
        self.socket_dirs: list[Path] = []
        self.workroot = Path(tempfile.mkdtemp(prefix="cnnlab-grading-"))
        self.template_db = self.workroot / "template.db"
        template_gradebook(self.course, assignment, self.source, self.template_db)
        self.kernel_dirs = kernel_dirs()

    def close(self) -> None:
        shutil.rmtree(self.workroot, ignore_errors=True)
        for folder in self.socket_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def grade(assignment: str, course: Path, submissions: Path | None = None,
          students: list[str] | None = None, options: Options | None = None) -> dict[str, dict]:
    """Grade every submission of ``assignment`` (after copying them in from ``submissions``)."""
    options = options or Options()
    course = Path(course).resolve()
    jail.require(options.unsafe_no_isolation)  # refuse before touching anything
    ingest_notes: dict[str, list[str]] = {}
    if submissions is not None:
        ingest_notes = ingest(Path(submissions), assignment, course)
    submitted = course / "submitted"
    everyone = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    chosen = [s for s in everyone if students is None or s in students]
    context = Context(course, assignment, options)
    results: dict[str, StudentResult] = {}
    started = time.monotonic()
    try:
        def work(student):
            result = grade_student(context, student, ingest_notes.get(student, []))
            if not options.quiet:
                print(f"  {student:<24} {result.status:<16} {result.score:g}/"
                      f"{result.max_score:g}  ({result.seconds:.0f} s)"
                      + (f"  {'; '.join(result.reasons)[:120]}" if result.reasons else ""),
                      flush=True)
            return student, result

        if not options.quiet:
            print(f"grading {assignment}: {len(chosen)} submissions, {options.workers} workers, "
                  f"isolation: {context.isolation}", flush=True)
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            for student, result in pool.map(work, chosen):
                results[student] = result
    finally:
        context.close()
    if not options.quiet:
        print(f"graded {len(results)} submissions in {time.monotonic() - started:.0f} s; "
              f"records in {results_dir(course, assignment)}")
    return results


# -- one submission ----------------------------------------------------------------------------

def grade_student(ctx: Context, student: str, notes: list[str] | None = None
                  ) -> StudentResult:
    started = time.monotonic()
    notes = list(notes or [])
    result = StudentResult(student, ctx.assignment,
                           graded_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           reasons=[n for n in notes if n.startswith(FAILED)],
                           notes=[n for n in notes if not n.startswith(FAILED)],
                           max_score=sum(c.points for c in ctx.cells), isolation=ctx.isolation)
    work = ctx.workroot / student
    work.mkdir(parents=True, exist_ok=True)
    submitted = ctx.course / "submitted" / student / ctx.assignment
    try:
        states = {nb: notebook_state(submitted / f"{nb}.ipynb") for nb in ctx.notebooks}
        package = submitted / "cnnlab"
        result.empty = all(s == "missing" for s, _ in states.values()) and \
            not package.is_dir()
        sandbox = run_sandbox(package if package.is_dir() else None, ctx.trusted_package,
                              ctx.bank, ctx.cells, ctx.limits, course=ctx.course,
                              workroot=work)
        result.sandbox = sandbox.to_dict()
        result.notes += sandbox.notes
        if sandbox.error:
            result.reasons.append(sandbox.error)
        in_notebook, runs = run_notebooks(ctx, student, submitted, states, work, result.notes)
        result.notebooks = runs
        for run in runs.values():
            if run["state"] in ("corrupt", "failed"):
                result.reasons.append(run["reason"])
            elif run["state"] in ("missing", "not-run"):
                result.notes.append(run["reason"])
        record(ctx, student, states, runs, in_notebook, sandbox, result)
        copy_autograded(ctx, student, work)
    except Exception as exc:  # one submission's trouble never stops the class
        result.reasons.append(f"internal error while grading: {type(exc).__name__}: {exc}")
        result.traceback = traceback.format_exc()[-4000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = round(time.monotonic() - started, 1)
    if result.reasons:
        result.status = "failed-to-grade"
    elif result.empty:
        result.status = "missing"
    elif result.pending:
        result.status = "manual-pending"
    else:
        result.status = "scored"
    result.save(results_dir(ctx.course, ctx.assignment) / f"{student}.json")
    return result


def print_summary(results: dict[str, StudentResult], stream=sys.stdout) -> None:
    for student, result in sorted(results.items()):
        print(f"{student:<24} {result.status:<16} {result.score:g}/{result.max_score:g}",
              file=stream)
