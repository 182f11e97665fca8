"""The machinery behind the notebooks' test cells.

A :class:`Check` knows how to make test cases (worked examples from the lecture
plus seeded random ones), how to call the student's function on a case, how to
compute the right answer with a trusted reference (SciPy, NumPy or numerical
gradients), and how to explain a wrong answer in plain words.

The same objects serve twice: in a notebook, :func:`check` runs everything in
the student's kernel for instant feedback; the autograder instead calls
:meth:`Check.call` in a sandboxed process on the student's package and compares
the arrays it returns with :meth:`Check.reference` computed in a clean process.
"""

from __future__ import annotations

import ast
import functools
import importlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REGISTRY: dict[str, Check] = {}
PACKAGE = Path(__file__).resolve().parents[1]  # the cnnlab folder these checks belong to


@dataclass(frozen=True)
class Rule:
    """What an exercise's own code may not use, in words and as dotted names.

    A name forbids itself and everything under it: ``"scipy.signal"`` forbids
    ``scipy.signal.correlate2d``. The course's grading side (``cnnlab.checks``) is
    forbidden everywhere. Enforced by :mod:`cnnlab.checks.rules`, statically on the
    module's syntax tree and dynamically with tripwires while the exercise runs.
    """

    words: str
    forbidden: tuple[str, ...] = ()

    def forbids(self, dotted: str) -> str | None:
        """The forbidden name that covers ``dotted`` (None if it is allowed)."""
        for name in (*self.forbidden, *EVERYWHERE):
            if dotted == name or dotted.startswith(name + "."):
                return name
        return None

    def plus(self, words: str, *forbidden: str) -> Rule:
        """This rule with more forbidden names (``words`` says what they are)."""
        return Rule(f"{self.words}; {words}", self.forbidden + forbidden)


EVERYWHERE = ("cnnlab.checks",)  # the grading side: its references and helpers
CONVOLUTION = ("scipy.signal", "scipy.ndimage.convolve", "scipy.ndimage.convolve1d",
               "scipy.ndimage.correlate", "scipy.ndimage.correlate1d", "numpy.convolve",
               "numpy.correlate")
NO_CONVOLUTION = Rule(
    "no library routine that convolves or correlates: nothing from scipy.signal, no "
    "scipy.ndimage.convolve/correlate, numpy.convolve or numpy.correlate (numpy.fft, "
    "sliding_window_view, einsum, tensordot, matmul and your own functions are fine)",
    CONVOLUTION)
NO_MATRIX_SHORTCUT = NO_CONVOLUTION.plus(
    "nor scipy.linalg.convolution_matrix, toeplitz or circulant",
    "scipy.linalg.convolution_matrix", "scipy.linalg.toeplitz", "scipy.linalg.circulant")
NO_LAYER_SHORTCUT = Rule(
    "no library routine that does the exercise: nothing from scipy.signal or scipy.ndimage, "
    "no numpy.convolve/correlate, scipy.special's softmax, log_softmax, logsumexp or expit, "
    "scipy.optimize's approx_fprime or check_grad (NumPy, sliding_window_view, einsum, kron "
    "and your own functions are fine)",
    ("scipy.signal", "scipy.ndimage", "numpy.convolve", "numpy.correlate",
     "scipy.special.softmax", "scipy.special.log_softmax", "scipy.special.logsumexp",
     "scipy.special.expit", "scipy.optimize.approx_fprime", "scipy.optimize.check_grad"))


