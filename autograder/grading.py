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
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from autograder import jail
from autograder.build import BuildError, notebook_names
from autograder.course import COURSE_ID, db_path, db_url, thread_env
from autograder.ingest import FAILED, collection_time, copy_limited, ingest
from autograder.nbg import base_env, ensure_tools_on_path, run_nbgrader, tail
from autograder.outputs import cap_notebook
from autograder.reconcile import (
    RUN_STATES_WITH_GRADES,
    Cell,
    SandboxOutcome,
    Verdict,
    reconcile,
)
from autograder.results import CellResult, SandboxResult, StudentResult, results_dir
from autograder.sandbox import CaseBank, Limits, SandboxReport, run_sandbox
from autograder.testcells import assignment_cells, strip_hidden

MAX_COMMENT = 4000
SANDBOX_FIELDS = ("passed", "score", "cases", "failed_cases", "message", "summary",
                  "visible_passed")


@dataclass
class Options:
    workers: int = max(1, os.cpu_count() or 1)
    cell_timeout: float = 120.0
    submission_timeout: float = 900.0
    memory_mb: int = 2048
    unsafe_no_isolation: bool = False   # grade without the sandbox (recorded everywhere)
    quiet: bool = False


def kernel_dirs() -> list[Path]:
    """Where the python3 kernelspec lives (bound into the jail if outside the venv)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        spec = KernelSpecManager().get_kernel_spec("python3")
    except Exception:
        return []
    dirs = [Path(spec.resource_dir)]
    if spec.argv and os.path.isabs(spec.argv[0]):
        dirs.append(Path(os.path.realpath(spec.argv[0])).parents[1])
    return dirs


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
        self._make_template()
        self.kernel_dirs = kernel_dirs()

    def _make_template(self) -> None:
        """A copy of the gradebook with the assignment, no student, and nothing secret.

        nbgrader restores a submission's test cells from the gradebook's source
        cells, and the notebook run executes them in the student's kernel. The copy
        given to notebook runs therefore holds the test cells as released: hidden
        tests taken out (and their checksums recomputed), so that no kernel ever
        runs, or sees, a hidden test. The hidden cases are scored by the sandbox.
        """
        from nbgrader.api import Gradebook
        from nbgrader.utils import compute_checksum
        shutil.copyfile(db_path(self.course), self.template_db)
        with Gradebook(f"sqlite:///{self.template_db}", COURSE_ID) as gb:
            assignment = gb.find_assignment(self.assignment)
            for student in list(gb.students):
                gb.remove_student(student.id)
            for notebook in assignment.notebooks:
                master = nbformat.read(str(self.source / f"{notebook.name}.ipynb"), as_version=4)
                by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in master.cells}
                for cell in notebook.source_cells:
                    released = strip_hidden(cell.source)
                    if released != cell.source and cell.name in by_id:
                        copy = nbformat.from_dict(dict(by_id[cell.name]))
                        copy.source = released
                        cell.source, cell.checksum = released, compute_checksum(copy)
            gb.db.commit()

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


def notebook_state(path: Path) -> tuple[str, str | None]:
    if not path.exists():
        return "missing", f"{path.name} was not submitted (its cells score 0)"
    try:
        notebook = nbformat.read(str(path), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return "corrupt", (f"{path.name} is not a valid notebook ({text}); its written "
                           "answers cannot be graded (its tests were scored from the package)")
    return "ok", None


def _failure_reason(nb: str, run, budget: float) -> str:
    if run.timed_out:
        return f"running {nb}.ipynb took longer than {budget:.0f} s"
    text = run.output
    if "DeadKernelError" in text or "Kernel died" in text or "kernel died" in text:
        return (f"the kernel died while running {nb}.ipynb (os._exit, a crash, or out of "
                "memory)")
    if "UnresponsiveKernelError" in text:
        return f"the kernel stopped responding while running {nb}.ipynb"
    lines = run.error_lines(1)
    return f"nbgrader could not autograde {nb}.ipynb" + (f" ({lines[0][:200]})" if lines else "")


def sanitize(path: Path) -> list[str]:
    """Fix what nbgrader itself trips over in a submitted notebook; return notes.

    A cell pasted twice keeps its grade id; nbgrader's DeduplicateIds then leaves
    metadata that makes ``OverwriteCells.add_missing_cells`` raise KeyError. Only
    the first cell with a grade id keeps its nbgrader metadata here (nbgrader
    would overwrite a graded cell's source with the instructor's anyway).
    """
    notebook = nbformat.read(str(path), as_version=4)
    seen, notes = set(), []
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if not grade_id or grade_id in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"{path.name}: a second copy of cell {grade_id!r} was ignored"
                         if grade_id else f"{path.name}: a cell with broken nbgrader metadata "
                         "was treated as an ordinary cell")
        else:
            seen.add(grade_id)
    if notes:
        nbformat.write(notebook, str(path))
    return notes


def run_notebooks(ctx: Context, student: str, submitted: Path, states: dict, work: Path,
                  notes: list[str]):
    """Autograde the valid notebooks in a private course; return (in-notebook grades, runs).

    One nbgrader run does all of them; if it fails, each notebook it did not
    produce is run alone, and a notebook that still fails is autograded without
    execution (so that its written answers can be graded by hand).
    """
    private = work / "course"
    home = work / "home"
    for sub in ("tmp", "runtime", "data", ".ipython", "mpl", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    # No master notebook here: nbgrader restores test cells from the (stripped) gradebook;
    # it only needs the released files of source/ to overwrite the student's copies.
    shutil.copytree(ctx.source, private / "source" / ctx.assignment,
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    target = private / "submitted" / student / ctx.assignment
    copy_limited(submitted, target, [])
    valid = [nb for nb in ctx.notebooks if states[nb][0] == "ok"]
    for nb in ctx.notebooks:
        if nb not in valid:
            (target / f"{nb}.ipynb").unlink(missing_ok=True)
        else:
            notes += sanitize(target / f"{nb}.ipynb")
    shutil.copyfile(ctx.template_db, private / "gradebook.db")
    config = (ctx.course / "nbgrader_config.py").read_text(encoding="utf-8")
    env = base_env({
        "HOME": str(home), "TMPDIR": str(home / "tmp"), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data"),
        "MPLCONFIGDIR": str(home / "mpl"), "XDG_CACHE_HOME": str(home / "cache"),
        "CNNLAB_CACHE": str(home / "cache"), "NBGRADER_EXECUTION": "autograde",
        "CNNLAB_CELL_TIMEOUT": str(int(ctx.options.cell_timeout)),
    })
    if jail.available():
        config += kernel_sandbox(ctx, work, env)
    elif ctx.kernel_dirs:  # unsafe: the instructor's python3 kernelspec, unjailed
        env["JUPYTER_PATH"] = str(ctx.kernel_dirs[0].parents[1])
    (private / "nbgrader_config.py").write_text(config, encoding="utf-8")
    prefix = None
    deadline = time.monotonic() + ctx.options.submission_timeout
    logs = results_dir(ctx.course, ctx.assignment) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    produced = private / "autograded" / student / ctx.assignment
    runs = {nb: {"state": states[nb][0], "reason": states[nb][1], "seconds": 0.0}
            for nb in ctx.notebooks}

    def autograde(extra, label, budget):
        log = work / f"autograde-{label}.log"
        run = run_nbgrader(["autograde", ctx.assignment, f"--student={student}", "--force",
                            *extra], private, max(5.0, budget), log, env=env, prefix=prefix)
        (logs / f"{student}-{label}.log").write_text(tail(log, 100_000), encoding="utf-8")
        return run

    if valid:
        run = autograde([], "all", deadline - time.monotonic())
        share = run.seconds / len(valid)
        for nb in valid:
            runs[nb].update(state="graded", seconds=round(share, 1))
        missing = [nb for nb in valid if not (produced / f"{nb}.ipynb").exists()]
        if not run.ok or missing:
            for nb in missing:
                budget = deadline - time.monotonic()
                if run.timed_out or budget < 5:
                    alone = run  # no time left to run it alone
                else:
                    alone = autograde([f"--notebook={nb}"], nb, budget)
                if alone.ok and (produced / f"{nb}.ipynb").exists():
                    runs[nb]["seconds"] = round(alone.seconds, 1)
                    continue
                why = _failure_reason(nb, alone, ctx.options.submission_timeout)
                retry = autograde([f"--notebook={nb}", "--no-execute"], f"{nb}-no-execute", 120)
                done = retry.ok and (produced / f"{nb}.ipynb").exists()
                runs[nb] = {"state": "not-run" if done else "failed",
                            "reason": why + ("; its tests were scored from the package, its "
                                             "written answers can be graded by hand" if done
                                             else ""),
                            "seconds": round(alone.seconds + retry.seconds, 1)}
    return read_private_gradebook(private, ctx, student), runs


def kernel_sandbox(ctx: Context, work: Path, env: dict) -> str:
    """Make nbgrader's kernels start in the sandbox; return the config lines it needs.

    The kernelspec (in a data folder of this submission's, first on
    ``JUPYTER_PATH``) launches :mod:`autograder.kernel_jail`; the kernel has no
    network, so it talks to nbgrader over Unix sockets in a short folder of
    their own (a socket path is limited to 107 bytes).
    """
    from autograder.kernel_jail import write_kernelspec
    sockets = Path(tempfile.mkdtemp(prefix="cnnlab-ipc-"))
    jail.make_writable(sockets)
    ctx.socket_dirs.append(sockets)
    scratch = work / "kernels"
    scratch.mkdir()
    kernel_env = {k: env[k] for k in ("MPLBACKEND", "NBGRADER_EXECUTION", "CNNLAB_CELL_TIMEOUT",
                                      "PYDEVD_DISABLE_FILE_VALIDATION", "JUPYTER_PLATFORM_DIRS")}
    kernel_env.update(thread_env(), PATH="/usr/bin:/bin", LANG="C.UTF-8")
    memory = max(ctx.options.memory_mb, 1024) << 20
    write_kernelspec(work / "jupyter", {
        "scratch": str(scratch), "sockets": str(sockets), "env": kernel_env,
        "rlimits": {"RLIMIT_AS": 2 * memory, "RLIMIT_FSIZE": 64 << 20, "RLIMIT_CORE": 0,
                    "RLIMIT_CPU": int(ctx.options.submission_timeout) + 5}},
        work / "kernel-jail.json")
    env["JUPYTER_PATH"] = str(work / "jupyter")
    return ("\n# added for this run: kernels in the sandbox talk over Unix sockets\n"
            "c.KernelManager.transport = 'ipc'\n"
            f"c.KernelManager.ip = {str(sockets / 'k')!r}\n")


def read_private_gradebook(private: Path, ctx: Context, student: str) -> dict:
    """Grades and comments the notebook runs produced (untrusted: student code ran there)."""
    from nbgrader.api import Gradebook, MissingEntry
    found = {}
    try:
        with Gradebook(f"sqlite:///{private / 'gradebook.db'}", COURSE_ID) as gb:
            for nb in ctx.notebooks:
                try:
                    snb = gb.find_submission_notebook(nb, ctx.assignment, student)
                except MissingEntry:
                    continue
                found[nb] = {
                    "grades": {g.name: {"auto_score": g.auto_score,
                                        "needs_manual_grade": bool(g.needs_manual_grade)}
                               for g in snb.grades},
                    "comments": {c.name: c.auto_comment for c in snb.comments},
                }
    except Exception as exc:  # a gradebook the notebook run broke
        found["_error"] = f"{type(exc).__name__}: {exc}"
    return found


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
        gb.update_or_create_submission(ctx.assignment, student,
                                       **({"timestamp": stamp} if stamp else {}))
    except Exception:
        gb.update_or_create_submission(ctx.assignment, student)


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


def copy_autograded(ctx: Context, student: str, work: Path) -> None:
    """Keep the autograded notebooks (outputs bounded) and the student's files for grading."""
    source = work / "course" / "autograded" / student / ctx.assignment
    dest = ctx.course / "autograded" / student / ctx.assignment
    if dest.exists():
        shutil.rmtree(dest)
    if not source.is_dir():
        return
    notes: list[str] = []
    copy_limited(source, dest, notes)  # the student's files, within limits
    for path in sorted(source.glob("*.ipynb")):
        target = dest / path.name
        try:
            notebook = nbformat.read(str(path), as_version=4)
        except Exception:
            target.unlink(missing_ok=True)
            continue
        cap_notebook(notebook)
        nbformat.write(notebook, str(target))


def print_summary(results: dict[str, StudentResult], stream=sys.stdout) -> None:
    for student, result in sorted(results.items()):
        print(f"{student:<24} {result.status:<16} {result.score:g}/{result.max_score:g}",
              file=stream)
