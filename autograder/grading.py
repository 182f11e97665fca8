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

Steps 1-3 are a submission's *work* (:func:`work_on_submission`): it reads the
course but writes nothing in it, and returns a :class:`Work` (the record so far,
the autograded notebooks as bytes, the logs). Steps 4-5 are its *recording*
(:func:`record_work`), done by the coordinator alone, one student at a time, so
that the gradebook and ``grading/`` have one writer. The work runs in a local
thread pool, or as Dask tasks on a cluster (:mod:`autograder.cluster`). A run's
students are listed in ``grading/<ps>-run.json``; ``resume=True`` grades those
without a record of that run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from autograder import jail
from autograder.build import BuildError, notebook_names
from autograder.casebank import CaseBank
from autograder.course import db_path
from autograder.gradebook import record, template_gradebook
from autograder.ingest import FAILED, ingest
from autograder.kernel_jail import write_matplotlib_config
from autograder.nbg import ensure_tools_on_path
from autograder.notebook_runs import (
    autograded_files,
    kernel_dirs,
    notebook_state,
    run_notebooks,
    write_autograded,
    write_logs,
)
from autograder.results import StudentResult, load_results, results_dir
from autograder.sandbox import Limits, SandboxReport, run_sandbox
from autograder.testcells import assignment_cells, demo_cell_ids
from cnnlab.checks._core import serialize_ast_parsing
from cnnlab.progress import progress_bar

serialize_ast_parsing()  # the workers are threads (see cnnlab.checks._core)


@dataclass
class Options:
    workers: int = max(1, os.cpu_count() or 1)
    cell_timeout: float = 120.0
    submission_timeout: float = 900.0
    memory_mb: int = 2048
    unsafe_no_isolation: bool = False   # grade without the sandbox (recorded everywhere)
    quiet: bool = False
    cluster: str | None = None          # a Dask scheduler's address; None: a local pool
    resume: bool = False                # grade only the last run's students not yet recorded


class Context:
    """What grading one assignment needs, on the coordinator or on a cluster's worker.

    ``course`` holds ``source/<ps>`` and ``nbgrader_config.py``; it is only read.
    On the coordinator the template gradebook is made from the course's gradebook;
    a worker is given it (``template_db``) with the rest of the course it needs.
    Private folders go in ``scratch`` (default: the temporary folder).
    """

    def __init__(self, course: Path, assignment: str, options: Options,
                 template_db: Path | None = None, scratch: Path | None = None):
        ensure_tools_on_path()
        self.course = Path(course).resolve()
        self.assignment = assignment
        self.options = options
        self.source = self.course / "source" / assignment
        if (template_db is None and not db_path(self.course).exists()) or \
                not self.source.is_dir():
            raise BuildError(f"{assignment} is not built in {self.course}: run "
                             f"`python -m autograder build {assignment}` first")
        self.notebooks = notebook_names(self.course, assignment)
        self.cells = assignment_cells(self.source, self.notebooks)
        self.cell_index = {(c.notebook, c.grade_id): c for c in self.cells}
        self.demo_cells = demo_cell_ids(self.source, self.notebooks)
        self.bank = CaseBank([c for c in self.cells if c.sandboxed])
        self.trusted_package = self.source / "cnnlab"
        self.isolation = jail.require(options.unsafe_no_isolation)
        self.limits = Limits(cell_timeout=options.cell_timeout,
                             submission_timeout=options.submission_timeout,
                             memory_mb=options.memory_mb,
                             unsafe_no_isolation=options.unsafe_no_isolation)
        self.lock = threading.Lock()
        self.socket_dirs: list[Path] = []
        self.workroot = Path(tempfile.mkdtemp(prefix="cnnlab-grading-", dir=scratch))
        if template_db is None:
            template_db = self.workroot / "template.db"
            template_gradebook(self.course, assignment, self.source, template_db)
        self.template_db = Path(template_db)
        self.kernel_dirs = kernel_dirs()
        self.matplotlib_config = write_matplotlib_config(self.workroot / "matplotlib")

    def close(self) -> None:
        shutil.rmtree(self.workroot, ignore_errors=True)
        for folder in self.socket_dirs:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Work:
    """One submission's work, before anything is recorded: what a worker hands back."""

    result: StudentResult               # the record so far (no scores: recording adds them)
    complete: bool = False              # False: grading broke off, nothing to record
    states: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    in_notebook: dict = field(default_factory=dict)
    sandbox: SandboxReport | None = None
    autograded: dict[str, bytes] = field(default_factory=dict)  # path in autograded/: bytes
    logs: dict[str, str] = field(default_factory=dict)          # file in grading/<ps>/logs