def grading_side(definition):
    """Mark a function, method or class as reference code: the grading side keeps it, a
    student's release leaves it out (see ``autograder/checks_edition.py``)."""
    return definition


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the functions a student writes for it, and its rule."""

    notebook: str                 # e.g. "02_convolution_2d.ipynb"
    number: int                   # as in the notebook's heading "Exercise 5"
    functions: tuple[str, ...]    # the functions (or classes) it asks for
    module: str                   # where they live, e.g. "cnnlab.signal"
    kind: str = "Exercise"        # "Exercise", or "Test" for a test of several exercises
    rule: Rule = Rule("nothing from the course's grading side (cnnlab.checks)")

    @property
    def file(self) -> str:
        return module_file(self.module, self.functions[0])

    def describe(self) -> str:
        """e.g. 'exercise 5 of 02_convolution_2d.ipynb, in cnnlab/signal.py'."""
        return f"{self.kind.lower()} {self.number} of {self.notebook}, in {self.file}"

    def short(self) -> str:
        """e.g. 'exercise 5 of 02_convolution_2d.ipynb'."""
        return f"{self.kind.lower()} {self.number} of {self.notebook}"


def _exercises(notebook: str, module: str, *items, rule: Rule) -> list[Exercise]:
    """Exercises of one notebook and module, each ``(number, "function names")``."""
    return [Exercise(notebook, number, tuple(functions.split()), module, rule=rule)
            for number, functions in items]


# Every exercise of the course, in notebook order, each with its rule (tests/
# test_student_walkthrough.py checks this table against the notebooks' headings and test
# cells, and the package's stubs; tests/test_rules.py checks the reference obeys the rules).
EXERCISES: tuple[Exercise, ...] = (
    *_exercises("01_convolution_1d.ipynb", "cnnlab.signal",
                (1, "correlate"), (2, "convolve"), rule=NO_CONVOLUTION),
    *_exercises("01_convolution_1d.ipynb", "cnnlab.signal",
                (3, "convolution_matrix"), rule=NO_MATRIX_SHORTCUT),
    *_exercises("01_convolution_1d.ipynb", "cnnlab.signal", (4, "fftconvolve"),
                rule=NO_CONVOLUTION),
    *_exercises("02_convolution_2d.ipynb", "cnnlab.signal",
                (1, "correlate2d"), (2, "convolve2d"), (3, "conv_output_size"), (4, "pad2d"),
                (5, "dilate_kernel"), rule=NO_CONVOLUTION),
    *_exercises("02_convolution_2d.ipynb", "cnnlab.signal",
                (6, "convolution_matrix2d"), rule=NO_MATRIX_SHORTCUT),
    *_exercises("03_pooling_and_backprop.ipynb", "cnnlab.pooling",
                (1, "max_pool2d_forward"), (2, "avg_pool2d_forward"), (3, "upsample"),
                (4, "avg_pool2d_backward"), (5, "max_pool2d_backward"), rule=NO_LAYER_SHORTCUT),
    *_exercises("03_pooling_and_backprop.ipynb", "cnnlab.layers",
                (6, "conv_grad_kernel"), (7, "conv_grad_bias"), (8, "conv_delta_input"),
                rule=NO_LAYER_SHORTCUT),
    *_exercises("03_pooling_and_backprop.ipynb", "cnnlab.gradcheck",
                (9, "numerical_gradient"), (10, "relative_error"), rule=NO_LAYER_SHORTCUT),
    *_exercises("03_pooling_and_backprop.ipynb", "cnnlab.layers",
                (11, "conv2d_forward"), (12, "conv2d_backward"), (13, "conv_transpose2d"),
                rule=NO_LAYER_SHORTCUT),
    *_exercises("04_lenet5_mnist.ipynb", "cnnlab.layers",
                (1, "linear_forward"), (2, "linear_backward"), (3, "relu_forward relu_backward"),
                (4, "tanh_forward tanh_backward"), (5, "sigmoid_forward sigmoid_backward"),
                (6, "flatten flatten_backward"), (7, "softmax_cross_entropy"),
                rule=NO_LAYER_SHORTCUT),
    *_exercises("04_lenet5_mnist.ipynb", "cnnlab.lenet",
                (8, "lenet_forward"), (9, "lenet_backward"), rule=NO_LAYER_SHORTCUT),
    *_exercises("04_lenet5_mnist.ipynb", "cnnlab.optim", (10, "sgd_update SGD"),
                rule=NO_LAYER_SHORTCUT),
    Exercise("04_lenet5_mnist.ipynb", 11, ("fit",), "cnnlab.train", kind="Test",
             rule=NO_LAYER_SHORTCUT),
    *_exercises("05_modern_layers.ipynb", "cnnlab.layers",
                (1, "window_geometry"), (2, "layer_costs"), (3, "conv1x1_forward"),
                (4, "global_avg_pool_forward global_avg_pool_backward"),
                (5, "leaky_relu_forward leaky_relu_backward"), (6, "he_init glorot_init"),
                (7, "batchnorm2d_forward"), (8, "batchnorm2d_backward"),
                (9, "dropout_forward dropout_backward"), rule=NO_LAYER_SHORTCUT),
)
BY_FUNCTION: dict[str, Exercise] = {f: e for e in EXERCISES for f in e.functions}


# CPython 3.11's ast is not safe in threads ("AST constructor recursion depth mismatch",
# gh-106905), and the autograder grades submissions in threads: parse through this lock.
_PARSE_LOCK = threading.RLock()
_AST_PARSE = ast.parse


def parse_source(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time."""
    with _PARSE_LOCK:
        return _AST_PARSE(source)


