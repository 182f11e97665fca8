"""Run nbgrader commands as subprocesses (a crash or hang stays in its process)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
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


def run_nbgrader(args: list[str], course: Path, timeout: float, log: Path,
                 env: dict | None = None) -> NbResult:
    """``nbgrader ARGS`` in the course directory (where its config lives), as a subprocess
    (``python -I -m autograder.nbgrader_command``) in a session of its own."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-I", "-m", "autograder.nbgrader_command", *args,
               f"--CourseDirectory.root={course}"]
    started = time.monotonic()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, cwd=course, env=env or base_env(),
                                   stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        kill_tree(process.pid)  # on a timeout; otherwise a kernel left behind, if any
        process.wait()
    return NbResult(process.returncode, tail(log), timed_out, time.monotonic() - started)


def tail(path: Path, size: int = 20000) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode("utf-8", "replace")
