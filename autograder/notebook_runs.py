"""The notebook runs: nbgrader autograde in a private course copy, kernels jailed.

Student code runs in the notebook's kernel, so what a run reports is untrusted: it
only ever sits beside the sandbox's scores (see :mod:`autograder.reconcile`). A
notebook whose run dies is autograded again without execution, so that its written
answers can still be graded by hand.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder import jail
from autograder.course import COURSE_ID, thread_env
from autograder.ingest import copy_limited
from autograder.nbg import base_env, run_nbgrader, tail
from autograder.outputs import cap_notebook
from autograder.results import results_dir

if TYPE_CHECKING:  # the grading run's shared state (grading imports this module)
    from autograder.grading import Context


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


# nbgrader's Execute (nbclient) skips cells with this tag; only grading sets it
NOT_RUN_TAG = "cnnlab-not-run-under-grading"


def sanitize(path: Path, not_run: frozenset[str] = frozenset()) -> list[str]:
    """Fix what nbgrader itself trips over in a submitted notebook, mark the cells it
    is not to run; return notes.

    A cell pasted twice keeps its grade id; nbgrader's DeduplicateIds then leaves
    metadata that makes ``OverwriteCells.add_missing_cells`` raise KeyError. Only
    the first cell with a grade id keeps its nbgrader metadata here (nbgrader
    would overwrite a graded cell's source with the instructor's anyway).

    ``not_run`` holds the ids of the source's ungraded code cells (demonstrations and
    figures): tagged here, nbgrader leaves them unexecuted. The tag is taken off every
    other cell, so a submission cannot skip a cell of its own choosing (a student's
    cell, not in the source, runs).
    """
    notebook = nbformat.read(str(path), as_version=4)
    seen, notes = set(), []
    for cell in notebook.cells:
        tags = cell.get("metadata", {}).get("tags")
        if isinstance(tags, list) and NOT_RUN_TAG in tags:
            cell.metadata.tags = [t for t in tags if t != NOT_RUN_TAG]
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            if cell.cell_type == "code" and cell.get("id") in not_run:
                tags = cell.metadata.get("tags")
                cell.metadata.tags = [*(tags if isinstance(tags, list) else []), NOT_RUN_TAG]
            continue
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if not grade_id or grade_id in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"{path.name}: a second copy of cell {grade_id!r} was ignored"
                         if grade_id else f"{path.name}: a cell with broken nbgrader metadata "
                         "was treated as an ordinary cell")
        else:
            seen.add(grade_id)
    nbformat.write(notebook, str(path))
    return notes


def run_notebooks(ctx: Context, student: str, submitted: Path, states: dict, work: Path,
                  notes: list[str], logs: dict[str, str]):
    """Autograde the valid notebooks in a private course; return (in-notebook grades, runs).

    One nbgrader run does all of them; if it fails, each notebook it did not
    produce is run alone, and a notebook that still fails is autograded without
    execution (so that its written answers can be graded by hand). Each run's log
    goes into ``logs`` (file name: text), for the coordinator to write.
    """
    valid = [nb for nb in ctx.notebooks if states[nb][0] == "ok"]
    private, env = _private_course(ctx, student, submitted, valid, work, notes)
    deadline = time.monotonic() + ctx.options.submission_timeout
    produced = private / "autograded" / student / ctx.assignment
    runs = {nb: {"state": states[nb][0], "reason": states[nb][1], "seconds": 0.0}
            for nb in ctx.notebooks}

    def autograde(extra, label, budget):
        log = work / f"autograde-{label}.log"
        run = run_nbgrader(["autograde", ctx.assignment, f"--student={student}", "--force",
                            *extra], private, max(5.0, budget), log, env=env)
        logs[f"{student}-{label}.log"] = tail(log, 100_000)
        return run

    if valid:
        run = autograde([], "all", deadline - time.monotonic())
        for nb in valid:
            runs[nb].update(state="graded", seconds=round(run.seconds / len(valid), 1))
        for nb in [nb for nb in valid if not (produced / f"{nb}.ipynb").exists()]:
            budget = deadline - time.monotonic()
            # no time left to run it alone: the first run's failure is its failure
            alone = run if run.timed_out or budget < 5 else autograde(
                [f"--notebook={nb}"], nb, budget)
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


def _private_course(ctx: Context, student: str, submitted: Path, valid: list[str], work: Path,
                    notes: list[str]) -> tuple[Path, dict]:
    """A throwaway course holding this submission alone; return it and nbgrader's env."""
    private = work / "course"
    home = work / "home"
    for sub in ("tmp", "runtime", "data", ".ipython", "mpl", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    # for an unjailed kernel (a jailed one gets its own copy)
    shutil.copytree(ctx.matplotlib_config, home / "mpl", dirs_exist_ok=True)
    # No master notebook here: nbgrader restores test cells from the (stripped) gradebook;
    # it only needs the released files of source/ to overwrite the student's copies.
    shutil.copytree(ctx.source, private / "source" / ctx.assignment,
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    target = private / "submitted" / student / ctx.assignment
    copy_limited(submitted, target, [])
    for nb in ctx.notebooks:
        if nb not in valid:
            (target / f"{nb}.ipynb").unlink(missing_ok=True)
        else:
            notes += sanitize(target / f"{nb}.ipynb", ctx.demo_cells.get(nb, frozenset()))
    shutil.copyfile(ctx.template_db, private / "gradebook.db")
    config = (ctx.course / "nbgrader_config.py").read_text(encoding="utf-8")
    config += ("\n# added for this run: the source's ungraded cells are not run\n"
               f"c.Execute.skip_cells_with_tag = {NOT_RUN_TAG!r}\n")
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
    return private, env


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
        "matplotlib": str(ctx.matplotlib_config),
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


def autograded_files(ctx: Context, student: str, work: Path) -> dict[str, bytes]:
    """The autograded notebooks (outputs bounded) and the student's files, as bytes.

    Read on the machine that graded; :func:`write_autograded` puts them in the course.
    """
    source = work / "course" / "autograded" / student / ctx.assignment
    if not source.is_dir():
        return {}
    kept = work / "autograded-kept"
    copy_limited(source, kept, [])  # the student's files, within limits
    for path in sorted(source.glob("*.ipynb")):
        target = kept / path.name
        try:
            notebook = nbformat.read(str(path), as_version=4)
        except Exception:
            target.unlink(missing_ok=True)
            continue
        cap_notebook(notebook)
        nbformat.write(notebook, str(target))
    return {p.relative_to(kept).as_posix(): p.read_bytes()
            for p in sorted(kept.rglob("*")) if p.is_file()}


def write_autograded(course: Path, assignment: str, student: str,
                     files: dict[str, bytes]) -> None:
    """Replace ``autograded/<student>/<ps>`` with ``files`` (from :func:`autograded_files`)."""
    dest = Path(course) / "autograded" / student / assignment
    if dest.exists():
        shutil.rmtree(dest)
    for name, data in files.items():
        target = dest / safe_relative(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def write_logs(course: Path, assignment: str, logs: dict[str, str]) -> None:
    folder = results_dir(course, assignment) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in logs.items():
        (folder / safe_relative(name).name).write_text(text, encoding="utf-8")


def safe_relative(name: str) -> Path:
    """A relative path that stays inside the folder it is joined to, or ValueError."""
    path = Path(name)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise ValueError(f"name: expected a relative path inside the folder, got {name!r}")
    return path
