"""The contract every registered check keeps, whatever its problem set.

Every check passes on the reference package (the visible seed and a hidden one), fails
on a stub, and fails on every plausible wrong version of tests/wrong_versions/ with the
hint written for that mistake; its references call no exercise of cnnlab, and its case
inputs can cross a process boundary. A check holds no state of its own between calls
(the autograder makes cases and runs checks in threads), a name that is no check is
refused with a plain message, and a check module that cannot import says why.

What is specific to a problem set (the references against the lecture's numbers and
central differences, messages of one check) is in tests/test_checks_ps*.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab.checks
from cnnlab.checks import REGISTRY, check, exercise_of, get_check
from tests.wrong_versions import HINTS, WRONG_VERSIONS, plant

ROOT = Path(__file__).resolve().parents[1]
NOT_CHECK_MODULES = {"_core", "answers", "notebook", "rules"}
for _info in pkgutil.iter_modules(cnnlab.checks.__path__):
    if _info.name not in NOT_CHECK_MODULES:
        importlib.import_module(f"cnnlab.checks.{_info.name}")
ALL_CHECKS = sorted(REGISTRY)

# Random cases for the second run of a check: fewer where a case is slow.
COUNT = {"lenet.lenet_forward": 8, "lenet.lenet_backward": 8, "train.fit": 1}
WRONG_CASES = [(name, label, make) for name, variants in sorted(WRONG_VERSIONS.items())
               for label, make in variants]
# The modules whose exercises the references must not call.
EXERCISE_MODULES = ("cnnlab.signal", "cnnlab.pooling", "cnnlab.gradcheck", "cnnlab.layers",
                    "cnnlab.layers.conv", "cnnlab.layers.dense", "cnnlab.layers.modern",
                    "cnnlab.lenet", "cnnlab.optim")


def stub(*args, **kwargs):
    raise NotImplementedError


# ------------------------------------------------------------------ the reference passes
@pytest.mark.parametrize("name", ALL_CHECKS)
def test_check_passes_on_the_reference(name, capsys):
    check(name)
    check(name, seed=2024, count=COUNT.get(name, 40))
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize("name", ALL_CHECKS)
def test_check_is_registered_under_its_name_and_has_wrong_versions(name):
    chk = get_check(name)
    assert chk.name == name and chk.module == f"cnnlab.{name.split('.')[0]}"
    assert callable(getattr(importlib.import_module(chk.module), chk.function))
    assert WRONG_VERSIONS.get(name), f"{name} has no wrong versions"


def test_wrong_versions_are_for_registered_checks_and_each_has_its_hint():
    assert set(WRONG_VERSIONS) == set(ALL_CHECKS)
    assert set(HINTS) == {(name, label) for name, label, _ in WRONG_CASES}


# ------------------------------------------------------------------ a stub fails
@pytest.mark.parametrize("name", ALL_CHECKS)
def test_check_fails_on_a_stub(name, monkeypatch):
    chk = get_check(name)
    monkeypatch.setattr(importlib.import_module(chk.module), chk.function, stub)
    exercise = exercise_of(chk.function)
    expected = (rf"`{chk.function}` is not implemented yet \({re.escape(exercise.describe())}\)"
                if exercise.kind == "Exercise" else "not implemented yet")
    with pytest.raises(AssertionError, match=expected):
        check(name)


# ------------------------------------------------------------------ wrong versions fail
@pytest.mark.parametrize("name, label, make", WRONG_CASES,
                         ids=[f"{n}-{label}" for n, label, _ in WRONG_CASES])
def test_wrong_version_fails_with_its_hint(name, label, make, monkeypatch):
    plant(monkeypatch, name, make)
    with pytest.raises(AssertionError, match=HINTS[(name, label)]):
        check(name)  # the visible test already catches it
    with pytest.raises(AssertionError):
        check(name, seed=31337, count=COUNT.get(name, 40))


# ------------------------------------------------------------------ the references
@pytest.mark.parametrize("name", ALL_CHECKS)
def test_references_do_not_use_the_exercises(name, monkeypatch):
    """Every exercise of cnnlab stubbed: the cases and references still compute."""
    for module_name in EXERCISE_MODULES:
        module = importlib.import_module(module_name)
        for function in getattr(module, "__all__", []):
            monkeypatch.setattr(module, function, stub)
    chk = get_check(name)
    cases = chk.cases(seed=3, count=min(COUNT.get(name, 10), 4))
    assert cases
    for case in cases:
        for value in chk.reference(**case.inputs).values():
            assert np.all(np.isfinite(np.asarray(value, dtype=complex)))


def crosses_a_process_boundary(value, array_kinds: str) -> bool:
    """Whether ``value`` travels as a ``.npy`` file (an array) or as JSON, unchanged."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in array_kinds
    if isinstance(value, tuple):
        return all(type(v) is int for v in value)
    return type(value) in (int, float, str)