def _parse_one_thread_at_a_time(*args, **kwargs):
    with _PARSE_LOCK:
        return _AST_PARSE(*args, **kwargs)


def serialize_ast_parsing() -> None:
    """Make every ``ast.parse`` of this process take :data:`_PARSE_LOCK`.

    For a process that parses in several threads: the grading process, where one
    worker's rule check would otherwise race with, for instance, Python 3.11's traceback
    module, which parses source lines to place its ``^^^`` marks.
    """
    ast.parse = _parse_one_thread_at_a_time


@functools.cache
def module_file(module: str, function: str) -> str:
    """The file that defines ``function`` of ``module``, e.g. 'cnnlab/layers/conv.py'.

    Found by reading the source (nothing is imported), so that it names the right file even
    when the student's package does not import.
    """
    parts = module.split(".")
    if parts[0] != PACKAGE.name:
        raise ValueError(f"module must be a module of {PACKAGE.name}, got {module!r}")
    base = PACKAGE.joinpath(*parts[1:])
    candidates = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else sorted(
        base.glob("*.py"))
    for path in candidates:
        tree = parse_source(path.read_text(encoding="utf-8"))
        if any(isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == function
               for node in tree.body):
            return path.relative_to(PACKAGE.parent).as_posix()
    raise ValueError(f"function must be defined in {module}, got {function!r}")


def exercise_file(check_name: str) -> str:
    """The file a student edits for the check ``check_name``, e.g. 'cnnlab/layers/conv.py'."""
    chk = get_check(check_name)
    return module_file(chk.module, chk.function)


def exercise_of(function: str) -> Exercise | None:
    """The exercise that asks for ``function`` (None if it is no exercise)."""
    return BY_FUNCTION.get(function)


def not_implemented(function: str) -> str:
    """The one line that says what to do about a function still a stub."""
    exercise = exercise_of(function)
    where = f" ({exercise.describe()})" if exercise else ""
    return f"`{function}` is not implemented yet{where}"


def stub_in_traceback(exc: BaseException) -> str | None:
    """The innermost exercise function of ``exc``'s traceback (the stub that raised)."""
    found, tb = None, exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in BY_FUNCTION and BY_FUNCTION[name].kind == "Exercise":
            found = name
        tb = tb.tb_next
    if found is None:  # e.g. a stub method of a class: its message starts with the name
        first = str(exc).split(" ", 1)[0].strip("`:")
        found = first if first in BY_FUNCTION else None
    return found


