"""The sandbox that scores test cells: right answers pass, and student code cannot cheat it."""

from __future__ import annotations

import dataclasses
import json
import struct
import time

import numpy as np
import pytest

from autograder import jail
from autograder.casebank import CaseBank
from autograder.course import REFERENCE_PACKAGE, REPO
from autograder.package import assemble_package
from autograder.protocol import FrameReader
from autograder.sandbox import Limits, run_sandbox
from autograder.student_edition import write_student_edition
from autograder.submissions import patch_function, solve
from autograder.testcells import CheckCall, GradedCell

I = "    "  # noqa: E741
CELLS = [
    GradedCell("01", "test_correlate", 2, "test", "", [
        CheckCall("signal.correlate"), CheckCall("signal.correlate", 11, 30, hidden=True)]),
    GradedCell("01", "test_convolve", 1, "test", "", [
        CheckCall("signal.convolve"), CheckCall("signal.convolve", 12, 30, hidden=True)]),
    GradedCell("02", "test_pad2d", 1, "test", "", [CheckCall("signal.pad2d")]),
]
FAST = Limits(cell_timeout=5, submission_timeout=60, startup_timeout=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    trusted = write_student_edition(root / "trusted-release", "ps1")
    return {"root": root, "trusted": trusted, "bank": CaseBank(CELLS)}


def package(setup, name, broken=None, prelude="", solved=True):
    """The release's package with the reference solutions, except ``broken``."""
    import shutil
    folder = setup["root"] / name / "cnnlab"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(setup["trusted"], folder)
    broken = broken or {}
    if solved:
        solve(folder, "signal.py", [f for f in ("correlate", "convolve", "pad2d")
                                    if f not in broken])
    for function, body in broken.items():
        patch_function(folder, "signal.py", function, body)
    if prelude:
        path = folder / "signal.py"
        text = path.read_text()
        path.write_text(text.replace("\n__all__ = [", "\n" + prelude + "\n__all__ = [", 1))
    return folder


def score(setup, folder, limits=FAST):
    report = run_sandbox(folder, setup["trusted"], setup["bank"], CELLS, limits)
    return report, {k: v.score for k, v in report.cells.items()}


@pytest.fixture(params=["jail", "unsafe"])
def isolation(request, monkeypatch):
    """Limits for a test run in the jail, and with only the Python-level guards left."""
    if request.param == "unsafe":
        monkeypatch.setenv("CNNLAB_NO_JAIL", "1")
    jail.problem.cache_clear()
    yield dataclasses.replace(FAST, unsafe_no_isolation=request.param == "unsafe")
    jail.problem.cache_clear()


def test_without_isolation_the_sandbox_refuses_unless_told(setup, monkeypatch):
    monkeypatch.setenv("CNNLAB_NO_JAIL", "1")
    jail.problem.cache_clear()
    try:
        with pytest.raises(jail.IsolationUnavailable, match="cannot grade safely.*"
                           "unsafe-no-isolation"):
            score(setup, package(setup, "refused"))
        report, scores = score(setup, package(setup, "unsafe"),
                               dataclasses.replace(FAST, unsafe_no_isolation=True))
        assert report.isolation.startswith("NONE (--unsafe-no-isolation")
        assert scores == {"test_correlate": 2, "test_convolve": 1, "test_pad2d": 1}
    finally:
        jail.problem.cache_clear()


def test_reference_passes_and_release_fails(setup):
    report, scores = score(setup, package(setup, "reference"))
    assert report.error is None and scores == {"test_correlate": 2, "test_convolve": 1,
                                               "test_pad2d": 1}
    report, scores = score(setup, package(setup, "release", solved=False))
    assert scores == {"test_correlate": 0, "test_convolve": 0, "test_pad2d": 0}
    assert "not implemented yet" in report.cells["test_pad2d"].message


def test_a_wrong_answer_fails_with_the_checks_explanation(setup):
    folder = package(setup, "buggy", {"convolve": [I + "return correlate(in1, in2.conj(), mode)"]})
    report, scores = score(setup, folder)
    assert scores == {"test_correlate": 2, "test_convolve": 0, "test_pad2d": 1}
    cell = report.cells["test_convolve"]
    assert "kernel was not flipped" in cell.message and cell.failed_cases > 0
    assert cell.summary.startswith("the kernel was not flipped")


def test_hangs_crashes_and_exits_cost_only_their_test(setup):
    cases = {
        "loop": ({"pad2d": [I + "while True:", I + I + "pass"]}, "did not finish"),
        "os_exit": ({"pad2d": [I + "import os", I + "os._exit(7)"]}, "exited with code 7"),
        "sys_exit": ({"pad2d": [I + "raise SystemExit(0)"]}, "SystemExit"),
        "memory": ({"pad2d": [I + "return bytearray(8 << 30)"]}, "MemoryError"),
        "interrupt": ({"pad2d": [I + "raise KeyboardInterrupt"]}, "KeyboardInterrupt"),
    }
    for name, (broken, message) in cases.items():
        started = time.monotonic()
        report, scores = score(setup, package(setup, name, broken))
        assert scores == {"test_correlate": 2, "test_convolve": 1, "test_pad2d": 0}, name
        assert message in report.cells["test_pad2d"].message, (name, report.cells)
        assert time.monotonic() - started < 30, name


def test_a_package_that_hangs_at_import_is_stopped(setup):
    started = time.monotonic()
    report, scores = score(setup, package(setup, "import_hang", prelude="while True:\n    pass"))
    assert set(scores.values()) == {0}
    assert "importing cnnlab.signal failed" in report.cells["test_pad2d"].message
    assert time.monotonic() - started < 20  # one timeout, not one per test


def test_the_whole_submission_has_a_time_budget(setup):
    folder = package(setup, "slow", {f: [I + "import time", I + "time.sleep(2)",
                                         I + "raise ValueError"]
                                     for f in ("correlate", "convolve", "pad2d")})
    started = time.monotonic()
    report, scores = score(setup, folder, Limits(cell_timeout=30, submission_timeout=4))
    assert set(scores.values()) == {0}
    assert time.monotonic() - started < 20
    assert any("time budget" in (c.message or "") for c in report.cells.values())


# Each attack's _steal() returns something with a right pad2d only if the forbidden
# operation worked: a sandbox that lets it through gives the test its point.
ANSWER = """
import types as _types
import numpy as _np
def _answer(*_):
    def pad2d(x, padding, value=0):
        ph, pw = (padding, padding) if _np.ndim(padding) == 0 else padding
        x = _np.asarray(x)
        return _np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)],
                       constant_values=value)
    return _types.SimpleNamespace(pad2d=pad2d)
"""
ATTACKS = {
    "read the reference": f"""
import importlib.util as _u
def _steal():
    spec = _u.spec_from_file_location("_ref", {str(REFERENCE_PACKAGE / "signal.py")!r})
    module = _u.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
""",
    "walk up to the reference": """
import os as _os
import importlib.util as _u
def _steal():
    folder = _os.path.dirname(_os.path.abspath(__file__))
    while folder != "/":
        for base, dirs, files in _os.walk(folder):
            if base.count("/") - folder.count("/") > 3:
                dirs[:] = []
            if base.endswith("cnnlab") and "signal.py" in files:
                path = _os.path.join(base, "signal.py")
                if "BEGIN SOLUTION" in open(path).read():
                    spec = _u.spec_from_file_location("_ref", path)
                    module = _u.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    return module
        folder = _os.path.dirname(folder)
""",
    "run a process": """
import subprocess as _sp
def _steal():
    return _answer(_sp.run(["true"], check=True))
""",
    "fork": """
import os as _os
def _steal():
    pid = _os.fork()
    if pid == 0:
        _os._exit(0)
    return _answer(_os.waitpid(pid, 0))
""",
    "use ctypes": """
import ctypes as _ct
def _steal():
    return _answer(_ct.CDLL(None).getpid())
""",
    "open a socket": """
import socket as _s
def _steal():
    server = _s.socket()
    server.bind(("127.0.0.1", 0))
    return _answer(server)
""",
    "write a file": """
def _steal():
    with open("cnnlab/was-here.txt", "w") as handle:
        handle.write("x")
    return _answer()
""",
    "signal the grader": """
import os as _os, signal as _signal
def _steal():
    _os.kill(_os.getppid(), 0)
    return _answer()
""",
    "raise the limits": """
import resource as _r
def _steal():
    _r.setrlimit(_r.RLIMIT_CPU, (_r.RLIM_INFINITY, _r.RLIM_INFINITY))
    return _answer()
""",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_student_code_cannot_reach_the_reference_or_the_system(setup, isolation, attack):
    body = [I + "_module = _steal()", I + "return _module.pad2d(x, padding, value)"]
    folder = package(setup, f"attack-{isolation.unsafe_no_isolation}-{attack.replace(' ', '_')}",
                     {"pad2d": body}, prelude=ANSWER + ATTACKS[attack])
    report, scores = score(setup, folder, isolation)
    assert scores["test_pad2d"] == 0, (attack, report.cells["test_pad2d"])
    assert scores["test_correlate"] == 2  # the rest of the package is still graded


def test_the_attack_harness_detects_a_success(setup):
    body = [I + "_module = _answer()", I + "return _module.pad2d(x, padding, value)"]
    _, scores = score(setup, package(setup, "harness", {"pad2d": body}, prelude=ANSWER))
    assert scores["test_pad2d"] == 1


def test_monkeypatching_numpy_in_the_sandbox_changes_nothing(setup):
    prelude = ("import numpy as _np\n_np.isclose = lambda *a, **k: True\n"
               "_np.allclose = lambda *a, **k: True\n"
               "import cnnlab.checks._core as _c\n_c.run_case = lambda *a: None\n")
    report, scores = score(setup, package(setup, "patcher", prelude=prelude, solved=False))
    assert set(scores.values()) == {0}


# A cheat that fetches a forbidden function once, at run time, and keeps it: had the
# sandbox put tripwires on SciPy only after the student's code imported it, the kept
# original would go on answering unseen.
KEEP_ORIGINAL = """
_kept = []


def _kept_correlate():
    if not _kept:
        import importlib, sys
        _kept.append(getattr(importlib.import_module('scipy.' + 'sig' + 'nal'), 'corr' + 'elate'))
        for name in [m for m in sys.modules if m.startswith('scipy')]:
            del sys.modules[name]  # and hide that SciPy was ever imported
    return _kept[0]
"""


# ... and keeps the grading side from hearing that SciPy was opened: the report goes
# through json.dumps, which student code can rebind.
SUPPRESS_REPORT = """
import json as _json
_dumps = _json.dumps
_json.dumps = lambda header, *a, **k: _dumps(
    {"ev": "nothing"} if header.get("ev") == "needs-preload" else header, *a, **k)
"""


@pytest.mark.parametrize("cheat", ["keeps the original", "and suppresses the report"])
def test_scipy_opened_by_student_code_means_every_test_again_with_scipy_wired(setup, isolation,
                                                                             cheat):
    """The first attempt imports NumPy alone (SciPy costs a second); the moment the
    student's code opens SciPy, that attempt ends, its results are dropped and every
    test runs again with SciPy imported and its forbidden callables wired first."""
    body = [I + "return _kept_correlate()(in1, in2, mode)"]
    prelude = KEEP_ORIGINAL + (SUPPRESS_REPORT if cheat == "and suppresses the report" else "")
    folder = package(setup, "keeps-original", {"correlate": body}, prelude=prelude)
    report = run_sandbox(folder, setup["trusted"], setup["bank"], CELLS, isolation)
    scores = {k: v.score for k, v in report.cells.items()}
    assert scores == {"test_correlate": 0, "test_convolve": 1, "test_pad2d": 1}, report
    assert report.cells["test_correlate"].message.startswith(
        "correlate calls scipy.signal.correlate: implement it yourself (rule of exercise 1 "
        "of 01_convolution_1d.ipynb"), report.cells["test_correlate"].message


def test_the_attempt_again_with_scipy_has_a_time_budget_of_its_own(setup):
    """An honest package that takes its time before it opens SciPy (scipy.fft is
    allowed): its second attempt is not charged for the first."""
    slow = ("import importlib as _importlib, time as _time\n"
            "_time.sleep(6)\n"
            "_importlib.import_module('scipy.fft')\n")
    report, scores = score(setup, package(setup, "slow-fft", prelude=slow),
                           Limits(cell_timeout=30, submission_timeout=13, startup_timeout=60))
    failed = {k: v.message for k, v in report.cells.items() if not v.passed}
    assert not failed and set(scores.values()) <= {1, 2}, failed


# correlate2d done by SciPy's C routine, fetched by a name no static check can read
PRIVATE_ROUTINE = [
    I + "import importlib, numpy as np",
    I + "routine = getattr(importlib.import_module('sci' + 'py.sig' + 'nal._sig' + 'tools'),",
    I + "                  '_conv' + 'olve2d')",
    I + "in1, in2 = np.asarray(in1), np.asarray(in2)",
    I + "dtype = np.result_type(in1, in2)",
    I + "flip = {'full': 2, 'same': 1, 'valid': 0}[mode]",
    I + "return routine(in1.astype(dtype), in2.astype(dtype).conj(), 0, flip, 0, 0)",
]


def test_a_private_routine_of_a_forbidden_module_is_as_forbidden_as_the_module(setup,
                                                                           isolation):
    from autograder.casebank import CaseBank
    cells = [GradedCell("02", "test_correlate2d", 1, "test", "",
                        [CheckCall("signal.correlate2d")])]
    folder = package(setup, "private-routine", {"correlate2d": PRIVATE_ROUTINE})
    report = run_sandbox(folder, setup["trusted"], CaseBank(cells), cells, isolation)
    cell = report.cells["test_correlate2d"]
    assert cell.score == 0 and "scipy.signal._sigtools._convolve2d" in cell.message, cell


def test_an_honest_submission_is_scored_in_one_attempt_without_scipy(setup, monkeypatch):
    from autograder import runner
    restarts, start_over = [], runner.TaskRun._start_over

    def counted(self, preload_all):
        restarts.extend([self] if preload_all else [])
        start_over(self, preload_all)
    monkeypatch.setattr(runner.TaskRun, "_start_over", counted)
    report, scores = score(setup, package(setup, "honest"))
    assert set(scores.values()) == {1, 2} and all(c.passed for c in report.cells.values())
    assert restarts == []


def test_forged_or_oversized_output_fails_cleanly(setup):
    forge = ("import os as _os, sys as _sys\n"
             "_os.write(int(_sys.argv[2]), b'\\x00\\x00\\x00\\x05junk!' * 3)\n")
    report, scores = score(setup, package(setup, "forger", prelude=forge))
    assert scores["test_pad2d"] == 0 and report.error is None
    huge = {"pad2d": [I + "import numpy as np", I + "return np.zeros(4_000_000)"]}
    report, scores = score(setup, package(setup, "huge", huge),
                           Limits(cell_timeout=10, submission_timeout=60, max_output_mb=1))
    assert scores == {"test_correlate": 2, "test_convolve": 1, "test_pad2d": 0}
    assert "larger than 1 MB" in report.cells["test_pad2d"].message


def test_a_missing_package_scores_zero_with_a_reason(setup, tmp_path):
    report = run_sandbox(tmp_path / "nothing", setup["trusted"], setup["bank"], CELLS, FAST)
    assert {c.score for c in report.cells.values()} == {0}
    assert "no cnnlab/ folder" in report.cells["test_pad2d"].message


def test_the_package_under_test_is_the_students_with_the_instructors_checks(setup, tmp_path):
    student = package(setup, "tampered")
    (student / "checks" / "_core.py").write_text("raise SystemExit('tampered checks')\n")
    (student / "helpers.py").write_text("VALUE = 1\n")
    (student / "link.py").symlink_to(REPO / "cnnlab" / "signal.py")
    dest = tmp_path / "box" / "cnnlab"
    assemble_package(student, setup["trusted"], dest)
    assert (dest / "checks" / "_core.py").read_bytes() == \
        (REFERENCE_PACKAGE / "checks" / "_core.py").read_bytes()
    assert (dest / "signal.py").read_bytes() == (student / "signal.py").read_bytes()
    assert (dest / "helpers.py").exists() and not (dest / "link.py").exists()
    report, scores = score(setup, student)
    assert scores == {"test_correlate": 2, "test_convolve": 1, "test_pad2d": 1}


def test_frame_reader_bounds_everything():
    reader = FrameReader(max_array=1000, max_total=10_000)
    header = json.dumps({"ev": "case", "arrays": ["out"]}).encode()
    import io
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    blob = buffer.getvalue()
    data = struct.pack(">I", len(header)) + header + struct.pack(">Q", len(blob)) + blob
    messages = reader.feed(data[:7]) + reader.feed(data[7:])
    assert messages[0][0]["ev"] == "case" and list(messages[0][1]["out"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="larger than"):
        FrameReader(100, 10_000).feed(data)
    with pytest.raises(ValueError, match="exceeded"):
        FrameReader(1000, 10).feed(data)
    with pytest.raises(ValueError, match="header"):
        FrameReader(1000, 1 << 30).feed(struct.pack(">I", 1 << 30))


def test_every_registered_check_crosses_to_the_sandbox_and_the_reference_passes(tmp_path):
    """ps2 and ps3 work as soon as their notebooks exist: their checks already do here."""
    import importlib
    import pkgutil

    import cnnlab.checks
    from autograder.regions import function_regions, stub_functions
    from autograder.selfcheck import defining_file
    from cnnlab.checks import REGISTRY
    for info in pkgutil.iter_modules(cnnlab.checks.__path__):
        importlib.import_module(f"cnnlab.checks.{info.name}")
    cells = [GradedCell("x", f"test_{name}", 1, "test", "", [
        CheckCall(name), CheckCall(name, 7, 3, hidden=True)]) for name in sorted(REGISTRY)]
    trusted = write_student_edition(tmp_path / "all-stubs", None)
    report = run_sandbox(REFERENCE_PACKAGE, trusted, CaseBank(cells), cells,
                         Limits(cell_timeout=300, submission_timeout=1200))
    failed = {k: v.message for k, v in report.cells.items() if not v.passed}
    assert report.error is None and not failed, failed
    # and each defining file is found, so `check` can stub each function alone
    for chk in REGISTRY.values():
        text = (REFERENCE_PACKAGE / defining_file(chk)).read_text()
        if function_regions(text, chk.function):
            assert "raise NotImplementedError" in stub_functions(text, [chk.function]), chk.name