@pytest.mark.parametrize("name", ALL_CHECKS)
def test_case_inputs_can_cross_a_process_boundary(name):
    chk = get_check(name)
    kinds = "biufc" if name.startswith("signal.") else "biuf"  # cnnlab.signal takes complex
    for case in chk.cases(seed=0) + chk.cases(seed=9, count=COUNT.get(name, 40)):
        for key, value in case.inputs.items():
            assert crosses_a_process_boundary(value, kinds), (
                f"{name}: input {key} of {case.label} is {type(value)}")
            if not isinstance(value, np.ndarray):
                assert json.loads(json.dumps(value)) == (list(value) if isinstance(
                    value, tuple) else value)


# ------------------------------------------------------------------ no per-call state
def test_every_check_module_registers_checks():
    groups = {name.split(".")[0] for name in ALL_CHECKS}
    assert groups == {"signal", "pooling", "layers", "gradcheck", "lenet", "optim", "train"}
    assert len(ALL_CHECKS) >= 49


@pytest.mark.parametrize("name", ALL_CHECKS)
def test_making_cases_and_answers_changes_no_attribute_of_the_check(name, monkeypatch):
    chk = get_check(name)
    written = []
    monkeypatch.setattr(type(chk), "__setattr__",
                        lambda self, attr, value: written.append(attr), raising=False)
    before = dict(vars(chk))
    cases = chk.cases(seed=5, count=4)
    for case in cases[:3]:
        chk.wrong_answers(case, chk.reference(**case.inputs))
    assert written == [] and vars(chk) == before, f"{name} wrote {written}"
    assert cases


def test_the_same_seed_gives_the_same_cases_in_any_order():
    fft = get_check("signal.fftconvolve")
    first = [c.label for c in fft.cases(seed=3, count=6)]
    assert [c.inputs["in1"].ndim for c in fft.cases(seed=3, count=6)][-3:] == [2, 2, 2]
    get_check("signal.correlate2d").cases(seed=3, count=6)
    assert [c.label for c in fft.cases(seed=3, count=6)] == first
    assert get_check("signal.correlate").cases(seed=1, count=3)[-1].inputs["in1"].ndim == 1


# ------------------------------------------------------------------ looking checks up
@pytest.mark.parametrize("name", ["nosuch.thing", "signal.nosuch", "", "../signal.convolve",
                                  "a-b.c"])
def test_a_name_that_is_no_check_is_refused_plainly(name):
    with pytest.raises(ValueError, match=r"name must be a registered check, got "):
        get_check(name)


def test_a_missing_dependency_of_a_check_module_surfaces_as_itself(tmp_path, monkeypatch):
    (tmp_path / "broken_group.py").write_text("import cnnlab_no_such_dependency\n",
                                              encoding="utf-8")
    monkeypatch.setattr(cnnlab.checks, "__path__", [*cnnlab.checks.__path__, str(tmp_path)])
    with pytest.raises(ModuleNotFoundError, match="No module named 'cnnlab_no_such_dependency'"):
        get_check("broken_group.anything")
    with pytest.raises(ValueError, match="name must be a registered check"):
        get_check("missing_group.anything")  # no such module: not a check


# ------------------------------------------------------------------ the group "layers"
LAYER_MODULES = {"03": "cnnlab.checks.conv", "04": "cnnlab.checks.dense",
                 "05": "cnnlab.checks.modern"}


@pytest.mark.parametrize("name", [n for n in ALL_CHECKS if n.startswith("layers.")])
def test_each_layer_check_lives_in_the_module_of_its_problem_set(name):
    chk = get_check(name)
    notebook = exercise_of(chk.function).notebook
    assert type(chk).__module__ == LAYER_MODULES[notebook[:2]], notebook


def test_looking_up_one_layer_check_registers_the_whole_group():
    code = ("from cnnlab.checks import REGISTRY, get_check\n"
            "get_check('layers.linear_forward')\n"
            "print(sorted({type(c).__module__ for c in REGISTRY.values()}), len(REGISTRY))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    layers = [n for n in ALL_CHECKS if n.startswith("layers.")]
    assert done.stdout.split() == [*str(sorted(LAYER_MODULES.values())).split(),
                                   str(len(layers))]
