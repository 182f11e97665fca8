"""Grade on a Dask cluster: one task per submission, recorded by the coordinator alone.

``python -m autograder grade <ps> --cluster tcp://host:8786`` sends each submission's
work (:func:`autograder.grading.work_on_submission`: the sandbox and the notebook
runs, jailed on the worker as they are locally) to the workers of a running Dask
scheduler. All a worker is given travels as task data, so workers need no shared
file system:

* the course bundle: ``source/<ps>`` (notebooks, the grading side's checks), the
  nbgrader config and the template gradebook (no student in it), as one
  ``.tar.gz``, moved to each worker once by Dask and unpacked once per worker
  process;
* one submission's files, in its own task only: a worker never sees another
  student's files.

A worker hands back a :class:`~autograder.grading.Work` (the record so far, the
autograded notebooks as bytes, the logs); the coordinator writes the gradebook,
``autograded/`` and ``grading/``. Dask re-runs a task whose worker died on another
worker, up to the scheduler's ``allowed-failures`` (3 unless configured); a
submission that outlives that many workers ends as ``failed-to-grade``, with why.

Dask (``distributed``) is an optional extra, ``pip install -e '.[course,cluster]'``,
imported only here.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.course import CONFIG_NAME, REFERENCE_PACKAGE, config_path
from autograder.ingest import SKIP_DIRS
from autograder.notebook_runs import safe_relative

if TYPE_CHECKING:
    from autograder.grading import Context, Options, Work

RETRIES = 1          # a task that raises (not one whose worker dies) runs once more
TASKS_PER_THREAD = 2  # submissions in flight per worker thread: the rest wait here


def course_bundle(ctx: Context) -> bytes:
    """What every worker needs of the course, as one ``.tar.gz`` (no student's files)."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if info.issym() or info.islnk() or any(p in SKIP_DIRS for p in parts):
            return None
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(ctx.source, arcname=f"source/{ctx.assignment}", filter=keep)
        tar.add(config_path(ctx.course), arcname=CONFIG_NAME)
        tar.add(ctx.template_db, arcname="template.db")
    return buffer.getvalue()


def reference_fingerprint(package: Path = REFERENCE_PACKAGE) -> str:
    """A digest of the reference package's code: coordinator and workers must agree."""
    digest = hashlib.sha256()
    for path in sorted(Path(package).rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def submission_files(folder: Path) -> dict[str, bytes]:
    """One student's submitted files (as ingest kept them), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and not p.is_symlink()
            and not any(part in SKIP_DIRS for part in p.relative_to(folder).parts)}


# -- the worker's side ---------------------------------------------------------------------------

_contexts: dict[str, Context] = {}
_contexts_lock = threading.Lock()


def _bundle(data: bytes) -> bytes:
    """The course bundle as a task's result: Dask can make it again if its worker dies."""
    return data


def _worker_context(bundle: bytes, assignment: str, options: Options,
                    fingerprint: str) -> Context:
    """This worker process's grading context for ``bundle``, unpacked and set up once."""
    from autograder.grading import Context

    key = hashlib.sha256(bundle).hexdigest()
    with _contexts_lock:
        if key not in _contexts:
            mine = reference_fingerprint()
            if mine != fingerprint:
                raise RuntimeError(f"this worker's cnnlab ({REFERENCE_PACKAGE}, code "
                                   f"{mine}) is not the coordinator's (code {fingerprint}): "
                                   "install the same version of the course on every worker")
            scratch = _worker_scratch()
            root = Path(tempfile.mkdtemp(prefix="cnnlab-worker-course-", dir=scratch))
            atexit.register(shutil.rmtree, root, True)
            with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
                tar.extractall(root, filter="data")
            context = Context(root, assignment, options, template_db=root / "template.db",
                              scratch=scratch)
            atexit.register(context.close)
            _contexts[key] = context
        return _contexts[key]


def _worker_scratch() -> Path | None:
    """The Dask worker's own folder: Dask removes it, even after the worker was killed."""
    try:
        from distributed import get_worker
        return Path(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):  # not in a Dask worker
        return None


def grade_task(bundle: bytes, assignment: str, options: Options, fingerprint: str,
               student: str, files: dict[str, bytes], notes: list[str]) -> Work:
    """One submission's work on a worker: its files in a private folder, then graded."""
    from autograder.grading import work_on_submission

    ctx = _worker_context(bundle, assignment, options, fingerprint)
    folder = Path(tempfile.mkdtemp(prefix=f"{student}-submitted-", dir=ctx.workroot))
    try:
        for name, data in files.items():
            target = folder / safe_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return work_on_submission(ctx, student, folder, notes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the coordinator's side ----------------------------------------------------------------------

def work_on_cluster(ctx: Context, students: list[str], notes: dict[str, list[str]],
                    say: Callable[[str], None]) -> Iterator[Work]:
    """Each submission's work as a task on the cluster at ``ctx.options.cluster``.

    Yields the works as they finish; a few tasks per worker thread are in flight at a
    time, so the coordinator never holds the whole class's files in memory.
    """
    try:
        from distributed import Client, as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker
    except ImportError as exc:
        raise RuntimeError("--cluster needs Dask: pip install -e '.[course,cluster]'") from exc
    from autograder.grading import failed_work

    client = Client(ctx.options.cluster, timeout=60)
    try:
        info = client.scheduler_info()
        threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        say(f"grading {ctx.assignment}: {len(students)} submissions on the cluster at "
            f"{ctx.options.cluster} ({len(info.get('workers', {}))} workers, {threads} "
            f"threads), isolation on each worker; dashboard: {_dashboard(client)}")
        bundle = client.submit(_bundle, course_bundle(ctx), pure=False)
        fingerprint = reference_fingerprint()
        queue = iter(students)
        running: dict[str, str] = {}  # task key: student
        finished = as_completed()

        def submit_next() -> None:
            student = next(queue, None)
            if student is None:
                return
            folder = ctx.course / "submitted" / student / ctx.assignment
            future = client.submit(grade_task, bundle, ctx.assignment, ctx.options,
                                   fingerprint, student, submission_files(folder),
                                   notes.get(student, []),
                                   key=f"grade-{student}-{uuid.uuid4().hex[:8]}",
                                   pure=False, retries=RETRIES)
            running[future.key] = student
            finished.add(future)

        for _ in range(max(1, TASKS_PER_THREAD * max(threads, 1))):
            submit_next()
        for future in finished:
            student = running.pop(future.key)
            try:
                work = future.result()
            except KilledWorker as exc:
                work = failed_work(ctx, student, "grading this submission ended the workers "
                                   f"that ran it, every time Dask tried ({exc})",
                                   notes.get(student))
            except (FutureCancelledError, Exception) as exc:
                work = failed_work(ctx, student, "the cluster could not grade it: "
                                   f"{type(exc).__name__}: {exc}", notes.get(student))
            future.release()
            submit_next()
            yield work
    finally:
        client.close()


def _dashboard(client) -> str:
    try:
        return client.dashboard_link or "none"
    except Exception:  # no dashboard (bokeh is not installed on the scheduler)
        return "none"


class ProcessCluster:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1.

    For the tests and benchmarks, and to try ``--cluster`` on one machine: the same
    commands as the README's, at free ports, one thread per worker (with a nanny,
    which restarts a worker that dies). ``logs`` gets each process's output.
    """

    def __init__(self, logs: Path, workers: int = 2, env: dict | None = None):
        import subprocess
        import sys

        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []

        def start(name: str, *args: str) -> None:
            with open(self.logs / f"{name}.log", "w") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "dask", *args], env=env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))

        try:
            start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                  "--dashboard-address", f"127.0.0.1:{_free_port()}")
            for index in range(workers):
                start(f"worker{index}", "worker", self.address, "--host", "127.0.0.1",
                      "--nthreads", "1", "--no-dashboard", "--name", f"worker{index}",
                      "--memory-limit", "0", "--death-timeout", "60")
            self.wait_for_workers(workers)
        except BaseException:
            self.close()
            raise

    def client(self, timeout: float = 60):
        from distributed import Client
        return Client(self.address, timeout=timeout)

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(timeout=10) as client:
                    client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def close(self) -> None:
        import os
        import signal
        import subprocess

        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
