"""Run nbgrader commands in processes of their own (a crash or hang stays in its process)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

from autograder.course import thread_env


@dataclass
class NbResult:
    returncode: int | None
    output: str          # the last part of the log
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_lines(self, limit: int = 6) -> list[str]:
        """The log's error lines, most specific first (nbgrader logs a traceback)."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        picked = [line for line in lines if any(key in line for key in (
            "Error", "error", "Exception", "died", "Timeout", "timed out"))]
        picked = [p for p in picked if not p.startswith("[") or "Error" in p or "died" in p]
        return picked[-limit:]


def kill_tree(pid: int) -> None:
    """Kill a process, its process group and every descendant (kernels start their own)."""
    victims = []
    try:
        import psutil
        try:
            parent = psutil.Process(pid)
            victims = parent.children(recursive=True) + [parent]
        except psutil.NoSuchProcess:
            victims = []
        for proc in victims:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    except ImportError:
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def ensure_tools_on_path() -> None:
    """Put this interpreter's scripts first on PATH (nbgrader's Gradebook runs ``alembic``).

    Also make this process ask ``alembic`` for the schema version once, not at every
    opening of a gradebook (about 0.5 s each).
    """
    try:
        import nbgrader.api as api
        if not hasattr(api.get_alembic_version, "cache_info"):
            api.get_alembic_version = functools.lru_cache(maxsize=None)(api.get_alembic_version)
    except ImportError:
        pass
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [scripts]:
        os.environ["PATH"] = os.pathsep.join([scripts, path]) if path else scripts


def base_env(extra: dict | None = None) -> dict[str, str]:
    """The environment for nbgrader and the kernels it starts."""
    ensure_tools_on_path()
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "JUPYTER_CONFIG_DIR",
                        "IPYTHONDIR", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"}}
    env.update(thread_env())
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env.update(extra or {})
    return env


# jsonschema (through nbformat) imports rfc3987_syntax, whose grammar takes over a
# second to build, only to check the "iri" format, which no notebook schema uses: a
# None entry in sys.modules makes that import fail, and jsonschema goes on without it.
SLOW_OPTIONAL_IMPORTS = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """In this process, make :data:`SLOW_OPTIONAL_IMPORTS` fail fast (before nbformat loads)."""
    for name in SLOW_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)


def _forkserver():
    """The fork server that has nbgrader imported, or None where this process may not
    have children (see :mod:`autograder.nbgrader_command`)."""
    import multiprocessing
    if multiprocessing.current_process().daemon:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["autograder.nbgrader_command"])
    return context


# multiprocessing's bookkeeping of children is not thread-safe, and grading workers are
# threads: ``Process.start`` polls every other child of this process, and a poll reads the
# exit status the fork server sends once, so two threads polling one child can both see it
# ready and one of them read nothing (an exit code of 255, a false failure). Starting and
# polling happen under this lock; waiting does not.
_CHILDREN = threading.Lock()


def _run_forked(args: list[str], folder: str, env: dict[str, str], log: str) -> None:
    from autograder.nbgrader_command import run  # imported already, in the fork server
    status = run(args, folder, env, log)
    # as the fresh interpreter does: nothing of nbgrader's is left to wait for or finalize
    # (a thread it left behind would otherwise hold the command until its timeout)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _start_hiding_main(process) -> None:
    # multiprocessing would run this process's main script again in the fork server, as
    # "__mp_main__" (its spawn semantics): an instructor's script without an
    # ``if __name__ == "__main__"`` guard would then grade again from within nbgrader's
    # process. Neither the server nor the command needs anything of it.
    main, sys.modules["__main__"] = sys.modules["__main__"], types.ModuleType("__main__")
    try:
        process.start()
    finally:
        sys.modules["__main__"] = main


def run_nbgrader(args: list[str], course: Path, timeout: float, log: Path,
                 env: dict | None = None) -> NbResult:
    """``nbgrader ARGS`` in the course directory (where its config lives), in a session of
    its own: a fork of the fork server, or a fresh interpreter where there can be none."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    args = [*args, f"--CourseDirectory.root={course}"]
    env = env or base_env()
    started = time.monotonic()
    context = _forkserver()
    if context is None:
        returncode, timed_out = _run_fresh(args, course, timeout, log, env)
    else:
        process = context.Process(target=_run_forked, args=(args, str(course), env, str(log)),
                                  name="nbgrader")
        with _CHILDREN:
            _start_hiding_main(process)
        from multiprocessing.connection import wait
        timed_out = not wait([process.sentinel], timeout)
        kill_tree(process.pid)  # on a timeout; otherwise a kernel left behind, if any
        with _CHILDREN:
            process.join()
            returncode = process.exitcode
    return NbResult(returncode, tail(log), timed_out, time.monotonic() - started)


def _run_fresh(args: list[str], course: Path, timeout: float, log: Path, env: dict
               ) -> tuple[int, bool]:
    """``python -I -m autograder.nbgrader_command ARGS``: (exit status, timed out)."""
    command = [sys.executable, "-I", "-m", "autograder.nbgrader_command", *args]
    with open(log, "ab") as handle:
        process = subprocess.Popen(command, cwd=course, env=env, stdin=subprocess.DEVNULL,
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        kill_tree(process.pid)
        return process.wait(), timed_out


def tail(path: Path, size: int = 20000) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode("utf-8", "replace")
