"""Run the sandboxed child over one submission's tasks, whatever the student's code does.

A *task* is one ``check()`` call of a test cell (its cases and their inputs). The child
(:mod:`autograder._sandbox_child`) runs the tasks one after the other in the jail and
streams events back (``ready``, ``start``, ``imported``, ``case``, ``rule``, ``end``).
A task that hangs or kills the process is charged its failure, and the tasks still to
run get a fresh process (an *attempt*); nothing the child sends can do more than fail
its own tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder import jail
from autograder._sandbox_child import NEEDS_PRELOAD_EXIT
from autograder.attempt import Attempt, exit_reason
from autograder.course import REFERENCE_PACKAGE, REPO, thread_env

CHILD = Path(__file__).with_name("_sandbox_child.py")
# What the sandboxed process imports before student code runs. Importing SciPy there costs
# over a second per submission, and most submissions never touch it: the first attempt
# imports NumPy alone and watches SciPy's folder (see _sandbox_child.install_guard); if the
# student's code opens it, every result of that attempt is dropped and the tests run again
# with all of PRELOAD imported and its forbidden callables wired before the student's code.
# (socket and subprocess: SciPy imports them, and the guard refuses their import but not
# their presence; preloaded in both attempts, a student's ``import socket`` behaves the
# same in either: allowed, and every use refused.)
PRELOAD_MINIMAL = ("numpy", "ctypes", "socket", "subprocess")
PRELOAD = ("numpy", "scipy", "scipy.signal", "scipy.linalg", "scipy.fft", "scipy.special",
           "scipy.ndimage", "scipy.optimize", "ctypes")


def _watched_folders() -> list[str]:
    """The folders of the packages that PRELOAD, or a forbidden callable, needs and
    PRELOAD_MINIMAL does not import."""
    from cnnlab.checks import EXERCISES
    needed = {n.partition(".")[0] for n in PRELOAD}
    needed |= {n.partition(".")[0] for e in EXERCISES for n in e.rule.forbidden}
    folders = []
    for name in sorted(needed - set(PRELOAD_MINIMAL) - {"cnnlab"}):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folders += [os.path.realpath(p) for p in spec.submodule_search_locations]
    return folders


def _site_dirs() -> tuple[list[str], list[str]]:
    paths = sysconfig.get_paths()
    stdlib = [p for p in sys.path if p and Path(p).is_dir() and (
        p.startswith(paths["stdlib"]) or p.startswith(paths["platstdlib"]))]
    sites = list(dict.fromkeys([paths["purelib"], paths["platlib"], *site.getsitepackages()]))
    return stdlib, [s for s in sites if Path(s).is_dir()]


def _denied(course: Path | None) -> list[str]:
    denied = {os.path.realpath(REPO), os.path.realpath(REFERENCE_PACKAGE), str(Path.home())}
    if course is not None:
        denied.add(os.path.realpath(course))
    try:  # an installed (not editable) reference package in site-packages
        import cnnlab
        denied.add(os.path.realpath(Path(cnnlab.__file__).parent))
    except ImportError:
        pass
    return sorted(denied)


@dataclass
class _Progress:
    """How far one attempt got: the state machine of the child's events."""

    deadline: float
    why: str = "startup"        # what the deadline is for: startup, task, gap
    ready: bool = False
    current: str | None = None  # the task running now
    imported: bool = False      # the current task's module imported
    finished: list[str] = field(default_factory=list)
    stop: dict | None = None    # a timeout or garbage event that ended the attempt
    returncode: int | None = None


