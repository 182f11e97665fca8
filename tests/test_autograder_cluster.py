"""Grading on a real Dask cluster (`grade --cluster`), and resuming an interrupted run.

One ps1 course is built for the module, with a small class made from the release
(honest, blank and hostile submissions; see tests/test_autograder_e2e.py). A real
``dask scheduler`` and two ``dask worker`` processes run on 127.0.0.1 at free ports.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.course import REPO
from autograder.submissions import submission
from tests.test_autograder_e2e import MONKEYPATCH, UNFLIPPED, I, fill_answers, prepend

pytest.importorskip("distributed", reason="the [cluster] extra (Dask) is not installed")
pytestmark = pytest.mark.slow

GRADE_FLAGS = ("--cell-timeout", "15", "--submission-timeout", "300")
CLASS = ("blank", "buggy", "honest", "monkeypatch", "os_exit", "sys_exit")
COMPARED = ("student_id", "assignment", "status", "score", "max_score", "autograded_score",
            "autograded_max", "written_score", "written_max", "manual_pending", "reason")


def cli(*args, check=True, timeout=900):
    done = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(REPO)
    return env


def make_class(course: Path, into: Path) -> None:
    """Six ps1 submissions in ``into/<student>/ps1``: honest, blank and hostile."""
    def student(name, solved=True, broken=None):
        return submission(course, "ps1", into / name / "ps1", "signal.py", solved, broken)

    fill_answers(course, student("honest"))
    student("blank", solved=False)
    student("buggy", broken={"convolve": UNFLIPPED})
    student("sys_exit", broken={"convolution_matrix": [I + "import sys", I + "sys.exit()"]})
    student("os_exit", broken={"fftconvolve": [I + "import os", I + "os._exit(3)"]})
    prepend(student("monkeypatch", solved=False) / "cnnlab", "signal.py", MONKEYPATCH)


def exported(course: Path) -> dict[str, dict]:
    out = course / "grades.csv"
    cli("export", "--course", str(course), "--out", str(out))
    with open(out, newline="", encoding="utf-8") as handle:
        return {row["student_id"]: {k: row[k] for k in COMPARED}
                for row in csv.DictReader(handle)}


def graded_lines(stdout: str) -> list[str]:
    """The students a grading run reported, one line each, in order."""
    return [line.split()[0] for line in stdout.splitlines()
            if line.startswith("  ") and line.split() and line.split()[0] in CLASS]


@pytest.fixture(scope="module")
def course():
    root = Path(tempfile.mkdtemp(prefix="cnnlab-cluster-"))
    try:
        course = root / "course"
        cli("build", "ps1", "--course", str(course))
        make_class(course, root / "class")
        cli("collect", "ps1", "--course", str(course), "--submissions", str(root / "class"))
        yield course
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(course):
    from autograder.cluster import ProcessCluster
    with ProcessCluster(course.parent / "dask-logs", workers=2, env=_env()) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_grades(course):
    cli("grade", "ps1", "--course", str(course), "--workers", "2", *GRADE_FLAGS)
    return exported(course)


def records(course: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text())
            for p in (course / "grading" / "ps1").glob("*.json")}


def test_the_cluster_gives_the_grades_of_the_local_pool(course, cluster, local_grades):
    assert {row["status"] for row in local_grades.values()} >= {"scored", "manual-pending"}
    assert local_grades["honest"]["score"] == "18" and local_grades["blank"]["score"] == "0"
    out = cli("grade", "ps1", "--course", str(course), "--cluster", cluster.address,
              *GRADE_FLAGS)
    assert f"on the cluster at {cluster.address} (2 workers" in out, out
    assert sorted(graded_lines(out)) == sorted(CLASS), out
    assert exported(course) == local_grades


def test_a_worker_killed_mid_task_costs_nothing(course, cluster, local_grades):
    process = subprocess.Popen([sys.executable, "-m", "autograder", "grade", "ps1", "--course",
                                str(course), "--cluster", cluster.address, *GRADE_FLAGS],
                               cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        with cluster.client() as client:
            deadline = time.monotonic() + 300
            while killed is None and time.monotonic() < deadline:
                busy = {w: keys for w, keys in client.processing().items()
                        if any(str(k).startswith("grade-") for k in keys)}
                if busy:
                    time.sleep(4)  # well into the task: its sandbox and kernels are running
                    worker = next(iter(busy))
                    killed = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(killed, signal.SIGKILL)
                time.sleep(0.5)
        out, err = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "no grading task was seen running"
    assert process.returncode == 0, out + err
    assert sorted(graded_lines(out)) == sorted(CLASS), out  # each exactly once
    assert exported(course) == local_grades
    cluster.wait_for_workers(2)  # the nanny brought the worker back


# The grading CLI with Ctrl-C raising KeyboardInterrupt, whatever this process inherited: a
# background job of a non-interactive shell starts with SIGINT ignored (POSIX), and Python
# then leaves it ignored, so the CLI would grade on to the end.
INTERRUPTIBLE = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler);"
                 " runpy.run_module('autograder', run_name='__main__', alter_sys=True)")


def test_an_interrupted_run_resumes_without_grading_anyone_twice(course, local_grades):
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, "grade", "ps1", "--course",
                                str(course), "--workers", "1", *GRADE_FLAGS],
                               cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = []
    try:
        for line in process.stdout:
            first += graded_lines(line)
            if first:
                process.send_signal(signal.SIGINT)
                break
        rest, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    first += graded_lines(rest)
    assert process.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    assert 1 <= len(first) < len(CLASS), first
    run = json.loads((course / "grading" / "ps1-run.json").read_text())
    before = {s: r for s, r in records(course).items() if r["run"] == run["run"]}
    assert sorted(before) == sorted(first)

    out = cli("grade", "ps1", "--course", str(course), "--resume", *GRADE_FLAGS)
    second = graded_lines(out)
    assert not set(first) & set(second), (first, second)
    assert sorted(first + second) == sorted(CLASS)
    after = records(course)
    assert all(after[s]["run"] == run["run"] for s in CLASS)
    assert all(after[s]["graded_at"] == before[s]["graded_at"] for s in first)
    assert exported(course) == local_grades
    assert "graded 0 submissions" in cli("grade", "ps1", "--course", str(course), "--resume")


def kill_the_worker(*args):
    """A grading task that takes its worker down, every time (run on the worker)."""
    os._exit(1)


def test_a_submission_that_keeps_killing_workers_fails_to_grade(course, cluster, monkeypatch):
    from autograder import cluster as on_cluster
    from autograder.grading import Context, Options

    monkeypatch.setattr(on_cluster, "grade_task", kill_the_worker)
    context = Context(course, "ps1", Options(cluster=cluster.address, quiet=True))
    try:
        works = list(on_cluster.work_on_cluster(context, ["blank"], {}, lambda text: None))
    finally:
        context.close()
    assert [w.result.student for w in works] == ["blank"] and not works[0].complete
    assert "ended the workers that ran it, every time Dask tried" in works[0].result.reasons[0]
    cluster.wait_for_workers(2)