def grade(assignment: str, course: Path, submissions: Path | None = None,
          students: list[str] | None = None, options: Options | None = None) -> dict[str, dict]:
    """Grade every submission of ``assignment`` (after copying them in from ``submissions``)."""
    options = options or Options()
    course = Path(course).resolve()
    jail.require(options.unsafe_no_isolation)  # refuse before touching anything
    if options.resume:
        if submissions is not None:
            raise ValueError("submissions: --resume grades what the interrupted run "
                             f"collected; leave it out (got {str(submissions)!r})")
        run = _resume_run(course, assignment, students)
    else:
        ingest_notes: dict[str, list[str]] = {}
        if submissions is not None:
            ingest_notes = ingest(Path(submissions), assignment, course)
        submitted = course / "submitted"
        everyone = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}")
                          if p.is_dir())
        chosen = [s for s in everyone if students is None or s in students]
        run = _start_run(course, assignment, chosen, ingest_notes)
    todo = run["todo"]
    context = Context(course, assignment, options)
    results: dict[str, StudentResult] = {}
    started = time.monotonic()
    try:
        if options.cluster:
            from autograder.cluster import work_on_cluster
            works = work_on_cluster(context, todo, run["notes"], _say(options))
        else:
            works = _work_locally(context, todo, run["notes"])
        bar = None if options.quiet else progress_bar(None, total=len(todo), unit="submission",
                                                     desc=f"grading {assignment}")
        for work in works:
            with _no_interrupt():  # a student's record is written whole, or not at all
                result = record_work(context, work, run["run"])
            results[result.student] = result
            if bar is not None:
                bar.update(1)
            _say(options)(f"  {result.student:<24} {result.status:<16} {result.score:g}/"
                          f"{result.max_score:g}  ({result.seconds:.0f} s)"
                          + (f"  {'; '.join(result.reasons)[:120]}" if result.reasons
                             else ""), bar)
        if bar is not None:
            bar.close()
    finally:
        context.close()
    _say(options)(f"graded {len(results)} submissions in {time.monotonic() - started:.0f} s; "
                  f"records in {results_dir(course, assignment)}")
    return results


def _say(options: Options) -> Callable[..., None]:
    def say(text: str, bar=None) -> None:
        if options.quiet:
            return
        if bar is not None:
            bar.write(text)
        else:
            print(text, flush=True)
    return say


def _work_locally(ctx: Context, students: list[str], notes: dict[str, list[str]]
                  ) -> Iterator[Work]:
    """Each submission's work in a thread pool; the works as they finish."""
    say = _say(ctx.options)
    say(f"grading {ctx.assignment}: {len(students)} submissions, {ctx.options.workers} "
        f"workers, isolation: {ctx.isolation}")
    pool = ThreadPoolExecutor(max_workers=max(1, ctx.options.workers))
    try:
        futures = [pool.submit(work_on_submission, ctx, student,
                               ctx.course / "submitted" / student / ctx.assignment,
                               notes.get(student, []))
                   for student in students]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- the run: which students, and which of them are recorded -------------------------------

def run_file(course: Path, assignment: str) -> Path:
    """The last grading run of ``assignment``: its id and students (beside the records)."""
    return results_dir(course, assignment).with_name(f"{assignment}-run.json")


def _start_run(course: Path, assignment: str, students: list[str],
               notes: dict[str, list[str]]) -> dict:
    run = {"run": uuid.uuid4().hex, "started": datetime.now(UTC).isoformat(timespec="seconds"),
           "students": students, "notes": {s: notes.get(s, []) for s in students}}
    path = run_file(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(run, indent=1), encoding="utf-8")
    os.replace(partial, path)
    return {**run, "todo": list(students)}


