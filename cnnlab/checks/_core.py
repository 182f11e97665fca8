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

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REGISTRY: dict[str, Check] = {}


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
                parts.append(f"{name}={value!r}")
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
        try:
            path = Path(inspect.getfile(inspect.unwrap(self.target())))
        except (TypeError, AttributeError):
            return self.module.replace(".", "/") + ".py"
        parts = path.parts
        if "cnnlab" not in parts:  # e.g. replaced by a function defined elsewhere
            return self.module.replace(".", "/") + ".py"
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("cnnlab"):])

    def cases(self, seed: int = 0, count: int | None = None) -> list[Case]:
        count = self.random_count if count is None else count
        rng = np.random.default_rng(seed)
        return self.examples() + self.random_cases(rng, count)

    def compare(self, case: Case, got: dict, expected: dict) -> str | None:
        """Return None if ``got`` matches ``expected``, else a message in plain words."""
        for key, want in expected.items():
            if key not in got:
                return f"no output named {key!r} was returned"
            problem = describe_difference(np.asarray(got[key]), want, self.rtol, self.atol,
                                          self.check_dtype)
            if problem:
                label = "" if key == "out" else f"{key}: "
                hint = self.diagnose(case, got)
                return label + problem + (f"\n  hint: {hint}" if hint else "")
        return None

    def diagnose(self, case: Case, got: dict) -> str | None:
        """The hint of the first plausible mistake that explains ``got``.

        A mistake that gives the right answer on this case (a flip of a
        symmetric kernel, say) explains nothing and is skipped.
        """
        right = self.reference(**case.inputs)
        for hint, wrong in self.mistakes(**case.inputs):
            if all(agree(v, right.get(k), self.rtol, self.atol) for k, v in wrong.items()):
                continue
            if all(agree(got.get(k), v, self.rtol, self.atol) for k, v in wrong.items()):
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
            f"{index}: expected {want[where]!r}, got {got[where]!r}")


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry under its ``name``."""
    REGISTRY[cls.name] = cls()
    return cls


def get_check(name: str) -> Check:
    """Return the registered check ``name`` (importing its module on first use)."""
    if name not in REGISTRY:
        group = name.split(".")[0]
        try:
            importlib.import_module(f"cnnlab.checks.{group}")
        except ModuleNotFoundError:
            pass
    if name not in REGISTRY:
        raise ValueError(f"name must be a registered check, got {name!r}")
    return REGISTRY[name]


def run_case(chk: Check, case: Case) -> str | None:
    """Run one case in this process; return None on success, else the failure message."""
    try:
        got = chk.call(**case.inputs)
    except NotImplementedError:
        return (f"{chk.function} is not implemented yet: replace the "
                f"`raise NotImplementedError` in {chk.source_file()}")
    except Exception as exc:  # report any crash of student code as a failure
        return f"{chk.function} raised {type(exc).__name__}: {exc}"
    return chk.compare(case, got, chk.reference(**case.inputs))


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
    chk = get_check(name)
    cases = chk.cases(seed=seed, count=count)
    for case in cases:
        problem = run_case(chk, case)
        if problem:
            raise AssertionError(f"{chk.function} is wrong on {case.describe()}:\n  {problem}")
    print(f"✔ {chk.function}: {len(cases)} cases agree with {chk.reference_name}")
