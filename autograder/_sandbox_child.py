"""The sandboxed half of the autograder: call the student's functions, report their outputs.

Runs as ``python -I -S -B _sandbox_child.py SPEC.json FD`` in a fresh sandbox
folder holding only the submitted ``cnnlab`` package (with the instructor's
``cnnlab/checks``) and the inputs. It needs the standard library and NumPy, and
never sees a reference answer: it sends each output back to the grading
process, which compares it there. Everything it sends is treated as untrusted.

Protocol on file descriptor FD: frames of a 4-byte big-endian length and a JSON
header, each followed by the ``.npy`` bytes of the arrays it announces (8-byte
length + bytes each). Events: ready; start/imported/end of a task; one ``case``
per case (``ok`` with array names, or an ``error``); done.
"""

import importlib
import importlib.util
import io
import json
import os
import resource
import struct
import sys

# The exit status of an attempt that student code ended by opening a watched package.
NEEDS_PRELOAD_EXIT = 75


def install_guard(allowed: list[str], denied: list[str], sandbox: str,
                  watched: list[str] | None = None, report_fd: int | None = None) -> None:
    """An audit hook that confines file access and forbids processes, sockets and ctypes.

    A path may be read only if the longest of the allowed and denied roots that
    contains it is an allowed one; nothing may be written. This is a second
    layer under the operating system's (bubblewrap and seccomp, see
    :mod:`autograder.jail`): the policy lives in this function's locals, as
    immutable tuples and frozensets, where student code cannot rebind it.

    ``watched``: the folders of packages that forbidden callables live in but that were
    not imported before student code (SciPy, when it is not preloaded). The first file
    opened in one, or import of one, is reported on ``report_fd`` (a ``needs-preload``
    event), and this process ends there with status :data:`NEEDS_PRELOAD_EXIT`, from the
    hook: student code can garble or suppress the report (it runs through ``json``),
    not the exit. Either way the grading side drops this attempt's results and runs the
    tests again with those packages imported and wired first.
    """
    blocked_events = (
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.kill", "os.killpg", "os.setuid", "os.setgid", "os.chroot", "subprocess.",
        "socket.", "ctypes.", "resource.setrlimit", "resource.prlimit", "signal.pthread_kill",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.setprofile",
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
        "os.chown", "os.truncate", "os.utime", "os.chdir", "os.putenv", "os.unsetenv",
        "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr", "os.memfd_create",
        "shutil.", "pty.", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "mmap.",
        "winreg.", "syslog.", "sqlite3.", "cffi.",
    )
    blocked_imports = frozenset({
        "_posixsubprocess", "_socket", "socket", "ssl", "_ssl", "pty", "_ctypes", "ctypes",
        "cffi", "_cffi_backend", "multiprocessing", "_multiprocessing", "_sqlite3", "mmap"})
    path_events = frozenset({
        "open", "os.listdir", "os.scandir", "os.listxattr", "os.getxattr", "glob.glob",
        "glob.glob/2", "pathlib.Path.glob", "pathlib.Path.rglob"})
    roots = sorted([(r.rstrip("/") or "/", True) for r in allowed]
                   + [(r.rstrip("/") or "/", False) for r in denied],
                   key=lambda item: len(item[0]), reverse=True)
    watched_roots = tuple(root.rstrip("/") + "/" for root in watched or ())
    watched_names = frozenset(os.path.basename(root.rstrip("/")) for root in watched or ())
    realpath, fspath, exit_now = os.path.realpath, os.fspath, os._exit
    report = Channel(os.dup(report_fd), None) if watched and report_fd is not None else None
    reported = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def permitted(path) -> bool:
        try:
            path = realpath(fspath(path))
        except Exception:
            return False
        for root, allow in roots:
            if path == root or path.startswith(root + "/"):
                return allow
        return path in ("/dev/null", "/dev/urandom")

    def watch(event, args) -> None:
        if reported:
            return
        if event == "import":
            name = args[0] if args and isinstance(args[0], str) else ""
            hit = name.partition(".")[0] in watched_names
        else:
            try:
                hit = realpath(fspath(args[0])).startswith(watched_roots)
            except Exception:
                hit = False
        if hit:
            reported.append(True)
            try:
                report.send({"ev": "needs-preload"})
            finally:
                exit_now(NEEDS_PRELOAD_EXIT)

    def hook(event, args):
        if report is not None and event in ("open", "import") and args and \
                not isinstance(args[0], int):
            watch(event, args)
        if event in path_events:
            target = args[0] if args else None
            if target is None or isinstance(target, int):
                if event == "open" and isinstance(target, int):
                    return  # an already open descriptor
                target = "."
            if event == "open":
                mode = args[1] if len(args) > 1 else "r"
                flags = args[2] if len(args) > 2 else 0
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & write_flags)
                if writes:
                    raise PermissionError(f"the autograder's sandbox forbids writing files "
                                          f"({target!r})")
            if not permitted(target):
                raise PermissionError(f"the autograder's sandbox forbids access to {target!r}")
        elif event == "import":
            if args and args[0] in blocked_imports:
                raise ImportError(f"the autograder's sandbox forbids importing {args[0]}")
        elif event.startswith(blocked_events):
            raise PermissionError(f"the autograder's sandbox forbids {event}")

    sys.addaudithook(hook)


