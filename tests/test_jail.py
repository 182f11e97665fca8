"""The sandbox as an operating-system boundary: each guarantee proven by an attack.

Every attack runs the way student code runs while grading: a Python process
started through :func:`autograder.jail.command` (bubblewrap, an unprivileged
uid even though the tests run as root, no network) that has loaded the seccomp
filter of :mod:`autograder._lockdown` — and *no* audit hook, so nothing here
relies on Python-level checks. An attack prints ``ESCAPED`` if it worked; the
harness itself is checked to see a success (``test_the_harness_sees_a_success``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autograder import jail
from autograder.course import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (make test installs it when run as root)")

PRELUDE = """
import importlib.util, os, sys
_spec = importlib.util.spec_from_file_location("_lockdown", sys.argv[1])
_lockdown = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lockdown)
import numpy, scipy.signal, ctypes, subprocess, socket  # loaded before, like NumPy/SciPy do
_lockdown.set_limits({"RLIMIT_AS": 8 << 30, "RLIMIT_CORE": 0})
_lockdown.lock_down(local_sockets=sys.argv[2] == "kernel")
SCRATCH = sys.argv[3]
def escaped(what):
    print("ESCAPED", what, flush=True)
"""

ATTACKS = {
    "posixsubprocess fork_exec": """
import _posixsubprocess
_posixsubprocess.fork_exec(["/bin/sh", "-c", "echo ESCAPED sh"], [b"/bin/sh"], True, (),
                           None, None, -1, -1, -1, -1, -1, -1, -1, -1, False, False, False,
                           None, None, None, -1, None, False)
""",
    "subprocess": """
subprocess.run(["/bin/sh", "-c", "echo ESCAPED subprocess"])
""",
    "os.system": """
if os.system("echo ESCAPED system") == 0:
    escaped("os.system")
""",
    "fork": """
if os.fork() == 0:
    escaped("fork")
    os._exit(0)
""",
    "cffi system": """
import cffi
ffi = cffi.FFI()
ffi.cdef("int system(const char *command);")
if ffi.dlopen(None).system(b"echo ESCAPED cffi") == 0:
    escaped("cffi")
""",
    "ctypes system": """
if ctypes.CDLL(None).system(b"echo ESCAPED ctypes") == 0:
    escaped("ctypes")
""",
    "mkfifo": """
os.mkfifo(os.path.join(SCRATCH, "fifo"))
escaped("mkfifo")
""",
    "mknod": """
import stat
os.mknod(os.path.join(SCRATCH, "node"), stat.S_IFIFO | 0o600)
escaped("mknod")
""",
    "setxattr": """
path = os.path.join(SCRATCH, "plain")
open(path, "w").close()
os.setxattr(path, "user.cnnlab", b"x")
escaped("setxattr")
""",
    "memfd_create": """
os.memfd_create("payload")
escaped("memfd")
""",
    "symlink": """
os.symlink("/etc/passwd", os.path.join(SCRATCH, "link"))
escaped("symlink")
""",
    "write /etc": """
open("/etc/cnnlab-was-here", "w").write("x")
escaped("/etc")
""",
    "write /usr/local/bin": """
open("/usr/local/bin/cnnlab-was-here", "w").write("x")
escaped("/usr/local/bin")
""",
    "read the repository": """
# only the virtual environment, when it lives in the checkout, is there (read-only)
if set(os.listdir(REPO)) - {".venv"}:
    escaped("repository")
""",
    "read /root": """
print(os.listdir("/root"))
if any(name != ".pyenv" for name in os.listdir("/root")):
    escaped("/root")
""",
    "internet socket": """
s = socket.create_connection(("1.1.1.1", 53), timeout=3)
escaped("internet")
""",
    "new user namespace": """
CLONE_NEWUSER = 0x10000000
if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) == 0:
    escaped("unshare")
""",
    "ptrace": """
PTRACE_ATTACH = 16
if ctypes.CDLL(None, use_errno=True).ptrace(PTRACE_ATTACH, 1, 0, 0) == 0:
    escaped("ptrace")
""",
    "root or capabilities": """
caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
if os.getuid() == 0 or os.geteuid() == 0 or int(caps, 16) != 0:
    escaped("privileges")
""",
    "see the grader's processes": """
pids = [p for p in os.listdir("/proc") if p.isdigit()]
if len(pids) > 3:
    escaped(f"{len(pids)} processes visible")
""",
    "fill the memory through /tmp": """
try:
    with open("/tmp/fill", "wb") as handle:
        for _ in range(200):
            handle.write(b"x" * (1 << 20))
except OSError:
    pass
