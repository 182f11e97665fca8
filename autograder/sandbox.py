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

import io
import json
import os
import re
import selectors
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from autograder import jail
from autograder.course import REFERENCE_PACKAGE, REPO, thread_env
from autograder.protocol import FrameReader
from autograder.student_edition import STUB_MARKER
from autograder.testcells import CheckCall, GradedCell
from cnnlab.checks import exercise_file, exercise_of
from cnnlab.checks._core import BY_FUNCTION
from cnnlab.checks.rules import Violation, check_source

CHILD = Path(__file__).with_name("_sandbox_child.py")
PRELOAD = ("numpy", "scipy", "scipy.signal", "scipy.linalg", "scipy.fft", "scipy.special",
           "scipy.ndimage", "scipy.optimize", "ctypes")
MAX_FILE_BYTES = 1 << 20
MAX_PACKAGE_BYTES = 8 << 20
MAX_PACKAGE_FILES = 300
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
class CellResult:
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
    cells: dict[str, CellResult] = field(default_factory=dict)
    error: str | None = None     # an infrastructure failure: the package could not be graded
    isolation: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"cells": {k: asdict(v) for k, v in self.cells.items()}, "error": self.error,
                "isolation": self.isolation, "seconds": round(self.seconds, 2),
                "notes": self.notes}


# -- cases and references (trusted, computed once per grading run) ----------------------------

def encode(value, arrays: dict, prefix: str):
    """JSON for one input value; arrays go into ``arrays`` under fresh keys."""
    if isinstance(value, np.ndarray):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"__scalar__": key}
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, complex):
        return {"__complex__": [value.real, value.imag]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, list):
        return {"__list__": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): encode(v, arrays, prefix) for k, v in value.items()}}
    raise TypeError(f"a check input of type {type(value).__name__} cannot cross to the sandbox")


@dataclass
class Task:
    id: str
    call: CheckCall
    check: object
    cases: list
    references: list[dict]
    encoded: list
    npz: bytes


class CaseBank:
    """The cases and reference answers of every check call of some test cells."""

    def __init__(self, cells: list[GradedCell]):
        import cnnlab
        from cnnlab.checks import get_check

        if Path(cnnlab.__file__).resolve().parent != REFERENCE_PACKAGE.resolve():
            raise RuntimeError(f"the grading process imported cnnlab from {cnnlab.__file__}, "
                               f"not the reference in {REFERENCE_PACKAGE}")

        self.tasks: dict[str, Task] = {}
        for cell in cells:
            for call in cell.calls:
                if call.key in self.tasks:
                    continue
                chk = get_check(call.name)
                cases = chk.cases(seed=call.seed, count=call.count)
                arrays, encoded = {}, []
                for index, case in enumerate(cases):
                    encoded.append({k: encode(v, arrays, f"c{index}_")
                                    for k, v in case.inputs.items()})
                references = [chk.reference(**case.inputs) for case in cases]
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                if exercise_of(chk.function) is not None:  # find its file now, not in threads
                    exercise_of(chk.function).file  # noqa: B018
                task_id = f"t{len(self.tasks)}"
                self.tasks[call.key] = Task(task_id, call, chk, cases, references, encoded,
                                            buffer.getvalue())

    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks.values()}


# -- the package ---------------------------------------------------------------------------

def student_owned(text: str) -> bool:
    """Whether a file of the released package is the student's to edit (it has stubs)."""
    return any(line.strip() == STUB_MARKER for line in text.splitlines())


def assemble_package(submitted: Path | None, trusted: Path, dest: Path) -> list[str]:
    """Build the package to test in ``dest``: the student's files where they are theirs.

    Like nbgrader's autograde with ``exclude_overwriting``: every file of the
    released package overwrites the student's copy, except the exercise files
    (those with stubs), which are the student's. Extra ``.py`` files the student
    added are kept. Returns notes about files that were skipped.
    """
    notes, total, count = [], 0, 0
    dest.mkdir(parents=True)
    if submitted is not None and submitted.is_dir():
        for path in sorted(submitted.rglob("*.py")):
            rel = path.relative_to(submitted)
            if path.is_symlink() or not path.is_file() or any(
                    not _IDENTIFIER.match(p) for p in [*rel.parts[:-1], rel.stem]):
                continue
            if len(rel.parts) > 5:
                continue
            size = path.stat().st_size
            if size > MAX_FILE_BYTES or total + size > MAX_PACKAGE_BYTES or \
                    count >= MAX_PACKAGE_FILES:
                notes.append(f"cnnlab/{rel.as_posix()} was skipped (package size limits)")
                continue
            total, count = total + size, count + 1
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
    for path in sorted(trusted.rglob("*")):
        rel = path.relative_to(trusted)
        if not path.is_file() or "__pycache__" in rel.parts:
            continue
        if path.suffix == ".py" and student_owned(path.read_text(encoding="utf-8")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)
    return notes


