"""A class of hostile submissions graded through ``python -m autograder grade``, as root.

Each attacker also carries the reference solutions, so a failed attack costs
nothing and a successful one would show as a changed score, a changed file, a
leaked secret or a process left behind. After grading and feedback:

* ``/etc``, ``/usr`` and ``/var/lib`` are unchanged (names, sizes, times);
* no process of the sandbox's user is left;
* no hidden test (its seed) appears in any autograded notebook, feedback file,
  record or gradebook comment;
* every student has the score the reference earns, and the class finishes.

=================  =====================================================================
student            what it tries
=================  =====================================================================
honest             nothing (the reference)
etc_writer         writes into /etc, /usr/local/bin and /var/lib from import-time code
                   (sandbox and kernel) and from a notebook cell
spy                looks for the source notebooks and the gradebook from a cell and
                   prints them; a pre_run_cell hook prints every cell it is given
daemon             a cell forks a daemon that waits, then rewrites every gradebook and
                   autograded notebook it can find; 20 detached sleepers
killer             kills its parent process from import-time code and from a cell
forger             a ``timestamp.txt`` saying 2000-01-01
=================  =====================================================================
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from autograder import jail
from autograder.submissions import submission
from tests.test_autograder_e2e import NB1, fill_answers, prepend, run_cli
from tests.test_jail import tree_digest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed")]

IMPORT_TIME_WRITE = """
for _path in ("/etc/cnnlab-pwned", "/usr/local/bin/cnnlab-pwned", "/var/lib/cnnlab-pwned"):
    try:
        with open(_path, "w") as _handle:
            _handle.write("pwned")
    except Exception:
        pass
"""
KILL_PARENT = """
import os as _os, signal as _signal
try:
    _os.kill(_os.getppid(), _signal.SIGKILL)
except Exception:
    pass
"""
SPY_CELL = r"""
import base64, os
found = []
for top in ("/", "/tmp", "/root", "/work", "/home", "/var"):
    try:
        for base, dirs, files in os.walk(top):
            if base.count("/") > 6 or base.startswith(("/proc", "/sys", "/usr")):
                dirs[:] = []
            for name in files:
                if name.endswith((".db", ".ipynb")):
                    path = os.path.join(base, name)
                    try:
                        found.append((path, base64.b64encode(open(path, "rb").read()).decode()))
                    except OSError:
                        pass
    except OSError:
        pass
for path, data in found:  # its own notebook is there; nothing else may be
    text = base64.b64decode(data)
    if path.endswith(".db") or b"HIDDEN TESTS" in text or b"BEGIN SOLUTION" in text:
        print("SPY SECRET", path, data)
print("SPY DONE", [p for p, _ in found])

def _echo(info):
    print("SPY CELL", info.raw_cell[::-1])
get_ipython().events.register("pre_run_cell", _echo)
"""
DAEMON_CELL = r"""
import os, time
def _daemon():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(15)
            for top in ("/", "/tmp", "/work"):
                for base, dirs, files in os.walk(top):
                    for name in files:
                        if name.endswith((".db", ".ipynb")):
                            try:
                                open(os.path.join(base, name), "w").write("{}")
                            except OSError:
                                pass
            os._exit(0)
        os._exit(0)
started = 0
for _ in range(20):
    try:
        _daemon()
        started += 1
    except OSError as exc:
        print("no fork:", exc)
        break
print("DAEMONS", started)
"""
KILL_CELL = """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print("KILLED parent")
except OSError as exc:
    print("no kill:", exc)
"""


def add_cell(folder: Path, source: str, index: int = 1) -> None:
    path = folder / f"{NB1}.ipynb"
    notebook = nbformat.read(str(path), as_version=4)
    notebook.cells.insert(index, nbformat.v4.new_code_cell(textwrap.dedent(source)))
    nbformat.write(notebook, str(path))


def make_class(course: Path, root: Path) -> Path:
    subs = root / "class"

    def student(name):
        return submission(course, "ps1", subs / name / "ps1", "signal.py")

    fill_answers(course, student("honest"))
    folder = student("etc_writer")
    prepend(folder / "cnnlab", "signal.py", IMPORT_TIME_WRITE)
    add_cell(folder, IMPORT_TIME_WRITE)
    folder = student("spy")
    add_cell(folder, SPY_CELL)
    folder = student("daemon")
    add_cell(folder, DAEMON_CELL)
    folder = student("killer")
    prepend(folder / "cnnlab", "signal.py", KILL_PARENT)
    add_cell(folder, KILL_CELL)
    folder = student("forger")
    (folder / "timestamp.txt").write_text("2000-01-01 00:00:00.000000 UTC")
    return subs


def sandbox_processes(root: Path) -> list[str]:
    """Live processes of the sandbox's user started for this class (its scratch is in root)."""
    done = subprocess.run(["ps", "-eo", "uid=,stat=,args="], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines()
            if line.split()[0] == str(jail.SANDBOX_UID) and not line.split()[1].startswith("Z")
            and str(root) in line]


def hidden_seeds(course: Path) -> set[str]:
    """The seeds of the hidden check calls: the secret of each hidden test."""
    seeds = set()
    for path in (course / "source" / "ps1").glob("*.ipynb"):
        text = path.read_text(encoding="utf-8")
        seeds |= set(re.findall(r"seed=(\d{3,})", text))
    return seeds