def plain(value) -> str:
    """A value as a student reads it: ``4``, not ``np.int64(4)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ")
    if isinstance(value, tuple):
        return "(" + ", ".join(plain(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


@dataclass(frozen=True)
class Case:
    """One input to a check: a short label and keyword arguments.

    Inputs are NumPy arrays or plain scalars and strings, so that they can cross
    a process boundary as ``.npy`` files and JSON.
    """

    label: str
    inputs: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        for name, value in self.inputs.items():
            if isinstance(value, np.ndarray) and value.size > 12:
                parts.append(f"{name}: {value.dtype} array of shape {value.shape}")
            elif isinstance(value, np.ndarray):
                parts.append(f"{name}={np.array2string(value, separator=', ')}")
            else:
                parts.append(f"{name}={plain(value)}")
        return f"{self.label} ({'; '.join(parts)})"


class Check:
    """Base class: subclasses set the class attributes and override the hooks."""

    name: str = ""            # registry key, e.g. "signal.convolve"
    module: str = ""          # module holding the function under test
    function: str = ""        # the function under test (looked up at call time)
    reference_name: str = ""  # what the answer is compared with, for messages
    rtol: float = 1e-7
    atol: float = 1e-9
    random_count: int = 20    # random cases per run, on top of the examples
    check_dtype: bool = False

    # -- hooks ---------------------------------------------------------------
    def examples(self) -> list[Case]:
        """Worked examples from the lecture (shown to students)."""
        return []

    def random_cases(self, rng: np.random.Generator, count: int) -> list[Case]:
        """Seeded random cases."""
        return []

    def call(self, **inputs) -> dict[str, np.ndarray]:
        """Run the function under test; returns named output arrays."""
        return {"out": np.asarray(self.target()(**inputs))}

    def reference(self, **inputs) -> dict[str, np.ndarray]:
        """The right answer, from a trusted implementation."""
        raise NotImplementedError

    def mistakes(self, **inputs) -> list[tuple[str, dict[str, np.ndarray]]]:
        """Outputs of plausible wrong versions, each with a hint that explains it."""
        return []

    # -- machinery -------------------------------------------------------------
    def target(self):
        return getattr(importlib.import_module(self.module), self.function)

    def source_file(self) -> str:
        """Where the function under test lives, e.g. 'cnnlab/layers/dense.py'."""
        return module_file(self.module, self.function)

    def cases(self, seed: int = 0, count: int | None = None) -> list[Case]:
        count = self.random_count if count is None else count
        rng = np.random.default_rng(seed)
        return self.examples() + self.random_cases(rng, count)

    def compare(self, case: Case, got: dict, expected: dict,
                wrong: list | None = None) -> str | None:
        """Return None if ``got`` matches ``expected``, else a message in plain words.

        ``wrong``: the explained mistakes of this case (see :meth:`wrong_answers`);
        computed here if not given.
        """
        for key, want in expected.items():
            if key not in got:
                return f"no output named {key!r} was returned"
            problem = describe_difference(np.asarray(got[key]), want, self.rtol, self.atol,
                                          self.check_dtype)
            if problem:
                label = "" if key == "out" else f"{key}: "
                hint = self.diagnose(case, got, expected, wrong)
                return label + problem + (f"\n  hint: {hint}" if hint else "")
        return None

    def wrong_answers(self, case: Case, right: dict) -> list[tuple[str, dict]]:
        """The plausible mistakes of ``case`` whose outputs differ from ``right``.

        A mistake that gives the right answer on this case (a flip of a
        symmetric kernel, say) explains nothing and is left out.
        """
        return [(hint, wrong) for hint, wrong in self.mistakes(**case.inputs)
                if not all(agree(v, right.get(k), self.rtol, self.atol)
                           for k, v in wrong.items())]

    def diagnose(self, case: Case, got: dict, right: dict,
                 wrong: list | None = None) -> str | None:
        """The hint of the first plausible mistake that explains ``got``."""
        for hint, outputs in self.wrong_answers(case, right) if wrong is None else wrong:
            if all(agree(got.get(k), v, self.rtol, self.atol) for k, v in outputs.items()):
                return hint
        return None


def agree(a, b, rtol: float, atol: float) -> bool:
    """True if ``a`` and ``b`` have one shape and close values (False if not comparable)."""
    try:
        return np.shape(a) == np.shape(b) and bool(np.allclose(a, b, rtol=rtol, atol=atol))
    except (TypeError, ValueError):
        return False


def pair(value) -> tuple[int, int]:
    """An int-or-pair case input as a pair of ints."""
    return (int(value), int(value)) if np.ndim(value) == 0 else tuple(int(v) for v in value)


def as_arg(value):
    """An int or a pair of ints as the function under test expects it."""
    return int(value) if np.ndim(value) == 0 else tuple(int(v) for v in value)


def describe_difference(got: np.ndarray, want: np.ndarray, rtol: float, atol: float,
                        check_dtype: bool = False) -> str | None:
    """Explain how ``got`` differs from ``want``, or return None if they agree."""
    want = np.asarray(want)
    if got.shape != want.shape:
        off = [g - w for g, w in zip(got.shape, want.shape)] if got.ndim == want.ndim else None
        note = ""
        if off and all(abs(o) <= 1 for o in off):
            note = " (off by one: check the output-size formula and the padding)"
        return f"expected shape {want.shape}, got shape {got.shape}{note}"
    if got.dtype.kind not in "biufc":
        return f"expected a numeric array, got dtype {got.dtype}"
    if check_dtype and got.dtype != want.dtype:
        return (f"expected dtype {want.dtype}, got {got.dtype} (the result should have the "
                "dtype of numpy.result_type of the inputs)")
    bad = ~np.isclose(got, want, rtol=rtol, atol=atol)
    if np.isnan(want).any():
        bad &= ~(np.isnan(got) & np.isnan(want))
    if not bad.any():
        return None
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    index = where if len(where) != 1 else where[0]
    return (f"values differ at {int(bad.sum())} of {bad.size} positions; first at index "
            f"{index}: expected {plain(want[where])}, got {plain(got[where])}")


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry under its ``name``."""
    REGISTRY[cls.name] = cls()
    return cls