def _resume_run(course: Path, assignment: str, students: list[str] | None) -> dict:
    path = run_file(course, assignment)
    if not path.is_file():
        raise ValueError(f"resume: no grading run of {assignment} to resume ({path} does "
                         "not exist)")
    run = json.loads(path.read_text(encoding="utf-8"))
    recorded = {s for s, r in load_results(course, assignment).items() if r.run == run["run"]}
    todo = [s for s in run["students"] if s not in recorded
            and (students is None or s in students)]
    return {**run, "todo": todo}


@contextmanager
def _no_interrupt():
    """Hold Ctrl-C (SIGINT) back until the block ends; in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


# -- one submission ----------------------------------------------------------------------------

def work_on_submission(ctx: Context, student: str, submitted: Path,
                       notes: list[str] | None = None) -> Work:
    """Score ``submitted`` (one student's folder) and run its notebooks; record nothing.

    Reads ``ctx``'s course and ``submitted``, writes only in a private folder of its own.
    """
    started = time.monotonic()
    notes = list(notes or [])
    result = StudentResult(student, ctx.assignment,
                           graded_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           reasons=[n for n in notes if n.startswith(FAILED)],
                           notes=[n for n in notes if not n.startswith(FAILED)],
                           max_score=sum(c.points for c in ctx.cells), isolation=ctx.isolation)
    done = Work(result)
    work = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=ctx.workroot))
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
        in_notebook, runs = run_notebooks(ctx, student, submitted, states, work, result.notes,
                                          done.logs)
        result.notebooks = runs
        for run in runs.values():
            if run["state"] in ("corrupt", "failed"):
                result.reasons.append(run["reason"])
            elif run["state"] in ("missing", "not-run"):
                result.notes.append(run["reason"])
        done.states, done.runs, done.in_notebook, done.sandbox = states, runs, in_notebook, \
            sandbox
        done.autograded = autograded_files(ctx, student, work)
        done.complete = True
    except Exception as exc:  # one submission's trouble never stops the class
        result.reasons.append(f"internal error while grading: {type(exc).__name__}: {exc}")
        result.traceback = traceback.format_exc()[-4000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = round(time.monotonic() - started, 1)
    return done


def record_work(ctx: Context, work: Work, run: str = "") -> StudentResult:
    """Write one submission's work into the gradebook, ``autograded/`` and ``grading/``.

    The coordinator's half: the student's JSON record is written last, so a student
    with a record of this run is wholly recorded.
    """
    started = time.monotonic()
    result, student = work.result, work.result.student
    try:
        write_logs(ctx.course, ctx.assignment, work.logs)
        if work.complete:
            record(ctx, student, work.states, work.runs, work.in_notebook, work.sandbox, result)
            write_autograded(ctx.course, ctx.assignment, student, work.autograded)
    except Exception as exc:
        result.reasons.append(f"internal error while recording: {type(exc).__name__}: {exc}")
        result.traceback = traceback.format_exc()[-4000:]
    result.seconds = round(result.seconds + time.monotonic() - started, 1)
    result.run = run
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


def grade_student(ctx: Context, student: str, notes: list[str] | None = None
                  ) -> StudentResult:
    """One submission of ``submitted/``, worked on and recorded here."""
    submitted = ctx.course / "submitted" / student / ctx.assignment
    return record_work(ctx, work_on_submission(ctx, student, submitted, notes))


def failed_work(ctx: Context, student: str, reason: str, notes: list[str] | None = None
                ) -> Work:
    """The work of a submission that could not be graded (nothing to record but why)."""
    notes = list(notes or [])
    return Work(StudentResult(student, ctx.assignment,
                              graded_at=datetime.now(UTC).isoformat(timespec="seconds"),
                              reasons=[n for n in notes if n.startswith(FAILED)] + [reason],
                              notes=[n for n in notes if not n.startswith(FAILED)],
                              max_score=sum(c.points for c in ctx.cells),
                              isolation=ctx.isolation))


def print_summary(results: dict[str, StudentResult], stream=sys.stdout) -> None:
    for student, result in sorted(results.items()):
        print(f"{student:<24} {result.status:<16} {result.score:g}/{result.max_score:g}",
              file=stream)
