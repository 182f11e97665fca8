"""Run a command where student code cannot see the course, the solutions or the network.

Where the platform allows unprivileged user namespaces (``unshare -r`` works),
commands that run student code go through :mod:`autograder._jail_setup`: the
repository, the course directory, ``/tmp`` and home directories are hidden
behind empty read-only mounts, the Python installation is bound back read-only
and the command's own work directory read-write; there is no network (only a
private loopback), a private PID space, and no capabilities. Elsewhere (some CI
runners forbid user namespaces) :func:`jail_prefix` returns None and the callers
fall back to their own guards (the sandbox's audit hook, resource limits, and a
scrubbed environment). Set ``CNNLAB_NO_JAIL=1`` to force the fallback.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from autograder.course import REPO

SETUP = Path(__file__).with_name("_jail_setup.py")
SYSTEM_TOP = {"/", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
              "/proc", "/sys", "/dev", "/var", "/run", "/boot", "/snap", "/nix"}


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether namespaces work here (tried once per process)."""
    if os.environ.get("CNNLAB_NO_JAIL") or not sys.platform.startswith("linux"):
        return False
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    try:
        return run_probe()
    except (OSError, subprocess.SubprocessError):
        return False


def run_probe() -> bool:
    """Hide a folder holding a file, keep the Python installation, and look.

    The probe must not depend on where the repository or the venv live (a
    checkout under /tmp is common in CI): it only asks whether a hidden file
    has really gone while Python still runs.
    """
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cnnlab-jail-probe-") as secret_dir:
        secret = Path(secret_dir, "secret")
        secret.write_text("x")
        spec = {"keep": [[p, False] for p in python_roots()], "hide": [secret_dir],
                "loopback": True}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(spec, handle)
        try:
            command = base_command(network=False) + [
                sys.executable, "-I", "-S", str(SETUP), handle.name, "--", sys.executable,
                "-I", "-S", "-c", f"import os; assert not os.path.exists({str(secret)!r})"]
            done = subprocess.run(command, capture_output=True, timeout=30, cwd=sys.prefix)
            return done.returncode == 0
        finally:
            os.unlink(handle.name)


def base_command(network: bool) -> list[str]:
    flags = ["--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc",
             "--propagation", "private"]
    if not network:
        flags.insert(2, "--net")
    return ["unshare", *flags]


def python_roots() -> list[str]:
    """Directories the Python installation (venv and base interpreter) lives in."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    real = {os.path.realpath(r) for r in roots}
    # the interpreter binary may be a symlink out of the venv
    real.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return sorted(real)


def hide_list(extra: list[Path] = ()) -> list[str]:
    """What student code must not see: temp and home folders, the repository, the course."""
    hide = {"/tmp", "/var/tmp", "/dev/shm", "/home", "/root", "/mnt", "/media", "/srv", "/opt",
            str(Path.home()), str(REPO), *map(str, extra)}
    for path in [REPO, *extra]:
        parts = Path(os.path.realpath(path)).parts
        if len(parts) > 1 and "/" + parts[1] not in SYSTEM_TOP:
            hide.add("/" + parts[1])  # e.g. /work for /work/main
    return sorted(hide)


def jail_prefix(spec_dir: Path, workdir: Path, *, writable: bool, network: bool = False,
                hide: list[Path] = (), keep_ro: list[Path] = ()) -> list[str] | None:
    """Command prefix running what follows inside the jail, or None if unavailable.

    ``workdir`` is bound back (read-write if ``writable``); the command must be started
    with its cwd inside it. ``spec_dir`` receives the jail's spec file.
    """
    if not available():
        return None
    keep = [[str(workdir), writable]] + [[p, False] for p in python_roots()]
    keep += [[str(p), False] for p in keep_ro]
    spec = {"keep": keep, "hide": hide_list(list(hide)), "loopback": not network}
    spec_file = Path(spec_dir) / ".jail.json"
    spec_file.write_text(json.dumps(spec))
    return base_command(network) + [sys.executable, "-I", "-S", str(SETUP), str(spec_file), "--"]
