"""The course self-test, as an instructor runs it: ``python -m autograder check``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autograder.course import REPO, available_assignments

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not any(a.name == "ps1" for a in available_assignments()),
                    reason="ps1's notebooks are not in notebooks/ yet")
def test_course_self_test_passes_for_ps1():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-m", "autograder", "check", "ps1", "--workers", "2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "course self-test passed" in done.stdout
    assert "FAIL" not in done.stdout
    assert "ok    ps1: the release carries no reference code" in done.stdout
    assert "ok    ps1: the reference of exercise 1 of 01_convolution_1d.ipynb obeys its rule" \
        in done.stdout