@pytest.fixture(scope="module")
def graded():
    assert jail.available(), jail.problem()
    root = Path(tempfile.mkdtemp(prefix="cnnlab-hostile-"))
    tops = ("/etc", "/usr", "/var/lib")
    before = {top: tree_digest(top) for top in tops}
    try:
        course = root / "course"
        run_cli("build", "ps1", "--course", str(course))
        subs = make_class(course, root)
        started = datetime.now(UTC)
        (root / "tmp").mkdir()
        os.environ["TMPDIR"] = str(root / "tmp")  # the grader's scratch, to find its processes
        try:
            out = run_cli("grade", "ps1", "--course", str(course), "--submissions", str(subs),
                          "--workers", "2", "--cell-timeout", "60",
                          "--submission-timeout", "400")
            feedback = run_cli("feedback", "ps1", "--course", str(course))
        finally:
            del os.environ["TMPDIR"]
        leftover = sandbox_processes(root)
        after = {top: tree_digest(top) for top in tops}
        records = {p.stem: json.loads(p.read_text()) for p in
                   (course / "grading" / "ps1").glob("*.json")}
        yield {"course": course, "out": out, "feedback": feedback, "records": records,
               "before": before, "after": after, "leftover": leftover, "started": started}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_class_finishes_and_every_attacker_gets_what_the_code_earns(graded):
    records = graded["records"]
    assert set(records) == {"honest", "etc_writer", "spy", "daemon", "killer", "forger"}
    for student, record in records.items():
        assert record["score"] == 18.0 + 0.0, (student, record["reasons"], record["notes"])
        assert record["isolation"].startswith("bubblewrap + seccomp"), record["isolation"]
        assert not record["reasons"], (student, record["reasons"])


def test_nothing_outside_the_scratch_changed_and_nothing_is_left_running(graded):
    assert graded["after"] == graded["before"]
    for path in ("/etc/cnnlab-pwned", "/usr/local/bin/cnnlab-pwned", "/var/lib/cnnlab-pwned"):
        assert not os.path.exists(path), path
    assert graded["leftover"] == []


def test_the_kernel_saw_no_secret(graded):
    course = graded["course"]
    notebook = nbformat.read(str(course / "autograded" / "spy" / "ps1" / f"{NB1}.ipynb"),
                             as_version=4)
    text = json.dumps(notebook.cells[1].get("outputs", []))
    assert "SPY DONE" in text and "SPY SECRET" not in text, text[:2000]
    daemon = nbformat.read(str(course / "autograded" / "daemon" / "ps1" / f"{NB1}.ipynb"),
                           as_version=4)
    assert "no fork" in json.dumps(daemon.cells[1].get("outputs", []))


def test_no_hidden_test_appears_anywhere(graded):
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    course = graded["course"]
    seeds = hidden_seeds(course)
    assert seeds, "the source notebooks have hidden tests with seeds"
    texts = []
    for folder in ("autograded", "feedback", "grading"):
        for path in (course / folder).rglob("*"):
            if path.is_file() and path.suffix in (".ipynb", ".html", ".json", ".log"):
                texts.append((path, path.read_text(encoding="utf-8", errors="replace")))
    with warnings.catch_warnings(), Gradebook(db_url(course), "cnnlab") as gb:
        warnings.simplefilter("ignore")
        for student in graded["records"]:
            submission = gb.find_submission("ps1", student)
            for notebook in submission.notebooks:
                for comment in notebook.comments:
                    texts.append((f"{student}/{comment.name}",
                                  f"{comment.auto_comment} {comment.manual_comment}"))
    for where, text in texts:
        assert "BEGIN HIDDEN TESTS" not in text, where
        for seed in seeds:
            assert f"seed={seed}" not in text, (where, seed)


def test_the_submission_time_is_the_collection_time(graded):
    from nbgrader.api import Gradebook

    from autograder.course import db_url
    with warnings.catch_warnings(), Gradebook(db_url(graded["course"]), "cnnlab") as gb:
        warnings.simplefilter("ignore")
        stamp = gb.find_submission("ps1", "forger").timestamp
    assert stamp.year != 2000
    assert stamp.replace(tzinfo=UTC) >= graded["started"] - timedelta(seconds=5)


def test_without_the_sandbox_grade_refuses_unless_told_and_then_says_so(graded):
    """Runs last: it regrades one student without isolation."""
    import sys

    from autograder.course import REPO
    course = graded["course"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(PYTHONPATH=str(REPO), CNNLAB_NO_JAIL="1")
    args = [sys.executable, "-m", "autograder", "grade", "ps1", "--course", str(course),
            "--student", "honest", "--workers", "1"]
    before = (course / "grading" / "ps1" / "honest.json").read_text()
    refused = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "cannot grade safely" in refused.stderr and "--unsafe-no-isolation" in \
        refused.stderr and "bubblewrap" in refused.stderr
    assert (course / "grading" / "ps1" / "honest.json").read_text() == before
    done = subprocess.run([*args, "--unsafe-no-isolation"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((course / "grading" / "ps1" / "honest.json").read_text())
    assert record["isolation"].startswith("NONE (--unsafe-no-isolation")
    assert record["score"] == 18.0
    report = run_cli("report", "ps1", "--course", str(course))
    assert "WARNING: 1 submissions were graded with --unsafe-no-isolation" in report
    assert "honest" in report.split("WARNING")[1]
