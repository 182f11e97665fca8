"""Run student code inside bubblewrap, as an unprivileged user, or refuse to.

Every process that runs student code (the sandboxed scoring of
:mod:`autograder.sandbox` and the Jupyter kernel of a notebook run) starts
through :func:`command`, which wraps it in `bubblewrap
<https://github.com/containers/bubblewrap>`_ (``bwrap``, Flatpak's sandbox):

* new user, PID, IPC, UTS, cgroup, mount and network namespaces (no network at
  all, only a private loopback); no capabilities; no further user namespaces;
* a root file system made of ``/usr`` and the Python installation, read-only,
  a private ``/proc``, ``/dev`` and ``/tmp``, and only the folders the caller
  names (the submission's scratch copy, read-write): the course, the gradebook,
  the repository, other students and home folders do not exist in there;
* a new session (no terminal to inject keys into) and ``--die-with-parent``:
  when the grader stops the task, every process in it dies with it;
* an unprivileged uid even when the grader runs as root: as root, a first
  ``bwrap`` (mount namespace only) makes the paths needed reachable to that uid
  (e.g. a Python under ``/root``), then ``setpriv`` drops to
  :data:`SANDBOX_UID` (``nobody``) with no groups, no capabilities and
  ``no_new_privs`` before the real sandbox starts.

Inside, the process itself then loads a seccomp filter (:mod:`autograder._lockdown`)
once its trusted start-up is done, and sets its resource limits.

:func:`problem` says why the isolation cannot be set up here (no ``bwrap``,
user namespaces blocked by Docker's seccomp profile or AppArmor…); graders
refuse to run student code then, unless the instructor asks for
``--unsafe-no-isolation``.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SANDBOX_UID = int(os.environ.get("CNNLAB_SANDBOX_UID", "65534"))
SANDBOX_GID = int(os.environ.get("CNNLAB_SANDBOX_GID", "65534"))
LOCKDOWN = Path(__file__).with_name("_lockdown.py")
TMP_BYTES = 64 << 20  # the sandbox's private /tmp

HOW_TO_GET_IT = (
    "Grading runs student code inside bubblewrap as an unprivileged user. Install it with "
    "`apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`, on a Linux "
    "kernel that allows unprivileged user namespaces. In Docker, start the grading container "
    "with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (Docker's "
    "default profile blocks user namespaces); on Ubuntu 24.04 hosts, also "
    "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`. To grade anyway, without "
    "isolation (student code then runs with your rights), pass --unsafe-no-isolation.")


class IsolationUnavailable(RuntimeError):
    """The sandbox cannot be set up on this machine (the message says why and what to do)."""


def dropping_privileges() -> bool:
    """Whether the grader runs as root, so the sandbox must switch to an unprivileged uid."""
    return os.geteuid() == 0


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
    # keep only the outermost of nested roots
    return sorted(r for r in real if not any(r != o and r.startswith(o + "/") for o in real))


def make_writable(path: Path) -> None:
    """Give a scratch folder (and what it holds) to the sandbox's user."""
    if not dropping_privileges():
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), SANDBOX_UID, SANDBOX_GID)
    os.chown(path, SANDBOX_UID, SANDBOX_GID)


def _reachable(path: str) -> bool:
    """Whether the sandbox's uid may traverse ``path`` (a directory)."""
    info = os.stat(path)
    if info.st_uid == SANDBOX_UID:
        return bool(info.st_mode & stat.S_IXUSR)
    return bool(info.st_mode & stat.S_IXOTH)


def _unreachable_ancestor(path: str) -> str | None:
    """The outermost proper ancestor of ``path`` the sandbox's uid cannot traverse."""
    parts = Path(path).parts
    for depth in range(1, len(parts)):
        ancestor = str(Path(*parts[:depth]))
        if not _reachable(ancestor):
            return ancestor
    return None


def _unblock(paths: list[str]) -> list[str]:
    """Stage-one ``bwrap`` arguments that make ``paths`` reachable to the sandbox's uid.

    A folder on the way the unprivileged uid cannot cross (``/root`` is 0700) is
    covered by an empty tmpfs in a private mount namespace, and the paths
    needed under it are bound back: nothing else under it becomes visible.
    """
    blocked: dict[str, list[str]] = {}
    for path in paths:
        ancestor = _unreachable_ancestor(path)
        if ancestor is not None:
            blocked.setdefault(ancestor, []).append(path)
    outer = [a for a in blocked if not any(a != b and a.startswith(b + "/") for b in blocked)]
    args: list[str] = []
    for ancestor in sorted(outer):
        args += ["--tmpfs", ancestor]
        inside = sorted({p for a, ps in blocked.items() if a == ancestor or
                         a.startswith(ancestor + "/") for p in ps})
        made = set()
        for path in inside:
            # bwrap would make the folders on the way 0700: make them crossable first
            for depth in range(len(Path(ancestor).parts) + 1, len(Path(path).parts)):
                folder = str(Path(*Path(path).parts[:depth]))
                if folder not in made:
                    made.add(folder)
                    args += ["--perms", "0755", "--dir", folder]
            args += ["--bind", path, path]
    return args