# -- running the sandbox -----------------------------------------------------------------------

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


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def _exit_reason(returncode: int | None, limits: Limits, jailed: bool = False) -> str:
    if returncode is None:
        return "it was stopped"
    if jailed and returncode > 128:  # the jail reports a death by signal N as 128 + N
        returncode = 128 - returncode
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGXCPU":
            return "it ran out of CPU time"
        if name == "SIGKILL":
            return f"it was killed (over {limits.memory_mb} MB of memory, or out of time)"
        if name == "SIGXFSZ":
            return "it wrote too much"
        return f"it crashed ({name})"
    return f"the process exited with code {returncode} (os._exit or a crash)"


class _Attempt:
    """One run of the child over some tasks."""

    def __init__(self, command, env, cwd, limits: Limits):
        read_fd, write_fd = os.pipe()
        self.limits = limits
        self.process = subprocess.Popen(
            [*command, str(write_fd)], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,),
            start_new_session=True)
        os.close(write_fd)
        self.fd = read_fd
        self.reader = FrameReader(limits.max_output_mb << 20, limits.max_total_output_mb << 20)

    def events(self, deadline_for):
        """Yield (header, arrays) until EOF; yield ("timeout", why) when a deadline passes."""
        selector = selectors.DefaultSelector()
        selector.register(self.fd, selectors.EVENT_READ)
        try:
            while True:
                deadline, why = deadline_for()
                wait = deadline - time.monotonic()
                if wait <= 0:
                    yield {"ev": "timeout", "why": why}, {}
                    return
                if not selector.select(timeout=min(wait, 1.0)):
                    continue
                data = os.read(self.fd, 1 << 20)
                if not data:
                    return
                try:
                    messages = self.reader.feed(data)
                except (ValueError, json.JSONDecodeError) as exc:
                    yield {"ev": "garbage", "why": str(exc)}, {}
                    return
                yield from messages
        finally:
            selector.close()
            os.close(self.fd)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _kill(self.process)
                return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of the session
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.returncode


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
                report.cells[cell.grade_id] = CellResult(
                    cell.grade_id, cell.notebook, cell.points, False, 0.0,
                    message="the submission has no cnnlab/ folder: nothing to test",
                    summary="no cnnlab/ folder")
            return report
        report.notes = assemble_package(submitted_package, trusted_package, box / "cnnlab")
        static = rule_violations(box, bank)  # before student code runs
        outcomes = _run_tasks(box, bank, limits, course, report, cells)
        violations = {**_dynamic_violations(outcomes), **static}
        for cell in cells:
            report.cells[cell.grade_id] = _cell_result(cell, bank, outcomes, violations)
        return report
    finally:
        report.seconds = time.monotonic() - started
        shutil.rmtree(box, ignore_errors=True)