if os.path.getsize("/tmp/fill") > 100 << 20:
    escaped("/tmp unbounded")
""",
    "raise the limits": """
import resource
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
escaped("rlimit")
""",
}


def run_jailed(code: str, tmp_path: Path, mode: str = "sandbox", lock: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess:
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    jail.make_writable(scratch)
    script = tmp_path / "attack.py"
    script.write_text(PRELUDE.replace("_lockdown.lock_down", "_lockdown.lock_down" if lock
                                      else "(lambda **_: None)")
                      + f"REPO = {str(REPO)!r}\n" + textwrap.dedent(code))
    script.chmod(0o644)
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copyfile(jail.LOCKDOWN, tools / "_lockdown.py")
    jail.make_writable(tools)
    argv = [sys.executable, str(script), str(tools / "_lockdown.py"), mode, "/scratch"]
    command = jail.command(argv, chdir=Path("/scratch"), read_only=[script, tools],
                           writable=[(scratch, Path("/scratch"))], env={"PATH": "/usr/bin:/bin"})
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def tree_digest(root: str) -> str:
    """A digest of the names, sizes and modification times under ``root``."""
    digest = hashlib.sha256()
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            digest.update(f"{path}|{info.st_size}|{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def isolation_works():
    jail.problem.cache_clear()
    assert jail.problem() is None, jail.problem()


@pytest.mark.parametrize("mode", ["sandbox", "kernel"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_fails_at_the_os_level(attack, mode, tmp_path):
    before = {top: tree_digest(top) for top in ("/etc", "/usr/local")}
    done = run_jailed(ATTACKS[attack], tmp_path, mode)
    assert "ESCAPED" not in done.stdout, (attack, done.stdout, done.stderr[-2000:])
    assert {top: tree_digest(top) for top in before} == before
    assert not Path("/etc/cnnlab-was-here").exists()


def test_the_harness_sees_a_success(tmp_path):
    """The same attacks work without the seccomp filter where only it stands in the way."""
    for attack in ("fork", "mkfifo", "symlink", "subprocess"):
        done = run_jailed(ATTACKS[attack], tmp_path / attack, lock=False)
        assert "ESCAPED" in done.stdout, (attack, done.stdout, done.stderr[-2000:])
    done = run_jailed("open(os.path.join(SCRATCH, 'ok'), 'w').write('fine')", tmp_path)
    assert done.returncode == 0 and (tmp_path / "scratch" / "ok").read_text() == "fine"


def test_the_scratch_folder_belongs_to_an_unprivileged_user(tmp_path):
    done = run_jailed("open(os.path.join(SCRATCH, 'mine'), 'w').write(str(os.getuid()))",
                      tmp_path)
    assert done.returncode == 0, done.stderr
    owner = (tmp_path / "scratch" / "mine").stat().st_uid
    if os.geteuid() == 0:
        assert owner == jail.SANDBOX_UID != 0


def test_nothing_outlives_the_task(tmp_path):
    """Without the seccomp filter, a detached daemon still dies with the sandbox."""
    code = """
    import time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open(os.path.join(SCRATCH, "daemon"), "w").write(str(os.getpid()))
            time.sleep(300)
        os._exit(0)
    time.sleep(1)
    print("main exits", flush=True)
    """
    started = time.monotonic()
    done = run_jailed(code, tmp_path, lock=False)
    assert "main exits" in done.stdout and time.monotonic() - started < 60
    assert (tmp_path / "scratch" / "daemon").exists()
    survivors = subprocess.run(["pgrep", "-f", "attack.py"], capture_output=True, text=True)
    assert str(tmp_path) not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                               text=True).stdout, survivors.stdout


def test_killing_the_launcher_kills_the_sandbox(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    jail.make_writable(scratch)
    command = jail.command([sys.executable, "-c", "import time; time.sleep(300)"],
                           chdir=Path("/scratch"), writable=[(scratch, Path("/scratch"))])
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    time.sleep(2)
    marker = "import time; time.sleep(300)"
    assert marker in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                    text=True).stdout
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while marker in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                   text=True).stdout:
        assert time.monotonic() < deadline, "the sandboxed process outlived its launcher"
        time.sleep(0.2)


def test_without_bubblewrap_the_grader_refuses_with_instructions(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    jail.problem.cache_clear()
    try:
        with pytest.raises(jail.IsolationUnavailable, match=r"bubblewrap \(bwrap\) is not "
                           r"installed.*apt-get install bubblewrap.*--unsafe-no-isolation"):
            jail.require()
        assert jail.require(unsafe=True).startswith("NONE (--unsafe-no-isolation")
    finally:
        jail.problem.cache_clear()