def _system_binds() -> list[str]:
    """The read-only system part of the sandbox's root: /usr and what links into it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf"):
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    return args


def command(argv: list[str], *, chdir: Path, read_only: list[Path] = (),
            writable: list[tuple[Path, Path]] = (), env: dict[str, str] | None = None) -> list[str]:
    """The command line that runs ``argv`` in the sandbox.

    ``read_only`` folders or files are visible at their own path; ``writable`` is a
    list of (host folder, path inside); ``chdir`` is the working directory inside.
    The environment is exactly ``env`` (nothing of the grader's leaks in).
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise IsolationUnavailable("bubblewrap (bwrap) is not installed. " + HOW_TO_GET_IT)
    ro = [os.path.realpath(p) for p in [*python_roots(), *map(str, read_only)]]
    rw = [(os.path.realpath(src), str(dest)) for src, dest in writable]
    inner = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
             "--new-session", "--cap-drop", "ALL", "--clearenv", *_system_binds(),
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]  # in memory: bounded
    for path in sorted(set(ro)):
        inner += ["--ro-bind", path, path]
    for src, dest in rw:
        inner += ["--bind", src, dest]
    for key, value in (env or {}).items():
        inner += ["--setenv", key, value]
    inner += ["--remount-ro", "/", "--chdir", str(chdir), "--", *argv]
    if not dropping_privileges():
        return inner
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise IsolationUnavailable("setpriv (util-linux) is needed to drop root's rights. "
                                   + HOW_TO_GET_IT)
    # Its own PID namespace, whose init dies with the launcher, takes the whole tree down:
    # the parent-death signal alone would not survive the change of uid below.
    outer = [bwrap, "--dev-bind", "/", "/", "--unshare-pid", "--die-with-parent",
             *_unblock(sorted(set(ro) | {src for src, _ in rw}))]
    drop = [setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--pdeathsig=KILL"]
    return [*outer, "--", *drop, "--", *inner]


PROBE = """
import os, sys
secret, scratch = sys.argv[1], sys.argv[2]
assert not os.path.exists(secret), "a hidden file is visible"
assert os.getuid() != 0 and os.geteuid() != 0, "still root"
open(os.path.join(scratch, "written"), "w").write("ok")
try:
    open("/usr/cnnlab-probe", "w")
except OSError:
    pass
else:
    raise SystemExit("/usr is writable")
print("isolated")
"""


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """Why the sandbox cannot be set up here, or None when it works (tried once)."""
    if os.environ.get("CNNLAB_NO_JAIL"):
        return "the sandbox was switched off with CNNLAB_NO_JAIL. " + HOW_TO_GET_IT
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (this is {sys.platform}). " + HOW_TO_GET_IT
    try:
        import pyseccomp
        pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    except Exception as exc:  # the library or libseccomp.so.2 is missing
        return (f"the seccomp library cannot be loaded ({type(exc).__name__}: {exc}); install "
                "the Python package pyseccomp and libseccomp2. " + HOW_TO_GET_IT)
    with tempfile.TemporaryDirectory(prefix="cnnlab-jail-probe-") as top:
        secret = Path(top, "secret")
        secret.write_text("x")
        scratch = Path(top, "scratch")
        scratch.mkdir()
        make_writable(scratch)
        try:
            argv = command([sys.executable, "-I", "-S", "-c", PROBE, str(secret), "/scratch"],
                           chdir=Path("/"), writable=[(scratch, Path("/scratch"))])
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except IsolationUnavailable as exc:
            return str(exc)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap could not be started ({exc}). " + HOW_TO_GET_IT
        if done.returncode != 0 or "isolated" not in done.stdout or \
                not (scratch / "written").exists():
            said = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
            return (f"bubblewrap could not set up the sandbox here (it said: {said}); user "
                    "namespaces are probably blocked. " + HOW_TO_GET_IT)
    return None


def available() -> bool:
    return problem() is None


def require(unsafe: bool = False) -> str:
    """The isolation in use, as a phrase; raise :class:`IsolationUnavailable` if there is none.

    With ``unsafe`` (the instructor's explicit ``--unsafe-no-isolation``), grading
    goes on without it and the phrase says so.
    """
    why = problem()
    if why is None:
        return "bubblewrap + seccomp, uid " + (str(SANDBOX_UID) if dropping_privileges()
                                                 else str(os.getuid()))
    if unsafe:
        return "NONE (--unsafe-no-isolation: " + why.split(". ")[0] + ")"
    raise IsolationUnavailable("cannot grade safely: " + why)