class Channel:
    def __init__(self, fd: int, np):
        self.stream = os.fdopen(fd, "wb", buffering=0)
        self.np = np

    def send(self, header: dict, arrays: dict | None = None) -> None:
        blobs = []
        for value in (arrays or {}).values():
            buffer = io.BytesIO()
            self.np.save(buffer, value, allow_pickle=False)
            blobs.append(buffer.getvalue())
        if arrays:
            header = dict(header, arrays=list(arrays))
        data = json.dumps(header).encode()
        parts = [struct.pack(">I", len(data)), data]
        for blob in blobs:
            parts += [struct.pack(">Q", len(blob)), blob]
        self.stream.write(b"".join(parts))


def describe(exc: BaseException, limit: int = 2000) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text[:limit]


def main() -> None:
    spec_path, fd = sys.argv[1], int(sys.argv[2])
    with open(spec_path) as handle:
        spec = json.load(handle)
    for name, value in spec["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    devnull = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    sys.path[:] = [spec["sandbox"], *spec["stdlib"], *spec["site_packages"]]
    os.chdir(spec["sandbox"])

    import numpy as np  # trusted libraries first, before the guard
    for name in spec["preload"]:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    channel = Channel(fd, np)
    inputs = {task["id"]: np.load(os.path.join(spec["sandbox"], task["arrays"]),
                                  allow_pickle=False) for task in spec["tasks"]}
    inputs = {key: {name: npz[name] for name in npz.files} for key, npz in inputs.items()}
    if spec.get("lockdown"):  # seccomp, from the trusted copy next to this script
        loader = importlib.util.spec_from_file_location("_lockdown", spec["lockdown"])
        lockdown = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(lockdown)
        lockdown.lock_down()
        del lockdown, loader
    install_guard(spec["allowed"], spec["denied"], spec["sandbox"], spec.get("watch"), fd)
    from cnnlab.checks import exercise_of, get_check  # the instructor's (package: student's)
    from cnnlab.checks.rules import Tripwires

    checks = {}
    for task in spec["tasks"]:  # every check module first, so that the tripwires cover them
        try:
            checks[task["id"]] = get_check(task["check"])
        except BaseException:
            pass
    exercises = {tid: exercise_of(chk.function) for tid, chk in checks.items()}
    wires = Tripwires()  # before the student's modules are imported: aliases get tripwires
    # (on what is imported: a watched package the student's code opens ends this attempt)
    wires.install([e for e in exercises.values() if e is not None],
                  imported_only=bool(spec.get("watch")))
    channel.send({"ev": "ready"})
    for task in spec["tasks"]:
        channel.send({"ev": "start", "task": task["id"]})
        with wires.checking(exercises.get(task["id"])):
            run_task(task, checks.get(task["id"]), inputs[task["id"]], channel, np,
                     lambda task_id=task["id"]: report_violations(wires, task_id, channel))
        channel.send({"ev": "end", "task": task["id"]})
    channel.send({"ev": "done"})
    os._exit(0)  # skip interpreter teardown: student atexit handlers must not run


def report_violations(wires, task_id: str, channel: Channel) -> None:
    """Send the forbidden calls recorded since the last report (the grading side charges
    each to its exercise, whichever test was running when it happened)."""
    sent = getattr(wires, "sent", 0)
    for violation in wires.violations[sent:]:
        channel.send({"ev": "rule", "task": task_id, "function": violation.function,
                      "call": violation.call})
    wires.sent = len(wires.violations)


def run_task(task: dict, chk, arrays: dict, channel: Channel, np, flush) -> None:
    """Import the check's module of the student's package and call it on every case;
    ``flush()`` reports forbidden calls after the import and after each case."""
    from cnnlab.checks.answers import decode  # the instructor's copy, like the checks

    try:
        if chk is None:
            raise ValueError(f"no check named {task['check']!r}")
        importlib.import_module(chk.module)
    except BaseException as exc:
        flush()
        channel.send({"ev": "import-error", "task": task["id"], "error": describe(exc)})
        return
    flush()
    channel.send({"ev": "imported", "task": task["id"]})
    for index, encoded in enumerate(task["cases"]):
        head = {"ev": "case", "task": task["id"], "case": index}
        try:
            got = chk.call(**{k: decode(v, arrays) for k, v in encoded.items()})
            if not isinstance(got, dict):
                raise TypeError(f"the check's call returned {type(got).__name__}")
            outputs = {}
            for key, value in got.items():
                array = np.asarray(value)
                if array.dtype.hasobject:
                    raise TypeError(f"returned a non-numeric value for {key!r} "
                                    f"(got {type(value).__name__})")
                outputs[str(key)] = array
        except NotImplementedError:
            flush()
            channel.send(dict(head, error="NotImplementedError", kind="not-implemented"))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            flush()
            channel.send(dict(head, error=describe(exc), kind="raised"))
        else:
            flush()
            try:
                channel.send(dict(head, ok=True), outputs)
            except (ValueError, TypeError) as exc:
                channel.send(dict(head, error=describe(exc), kind="unsendable"))


if __name__ == "__main__":
    main()