def _run_tasks(box: Path, bank: CaseBank, limits: Limits, course: Path | None,
               report: SandboxReport, cells: list[GradedCell]) -> dict[str, dict]:
    """Run every task; return {task id: {"cases": {index: (header, arrays)}, "error": str}}."""
    tasks = bank.by_id()
    cells_of = {tid: [[bank.tasks[c.key].id for c in cell.calls] for cell in cells
                      if any(bank.tasks[c.key].id == tid for c in cell.calls)] for tid in tasks}
    outcomes = {tid: {"cases": {}, "error": None, "rules": []} for tid in tasks}
    for task in tasks.values():
        (box / f"{task.id}.npz").write_bytes(task.npz)
    shutil.copyfile(CHILD, box / "_runner.py")
    shutil.copyfile(jail.LOCKDOWN, box / "_lockdown.py")
    stdlib, sites = _site_dirs()
    allowed = [str(box), *stdlib, *sites]
    rlimits = {"RLIMIT_AS": limits.memory_mb << 20, "RLIMIT_FSIZE": 1 << 20,
               "RLIMIT_CORE": 0,
               "RLIMIT_CPU": int(limits.submission_timeout) + 5}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(box), "LANG": "C.UTF-8", "TMPDIR": str(box),
           "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg", **thread_env()}
    report.isolation = jail.require(limits.unsafe_no_isolation) + " + audit hook + rlimits"
    jailed = jail.available()
    if jailed:
        jail.make_writable(box)  # readable by the sandbox's user; bound read-only
    deadline_total = time.monotonic() + limits.submission_timeout
    pending = list(tasks)
    modules = {tid: tasks[tid].check.module for tid in tasks}
    attempt_number = 0
    while pending:
        attempt_number += 1
        spec = {"sandbox": str(box), "stdlib": stdlib, "site_packages": sites,
                "preload": list(PRELOAD), "allowed": allowed, "denied": _denied(course),
                "rlimits": rlimits, "lockdown": str(box / "_lockdown.py") if jailed else None,
                "tasks": [{"id": tid, "check": tasks[tid].call.name,
                           "arrays": f"{tid}.npz", "cases": tasks[tid].encoded}
                          for tid in pending]}
        spec_path = box / f"spec{attempt_number}.json"
        spec_path.write_text(json.dumps(spec))
        command = [sys.executable, "-I", "-S", "-B", str(box / "_runner.py"), str(spec_path)]
        if jailed:
            command = jail.command(command, chdir=box, read_only=[box], env=env)
            spec_path.chmod(0o644)
        attempt = _Attempt(command, env, box, limits)
        state = {"ready": False, "current": None, "imported": False,
                 "deadline": time.monotonic() + limits.startup_timeout, "why": "startup"}

        def deadline_for(state=state):
            if time.monotonic() > deadline_total:
                return deadline_total, "total"
            return min(state["deadline"], deadline_total), state["why"]

        try:  # whatever goes wrong in the parsing, the sandboxed process does not outlive it
            finished, stop_reason = [], None
            events = attempt.events(deadline_for)
            for header, arrays in events:
                event = header.get("ev")
                if event in ("timeout", "garbage"):
                    stop_reason = header
                    break
                task_id = header.get("task")
                if event == "ready":
                    state.update(ready=True, deadline=time.monotonic() + limits.cell_timeout,
                                 why="gap")
                elif not state["ready"]:
                    continue
                elif event == "start" and task_id in pending and task_id not in finished:
                    state.update(current=task_id, imported=False, why="task",
                                 deadline=time.monotonic() + limits.cell_timeout)
                elif task_id != state["current"] or task_id is None:
                    continue  # out of order: ignore (it can only cost the student)
                elif event == "imported":
                    state["imported"] = True
                elif event == "import-error":
                    outcomes[task_id]["error"] = f"importing {modules[task_id]} failed: " + str(
                        header.get("error"))[:2000]
                elif event == "rule":
                    outcomes[task_id]["rules"].append((header.get("function"),
                                                       header.get("call")))
                elif event == "case":
                    index = header.get("case")
                    if isinstance(index, int) and index not in outcomes[task_id]["cases"]:
                        outcomes[task_id]["cases"][index] = (header, arrays)
                elif event == "end":
                    finished.append(task_id)
                    state.update(current=None, why="gap",
                                 deadline=time.monotonic() + limits.cell_timeout)
        except BaseException:
            _kill(attempt.process)
            raise
        events.close()
        if stop_reason is not None:
            _kill(attempt.process)
            returncode = attempt.process.returncode
        else:
            returncode = attempt.stop()

        if not state["ready"]:
            why = (f"did not start within {limits.startup_timeout:.0f} s"
                   if stop_reason and stop_reason.get("ev") == "timeout"
                   else _exit_reason(returncode, limits, jailed))
            report.error = f"the sandbox could not start ({why}; isolation: {report.isolation})"
            for tid in pending:
                outcomes[tid]["error"] = report.error
            break
        pending = [tid for tid in pending if tid not in finished]
        current = state["current"]
        if current is not None:
            if stop_reason and stop_reason.get("ev") == "timeout":
                if stop_reason.get("why") == "total":
                    why = (f"the submission's time budget of {limits.submission_timeout:.0f} s "
                           "was used up")
                else:
                    why = f"it did not finish within {limits.cell_timeout:.0f} s (infinite loop?)"
            elif stop_reason:
                why = stop_reason.get("why")
            else:
                why = _exit_reason(returncode, limits, jailed)
            outcomes[current]["error"] = outcomes[current]["error"] or why
            pending.remove(current)
            if not state["imported"]:  # the import itself hangs or crashes: do not retry
                for tid in list(pending):
                    if modules[tid] == modules[current]:
                        outcomes[tid]["error"] = f"importing {modules[tid]} failed: {why}"
                        pending.remove(tid)
            # Tests whose cells have all failed already cannot change the score: skip them
            # rather than risk another hang.
            for tid in list(pending):
                if all(any(outcomes[other]["error"] for other in group if other != tid)
                       for group in cells_of[tid]):
                    outcomes[tid]["error"] = "not run: this test's cell had already failed"
                    pending.remove(tid)
        elif not finished:  # no progress at all: stop here
            why = (stop_reason or {}).get("why") or _exit_reason(returncode, limits, jailed)
            for tid in pending:
                outcomes[tid]["error"] = outcomes[tid]["error"] or (
                    f"the sandboxed process stopped before running this test ({why})")
            break
        if time.monotonic() > deadline_total:
            for tid in pending:
                outcomes[tid]["error"] = outcomes[tid]["error"] or (
                    f"not run: the submission's time budget of {limits.submission_timeout:.0f} s "
                    "was used up")
            break
    return outcomes


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
                 violations: dict | None = None) -> CellResult:
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
    return CellResult(cell.grade_id, cell.notebook, cell.points, passed,
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
