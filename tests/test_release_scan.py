"""The release carries no reference code: the scan finds none, and finds what is planted."""

from __future__ import annotations

import inspect

import pytest

from autograder import release_scan
from autograder.course import ASSIGNMENTS
from autograder.student_edition import write_student_edition
from cnnlab.checks import pooling as reference_pooling_checks

EDITIONS = [a.name for a in ASSIGNMENTS] + [None]


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    root = tmp_path_factory.mktemp("editions")
    return {name: write_student_edition(root / str(name), name) for name in EDITIONS}


@pytest.mark.parametrize("assignment", EDITIONS)
def test_no_release_carries_reference_code(assignment, editions):
    assert release_scan.scan(editions[assignment], assignment) == []


@pytest.mark.parametrize("assignment", EDITIONS)
def test_the_released_checks_have_no_reference_methods(assignment, editions):
    for path in (editions[assignment] / "checks").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for method in ("def reference(", "def mistakes(", "def random_cases(", "@grading_side"):
            assert method not in text or path.name == "_core.py", (path.name, method)
        assert "import scipy" not in text, path.name
    assert (editions[assignment] / "checks" / "answers.npz").is_file()


def plant(edition, module: str, code: str):
    path = edition / "checks" / module
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code, encoding="utf-8")


def test_the_scan_finds_a_planted_reference_written_in_numpy(tmp_path):
    edition = write_student_edition(tmp_path, "ps2")
    plant(edition, "pooling.py", "from cnnlab.checks._core import pair\n\n\n"
          + inspect.getsource(reference_pooling_checks.kron_upsample))
    found = release_scan.dynamic_problems(edition, "ps2")
    assert found == ["cnnlab.checks.pooling.kron_upsample reproduces pooling.upsample "
                     "(exercise 3 of 03_pooling_and_backprop.ipynb)"]


def test_the_scan_finds_a_planted_library_reference(tmp_path):
    edition = write_student_edition(tmp_path, "ps1")
    plant(edition, "signal.py", "import scipy.signal as s\n\n\ndef helper(in1, in2, mode='full'):\n"
                                "    return s.correlate(in1, in2, mode)\n")
    static = release_scan.static_problems(edition)
    assert static and all("scipy.signal" in p and "cnnlab/checks/signal.py" in p for p in static)
    assert "cnnlab.checks.signal.helper reproduces signal.correlate (exercise 1 of " \
           "01_convolution_1d.ipynb)" in release_scan.dynamic_problems(edition, "ps1")


def test_the_scan_finds_an_import_of_the_grading_side(tmp_path):
    edition = write_student_edition(tmp_path, "ps3")
    plant(edition, "train.py", "from autograder import grading  # noqa\n")
    assert any("refers to autograder.grading" in p
               for p in release_scan.static_problems(edition))
