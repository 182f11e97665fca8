"""Each exercise's rule: found in the syntax tree, caught at run time, obeyed by the reference.

The in-process tests import a student's package under the name ``cnnlab`` (the
reference's modules are set aside meanwhile), as a notebook kernel does, and run the
notebook's ``check()`` on it.
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.signal

from autograder.student_edition import write_student_edition
from autograder.submissions import patch_function, solve
from cnnlab.checks import EXERCISES, REGISTRY
from cnnlab.checks._core import BY_FUNCTION
from cnnlab.checks.rules import Tripwires, check_source, static_violations

I = "    "  # noqa: E741
SIGNAL = "cnnlab/signal.py"


def uses(source: str, file: str = SIGNAL) -> dict[str, str]:
    """{exercise function: forbidden name} the static check finds in ``source``."""
    return {v.function: v.call for v in static_violations(textwrap.dedent(source), file)}


# -- static -------------------------------------------------------------------------------------

def test_the_reference_obeys_every_rule_statically():
    assert [e for e in EXERCISES if check_source(e) is not None] == []


@pytest.mark.parametrize("prelude, body, found", [
    ("import scipy.signal", "scipy.signal.correlate2d(a, b)", "scipy.signal.correlate2d"),
    ("import scipy.signal as ss", "ss.correlate2d(a, b)", "scipy.signal.correlate2d"),
    ("from scipy import signal as s", "s.correlate2d(a, b)", "scipy.signal.correlate2d"),
    ("from scipy.signal import correlate2d as c", "c(a, b)", "scipy.signal.correlate2d"),
    ("from numpy import convolve", "convolve(a, b)", "numpy.convolve"),
    ("import numpy as np", "np.correlate(a, b)", "numpy.correlate"),
    ("from scipy import ndimage", "ndimage.correlate(a, b)", "scipy.ndimage.correlate"),
    ("from scipy import signal\nc2d = signal.correlate2d", "c2d(a, b)",
     "scipy.signal.correlate2d"),
    ("import importlib", "importlib.import_module('scipy.signal').correlate2d(a, b)",
     "scipy.signal.correlate2d"),
    ("import sys", "sys.modules['scipy.signal'].correlate2d(a, b)", "scipy.signal.correlate2d"),
    ("import scipy", "getattr(scipy.signal, 'correlate2d')(a, b)", "scipy.signal.correlate2d"),
    ("", "__import__('scipy.signal').signal.correlate2d(a, b)", "scipy.signal.correlate2d"),
    ("from .checks import get_check", "get_check('x')", "cnnlab.checks.get_check"),
    ("from cnnlab import checks", "checks.get_check('x')", "cnnlab.checks.get_check"),
    ("", "from scipy.signal import correlate2d; return correlate2d(a, b)",
     "scipy.signal.correlate2d"),
])
def test_static_finds_a_forbidden_name_through_aliases(prelude, body, found):
    source = f"{prelude}\n\ndef correlate2d(a, b, mode='full'):\n    return {body}\n"
    source = source.replace("return from", "from").replace("; return", "\n    return")
    assert uses(source) == {"correlate2d": found}


def test_static_charges_a_helper_to_the_exercise_that_calls_it():
    source = """
        import numpy as np
        from scipy import signal

        def _helper(a, b):
            return signal.correlate(a, b)

        def correlate(in1, in2, mode="full"):
            return _helper(in1, in2)

        def convolve(in1, in2, mode="full"):
            return correlate(in1, in2[::-1].conj(), mode)  # its own function: allowed
    """
    assert uses(source) == {"correlate": "scipy.signal.correlate"}


def test_static_allows_numpy_own_functions_and_shadowing_names():
    source = """
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view
        from scipy import signal

        def correlate(in1, in2, mode="full"):
            windows = sliding_window_view(np.pad(in1, in2.size - 1), in2.size)
            return np.einsum("ij,j->i", windows, in2.conj())

        def convolve(in1, in2, mode="full"):
            return correlate(in1, in2[::-1].conj(), mode)

        def fftconvolve(in1, in2, mode="full"):
            n = in1.size + in2.size - 1
            return np.fft.ifft(np.fft.fft(in1, n) * np.fft.fft(in2, n))

        def pad2d(x, padding, value=0):
            signal = np.kron(x, np.ones((1, 1)))  # a variable that shadows the import
            return signal.correlate if False else signal

        def dilate_kernel(signal, dilation):  # a parameter that shadows it
            return signal.correlate2d
    """
    assert uses(source) == {}
    pooling = "import numpy as np\n\ndef upsample(x, factor):\n    return np.kron(x, 1)\n"
    assert uses(pooling, "cnnlab/pooling.py") == {}


def test_ps2_and_ps3_rules_forbid_their_shortcuts():
    layers = """
        import scipy.special
        from scipy.optimize import approx_fprime

        def softmax_cross_entropy(scores, labels):
            return scipy.special.log_softmax(scores)

        def numerical_gradient(f, x, h=1e-5):
            return approx_fprime(x, f, h)
    """
    found = {v.function: v.call for v in static_violations(textwrap.dedent(layers),
                                                           "cnnlab/layers/dense.py")}
    assert found == {"softmax_cross_entropy": "scipy.special.log_softmax"}
    found = {v.function: v.call for v in static_violations(textwrap.dedent(layers),
                                                           "cnnlab/gradcheck.py")}
    assert found == {"numerical_gradient": "scipy.optimize.approx_fprime"}
    assert BY_FUNCTION["fftconvolve"].rule.forbids("numpy.fft.fft") is None
    assert BY_FUNCTION["convolution_matrix"].rule.forbids("scipy.linalg.toeplitz")
    assert BY_FUNCTION["correlate"].rule.forbids("scipy.linalg.toeplitz") is None


# -- tripwires ----------------------------------------------------------------------------------

def test_tripwires_let_numpy_scipy_and_the_checks_through_and_put_everything_back():
    original = np.convolve
    wires = Tripwires()
    wires.install(EXERCISES)
    try:
        assert np.convolve is not original
        with wires.checking(BY_FUNCTION["convolve"]):
            # not called from the student's package: a notebook cell, NumPy itself, SciPy
            assert list(np.convolve([1, 2], [1, 1])) == [1, 3, 2]
            assert list(np.polymul([1, 2], [1, 1])) == [1, 3, 2]
            assert scipy.signal.convolve2d([[1]], [[2]]).tolist() == [[2]]
        assert wires.violations == []
    finally:
        wires.uninstall()
    assert np.convolve is original
    assert importlib.import_module("numpy._core.numeric").convolve is original


@contextlib.contextmanager
def student_cnnlab(tmp_path, function: str, body: list[str], prelude: str = ""):
    """The ps1 release's package with the reference solutions but ``function`` = ``body``,
    imported as ``cnnlab`` (the reference's modules set aside); yields its ``checks``."""
    package = write_student_edition(tmp_path, "ps1")
    solve(package, "signal.py", [f for f in _signal_exercises() if f != function])
    patch_function(package, "signal.py", function, body)
    if prelude:
        path = package / "signal.py"
        path.write_text(path.read_text().replace("\n__all__ = [", f"\n{prelude}\n__all__ = [", 1))
    saved = {k: v for k, v in sys.modules.items() if k == "cnnlab" or k.startswith("cnnlab.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(tmp_path))
    try:
        checks = importlib.import_module("cnnlab.checks")
        assert checks.__file__.startswith(str(tmp_path))
        yield checks
    finally:
        sys.path.remove(str(tmp_path))
        for name in [k for k in sys.modules if k == "cnnlab" or k.startswith("cnnlab.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _signal_exercises() -> list[str]:
    return [f for e in EXERCISES if e.module == "cnnlab.signal" for f in e.functions]


def test_a_test_cell_tells_the_student_about_a_forbidden_call(tmp_path, capsys):
    body = [I + "import scipy.signal", I + "return scipy.signal.correlate2d(in1, in2, mode)"]
    with student_cnnlab(tmp_path, "correlate2d", body) as checks:
        with pytest.raises(AssertionError, match=r"^correlate2d uses scipy\.signal\.correlate2d "
                           r"\(line \d+\): implement it yourself \(rule of exercise 1 of "
                           r"02_convolution_2d\.ipynb: no library routine that convolves"):
            checks.check("signal.correlate2d")
        checks.check("signal.convolve2d")  # it calls correlate2d: not its own fault
    assert "✔ convolve2d" in capsys.readouterr().out


def test_a_call_no_syntax_tree_shows_is_caught_while_the_check_runs(tmp_path):
    body = [I + "import importlib",
            I + "module = importlib.import_module('scipy.' + 'signal')",
            I + "return getattr(module, 'correlate' + '2d')(in1, in2, mode)"]
    with student_cnnlab(tmp_path, "correlate2d", body) as checks:
        with pytest.raises(AssertionError, match=r"^correlate2d calls scipy\.signal\.correlate2d:"
                           r" implement it yourself \(rule of exercise 1 of 02_convolution_2d"):
            checks.check("signal.correlate2d")


FRESH_KERNEL = """
import sys
from cnnlab.checks import check
before = sorted(m for m in ("scipy.signal", "scipy.ndimage", "scipy.linalg") if m in sys.modules)
try:
    for name in sys.argv[1:]:
        check(name)
finally:
    print("loaded before:", before)
    print("loaded after:", sorted(m for m in ("scipy.signal", "scipy.ndimage", "scipy.linalg")
                                  if m in sys.modules))
"""


def run_checks_fresh(folder, *names) -> subprocess.CompletedProcess:
    """``check(name)`` for each name, in a new interpreter whose ``cnnlab`` is ``folder``'s,
    as in a notebook kernel (no SciPy imported beforehand)."""
    return subprocess.run([sys.executable, "-c", FRESH_KERNEL, *names], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def test_a_test_cell_imports_no_forbidden_module_the_student_does_not_use(tmp_path):
    """Tripwires go on what is imported (importing SciPy would cost every test cell's first
    check a second, in every notebook run of the autograder too)."""
    package = write_student_edition(tmp_path, "ps1")
    solve(package, "signal.py", _signal_exercises())
    names = [f"signal.{f}" for f in ("correlate", "convolve", "correlate2d", "convolve2d")]
    done = run_checks_fresh(tmp_path, *names)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded after: []" in done.stdout, done.stdout


def test_a_forbidden_module_imported_while_the_check_runs_is_caught_in_a_fresh_kernel(tmp_path):
    """The module was not loaded when the check began: the case that imported it runs
    again, with its tripwires."""
    package = write_student_edition(tmp_path, "ps1")
    solve(package, "signal.py", [f for f in _signal_exercises() if f != "correlate2d"])
    patch_function(package, "signal.py", "correlate2d", [
        I + "import importlib",
        I + "module = importlib.import_module('scipy.' + 'signal')",
        I + "return getattr(module, 'correlate' + '2d')(in1, in2, mode)"])
    done = run_checks_fresh(tmp_path, "signal.correlate2d")
    assert "loaded before: []" in done.stdout, done.stdout
    assert done.returncode != 0
    assert "AssertionError: correlate2d calls scipy.signal.correlate2d: implement it " \
        "yourself (rule of exercise 1 of 02_convolution_2d" in done.stderr, done.stderr[-2000:]


def test_catching_the_refusal_does_not_hide_it(tmp_path):
    body = [I + "try:",
            I + I + "return getattr(np, 'con' + 'volve')(in1, in2, mode)",
            I + "except Exception:",
            I + I + "return correlate(in1, in2[::-1].conj(), mode)"]
    with student_cnnlab(tmp_path, "convolve", body) as checks:
        with pytest.raises(AssertionError, match=r"^convolve calls numpy\.convolve: implement it"
                           r" yourself \(rule of exercise 2 of 01_convolution_1d"):
            checks.check("signal.convolve")


def test_a_module_level_lambda_alias_is_caught(tmp_path):
    prelude = "_corr = lambda *args: __import__('scipy.sig' + 'nal').signal.correlate(*args)\n"
    with student_cnnlab(tmp_path, "correlate", [I + "return _corr(in1, in2, mode)"],
                        prelude) as checks:
        with pytest.raises(AssertionError, match=r"^correlate calls scipy\.signal\.correlate: "):
            checks.check("signal.correlate")


def test_an_honest_submission_with_allowed_numpy_passes(tmp_path, capsys):
    body = [I + "n2 = in2.size",
            I + "full = np.einsum('ij,j->i', sliding_window_view(np.pad(in1, n2 - 1), n2),"
                " in2.conj())",
            I + "if mode == 'valid' and n2 > in1.size:",
            I + I + "return correlate(in2, in1, 'valid')[::-1].conj()",
            I + "start = {'full': 0, 'same': (n2 - 1) // 2, 'valid': n2 - 1}[mode]",
            I + "size = {'full': in1.size + n2 - 1, 'same': in1.size,"
                " 'valid': in1.size - n2 + 1}[mode]",
            I + "return full[start:start + size]"]
    with student_cnnlab(tmp_path, "correlate", body) as checks:
        for name in ("signal.correlate", "signal.convolve", "signal.fftconvolve"):
            checks.check(name)
    assert capsys.readouterr().out.count("✔") == 3


def _all_checks() -> list[str]:
    import pkgutil

    import cnnlab.checks
    for info in pkgutil.iter_modules(cnnlab.checks.__path__):
        importlib.import_module(f"cnnlab.checks.{info.name}")
    return sorted(REGISTRY)


@pytest.mark.parametrize("name", _all_checks())
def test_the_reference_passes_every_check_with_the_rules_on(name):
    from cnnlab.checks import check
    check(name, count=2)


def test_each_notebook_states_the_rule_where_the_exercise_is():
    import re

    import nbformat

    from autograder.course import REPO
    for exercise in EXERCISES:
        notebook = nbformat.read(str(REPO / "notebooks" / exercise.notebook), as_version=4)
        heading = re.compile(rf"^#+ *{exercise.kind} {exercise.number}\b", re.M)
        cell = next(c for c in notebook.cells
                    if c.cell_type == "markdown" and heading.search(c.source))
        assert f"**Rule:** {exercise.rule.words}." in cell.source, exercise