def get_check(name: str) -> Check:
    """Return the registered check ``name`` (importing its module on first use)."""
    group = name.split(".")[0]
    if name not in REGISTRY and group.isidentifier():
        module = f"{__package__}.{group}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a dependency missing inside the check module
                raise
    if name not in REGISTRY:
        raise ValueError(f"name must be a registered check, got {name!r}")
    return REGISTRY[name]


def run_case(chk: Check, case: Case, right: dict | None = None,
             wrong: list | None = None) -> str | None:
    """Run one case in this process; return None on success, else the failure message.

    ``right`` and ``wrong``: the case's answers (computed with the reference if not given).
    """
    try:
        got = chk.call(**case.inputs)
    except NotImplementedError as exc:
        stub = stub_in_traceback(exc) or chk.function
        needs = "" if stub == chk.function else f"{chk.function} needs "
        return (f"{needs}{not_implemented(stub)}: replace its `raise NotImplementedError` "
                "with your code")
    except Exception as exc:  # report any crash of student code as a failure
        return f"{chk.function} raised {type(exc).__name__}: {exc}"
    return chk.compare(case, got, chk.reference(**case.inputs) if right is None else right,
                       wrong)


def check(name: str, seed: int = 0, count: int | None = None) -> None:
    """Test a function of cnnlab against its reference; raise AssertionError if wrong.

    Parameters
    ----------
    name : str
        The check, e.g. ``"signal.convolve"``.
    seed : int, optional
        Seed of the random cases (the hidden tests use other seeds).
    count : int, optional
        Number of random cases on top of the worked examples.
    """
    from cnnlab.checks import rules  # (these import this module)
    from cnnlab.checks.answers import expectations

    chk = get_check(name)
    exercise = exercise_of(chk.function)
    violation = rules.check_source(exercise) if exercise else None
    if violation:  # the exercise's rule, before anything runs (the autograder does the same)
        raise AssertionError(violation.message())
    answers = expectations(chk, seed, count)
    wires = rules.Tripwires()
    wires.install([exercise] if exercise else [], imported_only=True)
    try:
        with wires.checking(exercise):
            for answer in answers:
                case = answer.case
                problem = run_case(chk, case, answer.right, answer.wrong)
                while wires.install_late():  # it imported a forbidden module: again, wired
                    problem = run_case(chk, case, answer.right, answer.wrong)
                violation = wires.violation_of(exercise) if exercise else None
                if violation:  # even if the student's code caught the refusal
                    raise AssertionError(violation.message())
                if problem and "not implemented yet" in problem.split("\n", 1)[0]:
                    raise AssertionError(problem)
                if problem:
                    raise AssertionError(
                        f"{chk.function} is wrong on {case.describe()}:\n  {problem}")
    finally:
        wires.uninstall()
    print(f"✔ {chk.function}: {len(answers)} cases agree with {chk.reference_name}")
