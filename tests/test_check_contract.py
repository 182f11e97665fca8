"""The contract every registered check keeps, whatever its problem set.

A check holds no state of its own between calls (the autograder makes cases and runs
checks in threads), and a name that is no check is refused with a plain message while
a check module that cannot import says why.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import cnnlab.checks
from cnnlab.checks import REGISTRY, get_check

NOT_CHECK_MODULES = {"_core", "answers", "notebook", "rules"}
for _info in pkgutil.iter_modules(cnnlab.checks.__path__):
    if _info.name not in NOT_CHECK_MODULES:
        importlib.import_module(f"cnnlab.checks.{_info.name}")
ALL_CHECKS = sorted(REGISTRY)


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