class TaskRun:
    """The tasks of one submission, run in as many attempts as crashes and hangs need."""

    def __init__(self, box: Path, bank, limits, course: Path | None, cells: list):
        self.box, self.limits, self.course = box, limits, course
        self.tasks = bank.by_id()
        self.modules = {tid: task.check.module for tid, task in self.tasks.items()}
        # for each task, the task ids of each cell that calls it
        self.cells_of = {tid: [[bank.tasks[c.key].id for c in cell.calls] for cell in cells
                               if any(bank.tasks[c.key].id == tid for c in cell.calls)]
                         for tid in self.tasks}
        self.jailed = jail.available()
        self._start_over(preload_all=False)  # until student code opens what PRELOAD_MINIMAL lacks

    # -- the whole run -------------------------------------------------------------------
    def run(self, report) -> dict[str, dict]:
        """Run every task; return {task id: {"cases": {index: (header, arrays)},
        "error": str, "rules": [(function, call)]}}."""
        self._prepare_box()
        report.isolation = jail.require(self.limits.unsafe_no_isolation) + \
            " + audit hook + rlimits"
        self.deadline_total = time.monotonic() + self.limits.submission_timeout
        number = 0
        while self.pending:
            number += 1
            progress = self._attempt(number)
            if not self.preload_all and (
                    (progress.stop or {}).get("ev") == "needs-preload"
                    or progress.returncode == NEEDS_PRELOAD_EXIT):
                self._start_over(preload_all=True)
                # its own time budget: an honest student may open SciPy (scipy.fft is
                # allowed) late in a run
                self.deadline_total = time.monotonic() + self.limits.submission_timeout
                continue
            if not self._settle(progress, report):
                break
        return self.outcomes

    def _start_over(self, preload_all: bool) -> None:
        """Every test (again), with PRELOAD or PRELOAD_MINIMAL; nothing kept from before."""
        self.preload_all = preload_all
        self.outcomes = {tid: {"cases": {}, "error": None, "rules": []} for tid in self.tasks}
        self.pending = list(self.tasks)

    def _prepare_box(self) -> None:
        for task in self.tasks.values():
            (self.box / f"{task.id}.npz").write_bytes(task.npz)
        shutil.copyfile(CHILD, self.box / "_runner.py")
        shutil.copyfile(jail.LOCKDOWN, self.box / "_lockdown.py")
        self.stdlib, self.sites = _site_dirs()
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(self.box), "LANG": "C.UTF-8",
                    "TMPDIR": str(self.box), "NBGRADER_EXECUTION": "autograde",
                    "MPLBACKEND": "Agg", **thread_env()}
        if self.jailed:
            jail.make_writable(self.box)  # readable by the sandbox's user; bound read-only

    def _command(self, number: int) -> list[str]:
        limits, box = self.limits, self.box
        spec = {"sandbox": str(box), "stdlib": self.stdlib, "site_packages": self.sites,
                "preload": list(PRELOAD if self.preload_all else PRELOAD_MINIMAL),
                "watch": [] if self.preload_all else _watched_folders(),
                "allowed": [str(box), *self.stdlib, *self.sites],
                "denied": _denied(self.course),
                "rlimits": {"RLIMIT_AS": limits.memory_mb << 20, "RLIMIT_FSIZE": 1 << 20,
                            "RLIMIT_CORE": 0, "RLIMIT_CPU": int(limits.submission_timeout) + 5},
                "lockdown": str(box / "_lockdown.py") if self.jailed else None,
                "tasks": [{"id": tid, "check": self.tasks[tid].call.name,
                           "arrays": f"{tid}.npz", "cases": self.tasks[tid].encoded}
                          for tid in self.pending]}
        spec_path = box / f"spec{number}.json"
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, "-I", "-S", "-B", str(box / "_runner.py"), str(spec_path)]
        if self.jailed:
            command = jail.command(command, chdir=box, read_only=[box], env=self.env)
            spec_path.chmod(0o644)
        return command

    # -- one attempt ---------------------------------------------------------------------
    def _attempt(self, number: int) -> _Progress:
        attempt = Attempt(self._command(number), self.env, self.box, self.limits)
        progress = _Progress(deadline=time.monotonic() + self.limits.startup_timeout)

        def deadline_for():
            if time.monotonic() > self.deadline_total:
                return self.deadline_total, "total"
            return min(progress.deadline, self.deadline_total), progress.why

        try:  # whatever goes wrong in the parsing, the sandboxed process does not outlive it
            events = attempt.events(deadline_for)
            for header, arrays in events:
                if header.get("ev") == "needs-preload" and not self.preload_all:
                    progress.stop = header
                    break
                if header.get("ev") in ("timeout", "garbage"):
                    progress.stop = header
                    break
                self._handle(progress, header, arrays)
        except BaseException:
            attempt.kill()
            raise
        events.close()
        if progress.stop is not None:
            attempt.kill()
            progress.returncode = attempt.process.returncode
        else:
            progress.returncode = attempt.stop()
        return progress

    def _handle(self, progress: _Progress, header: dict, arrays: dict) -> None:
        """One event of the child (out-of-order ones are ignored: they can only cost the
        student)."""
        event, task_id, cell_timeout = header.get("ev"), header.get("task"), \
            self.limits.cell_timeout
        if event == "ready":
            progress.ready, progress.why = True, "gap"
            progress.deadline = time.monotonic() + cell_timeout
        elif not progress.ready:
            return
        elif event == "start" and task_id in self.pending and task_id not in progress.finished:
            progress.current, progress.imported, progress.why = task_id, False, "task"
            progress.deadline = time.monotonic() + cell_timeout
        elif task_id != progress.current or task_id is None:
            return
        elif event == "imported":
            progress.imported = True
        elif event == "import-error":
            self.outcomes[task_id]["error"] = f"importing {self.modules[task_id]} failed: " + \
                str(header.get("error"))[:2000]
        elif event == "rule":
            self.outcomes[task_id]["rules"].append((header.get("function"), header.get("call")))
        elif event == "case":
            index = header.get("case")
            if isinstance(index, int) and index not in self.outcomes[task_id]["cases"]:
                self.outcomes[task_id]["cases"][index] = (header, arrays)
        elif event == "end":
            progress.finished.append(task_id)
            progress.current, progress.why = None, "gap"
            progress.deadline = time.monotonic() + cell_timeout

    # -- after an attempt ----------------------------------------------------------------
    def _settle(self, progress: _Progress, report) -> bool:
        """Charge what went wrong; return whether another attempt should run."""
        limits, why_stopped = self.limits, progress.stop or {}
        stopped = exit_reason(progress.returncode, limits.memory_mb, self.jailed)
        if not progress.ready:
            why = (f"did not start within {limits.startup_timeout:.0f} s"
                   if why_stopped.get("ev") == "timeout" else stopped)
            report.error = f"the sandbox could not start ({why}; isolation: {report.isolation})"
            for tid in self.pending:
                self.outcomes[tid]["error"] = report.error
            return False
        self.pending = [tid for tid in self.pending if tid not in progress.finished]
        if progress.current is not None:
            self._charge_current(progress, stopped)
        elif not progress.finished:  # no progress at all: stop here
            why = why_stopped.get("why") or stopped
            self._fail_pending(f"the sandboxed process stopped before running this test ({why})")
            return False
        if time.monotonic() > self.deadline_total:
            self._fail_pending(f"not run: the submission's time budget of "
                               f"{limits.submission_timeout:.0f} s was used up")
            return False
        return True

    def _charge_current(self, progress: _Progress, stopped: str) -> None:
        """The task that was running when the attempt ended fails, and so do those it
        dooms."""
        limits, current, why_stopped = self.limits, progress.current, progress.stop
        if why_stopped and why_stopped.get("ev") == "timeout":
            if why_stopped.get("why") == "total":
                why = (f"the submission's time budget of {limits.submission_timeout:.0f} s "
                       "was used up")
            else:
                why = f"it did not finish within {limits.cell_timeout:.0f} s (infinite loop?)"
        elif why_stopped:
            why = why_stopped.get("why")
        else:
            why = stopped
        self.outcomes[current]["error"] = self.outcomes[current]["error"] or why
        self.pending.remove(current)
        if not progress.imported:  # the import itself hangs or crashes: do not retry
            for tid in list(self.pending):
                if self.modules[tid] == self.modules[current]:
                    self.outcomes[tid]["error"] = f"importing {self.modules[tid]} failed: {why}"
                    self.pending.remove(tid)
        # Tests whose cells have all failed already cannot change the score: skip them
        # rather than risk another hang.
        for tid in list(self.pending):
            if all(any(self.outcomes[other]["error"] for other in group if other != tid)
                   for group in self.cells_of[tid]):
                self.outcomes[tid]["error"] = "not run: this test's cell had already failed"
                self.pending.remove(tid)

    def _fail_pending(self, why: str) -> None:
        for tid in self.pending:
            self.outcomes[tid]["error"] = self.outcomes[tid]["error"] or why
