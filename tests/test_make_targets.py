"""The README's commands for students and self-learners, run as written (as root in CI).

`make student` builds the release of an assignment and serves it in JupyterLab; `make
lab` serves the master notebooks. Each runs here on a copy of the project with this
checkout's environment (``VENV=``; its installs are up to date, so make does not
install again), with ``NO_BROWSER=1`` and a free ``PORT``; the test reads the server's
URL from make's output and asks JupyterLab's API what it serves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".venv-*", "build", "__pycache__",
                                     ".hypothesis", ".pytest_cache", ".ruff_cache", "source",
                                     "release", "submitted", "autograded", "feedback",
                                     "gradebook.db", "answers.npz", "*.egg-info")

pytestmark = pytest.mark.skipif(not (VENV / "bin" / "jupyter").exists() or
                                shutil.which("make") is None,
                                reason="needs make and JupyterLab in this environment")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "cnnlab-project"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)  # copy2: mtimes kept, stamps stay fresh
    return copy


def serve(target: str, cwd: Path, log: Path, timeout: float = 600):
    """Start ``make target`` and wait for JupyterLab's URL; return (process, base, token)."""
    port = free_port()
    stamp = VENV / ".cnnlab-lab-installed"
    command = ["make", target, f"VENV={VENV}", "NO_BROWSER=1", f"PORT={port}", "-o", str(stamp)]
    with log.open("w") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rf"http://(?:127\.0\.0\.1|localhost):{port}/lab\?token=(\w+)",
                          log.read_text(errors="replace"))
        if found:
            return process, f"http://127.0.0.1:{port}", found.group(1)
        if process.poll() is not None:
            break
        time.sleep(1)
    stop(process)
    pytest.fail(f"make {target} served nothing:\n{log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop make and the JupyterLab it started (its whole session), if still running."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def contents(base: str, token: str, path: str = "") -> dict:
    request = urllib.request.Request(f"{base}/api/contents/{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_make_student_serves_the_release_with_stubs(tmp_path):
    copy = project_copy(tmp_path)
    process, base, token = serve("student", copy, tmp_path / "make.log")
    try:
        names = {item["name"] for item in contents(base, token)["content"]}
        assert {"01_convolution_1d.ipynb", "02_convolution_2d.ipynb", "cnnlab"} <= names, names
        signal_py = contents(base, token, "cnnlab/signal.py")["content"]
        assert "raise NotImplementedError" in signal_py  # the student's edition, not ours
        assert "### BEGIN HIDDEN TESTS" not in json.dumps(
            contents(base, token, "01_convolution_1d.ipynb")["content"])
    finally:
        stop(process)
    log = (tmp_path / "make.log").read_text(errors="replace")
    assert "building the student release of ps1" in log
    if os.geteuid() == 0:
        assert "--allow-root" in log


def test_make_lab_serves_the_master_notebooks(tmp_path):
    copy = project_copy(tmp_path)
    process, base, token = serve("lab", copy, tmp_path / "make.log")
    try:
        names = {item["name"] for item in contents(base, token)["content"]}
        expected = {path.name for path in (ROOT / "notebooks").glob("*.ipynb")}
        assert expected <= names, names
    finally:
        stop(process)
