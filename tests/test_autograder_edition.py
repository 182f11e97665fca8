"""The student edition: stubs everywhere they belong, no solution leaks, valid and importable."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course import (
    ASSIGNMENTS,
    REFERENCE_ONLY,
    REFERENCE_PACKAGE,
    REPO,
    module_assignment_index,
)
from autograder.regions import (
    BEGIN,
    END,
    RegionError,
    find_regions,
    remove_markers,
    replace_stub,
    restore,
    solution_body,
    strip_solutions,
)
from autograder.student_edition import (
    package_files,
    stubbed_modules,
    unassigned_modules,
    visible_checks,
    write_student_edition,
)

EDITIONS = [None] + [a.name for a in ASSIGNMENTS]


def reference_modules():
    """{module: text} for every reference module with solution regions."""
    found = {}
    for rel in package_files(REFERENCE_PACKAGE):
        if rel.suffix == ".py":
            text = (REFERENCE_PACKAGE / rel).read_text(encoding="utf-8")
            if BEGIN in text:
                found[rel.as_posix()] = text
    return found


def region_lines(text: str) -> tuple[set[str], set[str]]:
    """(stripped lines inside regions, stripped lines outside), computed independently."""
    inside, outside, within = set(), set(), False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            within = True
        (inside if within else outside).add(stripped)
        if stripped == END:
            within = False
    return inside, outside


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    root = tmp_path_factory.mktemp("editions")
    return {name: write_student_edition(root / str(name), name) for name in EDITIONS}


@pytest.mark.parametrize("edition", EDITIONS, ids=str)
def test_no_solution_line_leaks(editions, edition):
    stubbed = set(stubbed_modules(edition))
    assert stubbed, "every edition stubs something"
    for module, text in reference_modules().items():
        student = (editions[edition] / module).read_text(encoding="utf-8")
        student_lines = {line.strip() for line in student.splitlines()}
        assert BEGIN not in student_lines and END not in student_lines, module
        if module not in stubbed:
            continue
        inside, outside = region_lines(text)
        leaked = sorted(line for line in inside - outside if line and line in student_lines)
        assert not leaked, f"{edition}: {module} repeats solution lines {leaked}"


@pytest.mark.parametrize("edition", EDITIONS, ids=str)
def test_edition_is_valid_python_that_imports_and_raises_not_implemented(editions, edition):
    folder = editions[edition]
    for path in folder.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():  # syntax errors only: a stub leaves unused imports, and code after
        # it may use names the solution defined (unreachable, but pyflakes flags them)
        done = subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--select",
                               "E9,F63,F7", str(folder)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
    modules = [m[:-3].replace("/", ".") for m in stubbed_modules(edition)]
    code = f"""
import importlib, pkgutil, cnnlab, cnnlab.checks
from cnnlab.checks import REGISTRY, run_case
from cnnlab.checks.answers import expectations, has_book
assert cnnlab.__file__.startswith({str(folder)!r}), cnnlab.__file__
assert has_book()
stubbed = {modules!r}
for name in stubbed:
    importlib.import_module("cnnlab." + name)
for info in pkgutil.iter_modules(cnnlab.checks.__path__):
    importlib.import_module("cnnlab.checks." + info.name)
for name in {visible_checks(edition)!r}:
    chk = REGISTRY[name]
    if chk.module[len("cnnlab."):] in stubbed:
        answer = expectations(chk)[0]
        problem = run_case(chk, answer.case, answer.right, answer.wrong)
        assert problem and "not implemented yet" in problem, (chk.name, problem)
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_earlier_assignments_are_given_in_full_later_ones_are_stubs(editions):
    order = [a.name for a in ASSIGNMENTS]
    for edition in order:
        for module, text in reference_modules().items():
            index = module_assignment_index(module)
            student = (editions[edition] / module).read_text(encoding="utf-8")
            if index is not None and index < order.index(edition):
                assert student == remove_markers(text), (edition, module)
            else:
                assert student == strip_solutions(text), (edition, module)
    for module, text in reference_modules().items():  # the self-learner's edition
        assert (editions[None] / module).read_text(encoding="utf-8") == strip_solutions(text)


def test_non_exercise_files_are_copied_verbatim(editions):
    """All but the exercise modules and the checks (whose reference code is cut out:
    tests/test_release_scan.py)."""
    for rel in package_files(REFERENCE_PACKAGE):
        data = (REFERENCE_PACKAGE / rel).read_bytes()
        if BEGIN.encode() not in data and rel.parts[0] != "checks":
            assert (editions["ps1"] / rel).read_bytes() == data, rel


@pytest.mark.parametrize("edition", EDITIONS, ids=str)
def test_reference_only_modules_stay_out_of_every_edition(editions, edition):
    """lenet_fast.py holds the answers of ps2 and ps3 without regions to stub: no
    edition has it, and the edition's cnnlab (and its CLI) works without it."""
    assert "lenet_fast.py" in REFERENCE_ONLY
    for module in REFERENCE_ONLY:
        assert (REFERENCE_PACKAGE / module).is_file(), module
        assert not (editions[edition] / module).exists(), (edition, module)
    assert not list(editions[edition].rglob("lenet_fast*")), edition
    names = {p.name for p in editions[edition].rglob("*.py")}
    assert "lenet.py" in names and "train.py" in names  # the rest is there
    for path in editions[edition].rglob("*.py"):  # and nothing imports the missing module
        assert "lenet_fast" not in path.read_text(encoding="utf-8") or \
            path.name == "__main__.py", path


def test_generation_is_deterministic(tmp_path):
    first = write_student_edition(tmp_path / "a", "ps2")
    second = write_student_edition(tmp_path / "b", "ps2")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_every_module_with_solutions_belongs_to_an_assignment():
    assert unassigned_modules() == []


def test_reference_solutions_can_be_put_back_into_the_stubs():
    for module, text in reference_modules().items():
        tree = ast.parse(text)
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                 and any(n.lineno <= r.begin + 1 <= n.end_lineno for r in find_regions(text))]
        student = strip_solutions(text)
        for name in names:
            student = restore(student, text, name)
        assert student == remove_markers(text), module
    text = reference_modules()["signal.py"]
    one = replace_stub(strip_solutions(text), "pad2d", solution_body(text, "pad2d"))
    assert "np.pad(x, widths" in one and one.count("raise NotImplementedError") == 9


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n", "nested"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n# END SOLUTION\n", "indented"),
])
def test_malformed_markers_are_refused(source, problem):
    with pytest.raises(RegionError, match=problem):
        find_regions(source)


def test_stub_keeps_indentation_and_module_level_regions_still_import():
    text = ("def f(x):\n    '''Doc.'''\n    if x:\n        # BEGIN SOLUTION\n        return 1\n"
            "        # END SOLUTION\n    return 0\n# BEGIN SOLUTION\nHELPER = 1\n# END SOLUTION\n")
    stubbed = strip_solutions(text)
    assert "        # YOUR CODE HERE\n        raise NotImplementedError(" in stubbed
    namespace = {}
    exec(compile(stubbed, "<stub>", "exec"), namespace)
    assert namespace["f"](0) == 0 and "HELPER" not in namespace
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


def test_cli_writes_the_edition(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "autograder", "student-edition",
                           "--assignment", "ps1", "--out", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "raise NotImplementedError" in (tmp_path / "cnnlab" / "signal.py").read_text()
    shutil.rmtree(tmp_path / "cnnlab")
