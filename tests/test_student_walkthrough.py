"""The student's seat: play every assignment from its untouched release.

For each assignment the release is built with the course's own machinery, then each
notebook runs in one kernel, top to bottom, as a student would work through it. At every
exercise's test cell:

(a) the test fails, with a message naming the exercise, its notebook and its file;
(b) that exercise's solution regions, and nothing else, are filled in from the
    reference, as a student would write them: the names the region binds are deleted
    at its end unless the exercise's text names them (so code after the region that
    needs a hidden variable of the reference fails, as it would for a student);
(c) the test passes (``%autoreload`` picks up the file);
(d) every cell up to the next test cell runs without an error and without being skipped.

A second test runs each untouched release notebook with errors allowed: only the test
cells fail (one error each), demonstrations that need an unfinished exercise print one
line and are skipped, and nothing raises a ``NameError``.
"""

from __future__ import annotations

import ast
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.build import build
from autograder.course import ASSIGNMENTS, REFERENCE_PACKAGE, available_assignments
from autograder.regions import definition_span, find_regions, restore
from cnnlab.checks import EXERCISES, exercise_file, exercise_of, get_check
from tests.notebook_tools import checked_names

pytestmark = [pytest.mark.slow, pytest.mark.notebook]

NAMES = [a.name for a in available_assignments()]
SKIP_MARK = "⏭ skipped"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build(NAMES, course=tmp_path_factory.mktemp("course"))


def fresh_copy(course: Path, assignment: str, dest: Path) -> Path:
    shutil.copytree(course / "release" / assignment, dest)
    return dest


def client_for(notebook, folder: Path, monkeypatch, tmp_path) -> NotebookClient:
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # short training, as when graded
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the release's cnnlab, not the reference
    return NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                          resources={"metadata": {"path": str(folder)}})


def is_test_cell(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")


def errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def exercise_for(cell):
    functions = [get_check(name).function for name in checked_names(cell.source)]
    found = {exercise_of(f) for f in functions} - {None}
    assert len(found) == 1, f"test cell {cell.metadata['nbgrader']['grade_id']}: {found}"
    return found.pop()


def exercise_text(notebook, test_index: int, exercise) -> str:
    """The markdown from the exercise's heading down to its test cell."""
    heading = re.compile(rf"^#+ *{exercise.kind} {exercise.number}\b", re.M)
    for start in range(test_index - 1, -1, -1):
        cell = notebook.cells[start]
        if cell.cell_type == "markdown" and heading.search(cell.source):
            return "\n".join(c.source for c in notebook.cells[start:test_index]
                             if c.cell_type == "markdown")
    raise AssertionError(f"no heading '{exercise.kind} {exercise.number}' above its test cell")


def bound_names(statements: list[ast.stmt]) -> set[str]:
    names = set()
    for node in statements:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)) and sub is not node:
                names.add(sub.name)
    return names


def fill(package: Path, function: str, allowed: set[str]) -> None:
    """Give ``function`` its reference regions, deleting the names the text does not name."""
    rel = exercise_file_of(function)
    reference = (REFERENCE_PACKAGE.parent / rel).read_text(encoding="utf-8")
    path = package.parent / rel
    lines = reference.splitlines()
    lo, _ = definition_span(reference, function)
    regions = [r for r in find_regions(reference) if r.begin >= lo
               and r.begin <= definition_span(reference, function)[1]]
    patched = reference.splitlines()
    for region in reversed(regions):
        body = lines[region.begin + 1:region.end]
        tree = ast.parse("\n".join(line[len(region.indent):] for line in body))
        # Names bound before the region (parameters, argument checks) stay.
        before = "\n".join(lines[lo:region.begin]) + "\n" + region.indent + "pass"
        function_node = ast.parse(_dedent_def(before)).body[0]
        known = {a.arg for a in ast.walk(function_node.args) if isinstance(a, ast.arg)}
        known |= bound_names(function_node.body)
        last = tree.body[-1] if tree.body else None
        hidden = sorted(bound_names(tree.body) - known - allowed)
        if hidden and not isinstance(last, (ast.Return, ast.Raise)):
            body = body + [region.indent + f"del {', '.join(hidden)}"]
        patched[region.begin + 1:region.end] = body
    # Put the (patched) solution into the student's file, touching nothing else.
    marked = "\n".join(patched) + "\n"
    student = path.read_text(encoding="utf-8")
    path.write_text(restore(student, marked, function), encoding="utf-8")


def _dedent_def(text: str) -> str:
    first = text.splitlines()[0]
    indent = len(first) - len(first.lstrip())
    return "\n".join(line[indent:] for line in text.splitlines())


def exercise_file_of(function: str) -> str:
    exercise = exercise_of(function)
    from cnnlab.checks._core import module_file

    return module_file(exercise.module, function)


def run(client, cell, index) -> None:
    client.execute_cell(cell, index)


def walk(notebook_path: Path, folder: Path, monkeypatch, tmp_path) -> list[str]:
    """Play one notebook; return the problems found (empty when all is well)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    client = client_for(notebook, folder, monkeypatch, tmp_path)
    package = folder / "cnnlab"
    problems = []
    name = notebook_path.name
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            where = f"{name} cell {index}"
            if not is_test_cell(cell) or cell.metadata["nbgrader"]["grade_id"] == "setup":
                run(client, cell, index)
                if errors(cell) or SKIP_MARK in text_of(cell):
                    problems.append(f"{where}: {_summary(cell)}")
                continue
            exercise = exercise_for(cell)
            todo = [f for f in exercise.functions if "raise NotImplementedError"
                    in _function_text(package, f)]
            if exercise.kind == "Exercise":
                # (a) fails, naming the exercise, its notebook and its file.
                run(client, cell, index)
                message = "\n".join(e.evalue for e in errors(cell))
                wanted = [f"exercise {exercise.number} of {name}", exercise.file]
                if not errors(cell) or not any(f in message for f in exercise.functions) \
                        or not all(w in message for w in wanted):
                    problems.append(f"{where}: the untouched test should fail naming "
                                    f"{exercise.functions}, {wanted}; got {_summary(cell)}")
                assert todo, f"{where}: exercise {exercise.number} has no stub left"
                # (b) fill in only this exercise's regions.
                allowed = set(re.findall(r"\w+", " ".join(
                    re.findall(r"`([^`]*)`", exercise_text(notebook, index, exercise)))))
                for function in todo:
                    fill(package, function, allowed)
            # (c) passes.
            run(client, cell, index)
            if errors(cell) or "✔" not in text_of(cell):
                problems.append(f"{where}: with the solution filled in, the test should "
                                f"pass; got {_summary(cell)}")
    return problems


def _function_text(package: Path, function: str) -> str:
    path = package.parent / exercise_file_of(function)
    text = path.read_text(encoding="utf-8")
    lo, hi = definition_span(text, function)
    return "\n".join(text.splitlines()[lo:hi + 1])


def _summary(cell) -> str:
    errs = errors(cell)
    if errs:
        return "; ".join(f"{e.ename}: {e.evalue}"[:600] for e in errs)
    return text_of(cell)[:600] or "no output"


@pytest.mark.parametrize("assignment", NAMES)
def test_every_exercise_is_reachable_from_the_release(course, assignment, tmp_path,
                                                      monkeypatch):
    folder = fresh_copy(course, assignment, tmp_path / assignment)
    problems, start = [], time.perf_counter()
    for notebook in sorted(folder.glob("*.ipynb")):
        problems += walk(notebook, folder, monkeypatch, tmp_path)
    print(f"{assignment}: walked in {time.perf_counter() - start:.0f} s")
    assert not problems, "\n".join(problems)
    # Every stub of the assignment was reached and filled in.
    spec = next(a for a in ASSIGNMENTS if a.name == assignment)
    for module in spec.modules:
        text = (folder / "cnnlab" / module).read_text(encoding="utf-8")
        assert "raise NotImplementedError" not in text, f"{module} still has a stub"


@pytest.mark.parametrize("assignment", NAMES)
def test_untouched_release_fails_once_per_test_cell_and_nowhere_else(course, assignment,
                                                                     tmp_path, monkeypatch):
    folder = fresh_copy(course, assignment, tmp_path / assignment)
    problems, skips = [], 0
    for path in sorted(folder.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        client_for(notebook, folder, monkeypatch, tmp_path).execute()
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            errs = errors(cell)
            where = f"{path.name} cell {index}"
            if any(e.ename == "NameError" for e in errs):
                problems.append(f"{where}: NameError: {_summary(cell)}")
            elif is_test_cell(cell) and cell.metadata["nbgrader"]["grade_id"] != "setup":
                if len(errs) != 1:
                    problems.append(f"{where}: a test cell of the untouched release should "
                                    f"fail once, got {len(errs)} errors")
                elif "Traceback" in errs[0].evalue:
                    problems.append(f"{where}: the failure is not one clear line")
            elif errs:
                problems.append(f"{where}: {_summary(cell)}")
            skipped = [line for line in text_of(cell).splitlines() if SKIP_MARK in line]
            skips += len(skipped)
            for line in skipped:
                if "exercise" not in line:
                    problems.append(f"{where}: a skip that names no exercise: {line}")
    assert not problems, "\n".join(problems)
    assert skips, "no demonstration needed an unfinished exercise: is the skipping tested?"


# -- fast checks: the table of exercises, the files it names, the stubs' messages ---------

def test_every_exercise_names_a_real_file_that_defines_it():
    for exercise in EXERCISES:
        for function in exercise.functions:
            path = REFERENCE_PACKAGE.parent / exercise_file_of(function)
            assert path.is_file(), exercise
            definition_span(path.read_text(encoding="utf-8"), function)


def test_exercise_file_is_right_for_every_check():
    import importlib

    from cnnlab.checks import REGISTRY

    for group in ("signal", "pooling", "layers", "gradcheck", "lenet", "optim", "train"):
        importlib.import_module(f"cnnlab.checks.{group}")
    assert len(REGISTRY) > 30
    for name, chk in REGISTRY.items():
        rel = exercise_file(name)
        text = (REFERENCE_PACKAGE.parent / rel).read_text(encoding="utf-8")
        definition_span(text, chk.function)  # defined there
        assert rel != "cnnlab/layers.py"
    assert exercise_file("layers.conv2d_forward") == "cnnlab/layers/conv.py"
    assert exercise_file("layers.linear_forward") == "cnnlab/layers/dense.py"


def test_every_solution_region_belongs_to_an_exercise_of_its_assignment():
    for assignment in ASSIGNMENTS:
        for module in assignment.modules:
            text = (REFERENCE_PACKAGE / module).read_text(encoding="utf-8")
            tree = ast.parse(text)
            regions = find_regions(text)
            assert regions, f"{module} is listed as an exercise file but has no exercise"
            for region in regions:
                owner = next(n.name for n in tree.body
                             if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                             and n.lineno - 1 <= region.begin <= n.end_lineno - 1)
                exercise = exercise_of(owner)
                assert exercise is not None, f"{module}: {owner} is in no exercise"
                prefixes = assignment.notebook_prefixes
                assert exercise.notebook[:2] in prefixes, (owner, assignment.name)
                assert exercise.file == f"cnnlab/{module}"


def test_exercise_table_matches_the_notebooks():
    from tests.notebook_tools import NOTEBOOKS

    seen = []
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if is_test_cell(cell) and cell.metadata["nbgrader"]["grade_id"] != "setup":
                exercise = exercise_for(cell)
                assert exercise.notebook == path.name, (exercise, path.name)
                exercise_text(notebook, index, exercise)  # its heading is above
                if exercise not in seen:
                    seen.append(exercise)
    assert seen == list(EXERCISES)


def test_readme_assignment_table_matches_the_exercise_files():
    readme = (REFERENCE_PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    for assignment in ASSIGNMENTS:
        row = next(line for line in readme.splitlines()
                   if line.startswith(f"| `{assignment.name}` |"))
        listed = re.findall(r"`cnnlab/([\w/]+\.py)`", row)
        assert sorted(listed) == sorted(assignment.modules), (row, assignment.modules)


def test_conv_backward_needs_nothing_but_the_documented_cache():
    import numpy as np

    from cnnlab.layers import conv2d_backward, conv2d_forward

    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    out, cache = conv2d_forward(x, w, b, stride=2, padding=1, dilation=(1, 2))
    dout = rng.normal(size=out.shape)
    full = conv2d_backward(dout, cache)
    documented = {k: cache[k] for k in ("x", "w", "stride", "padding", "dilation",
                                        "out_shape")}
    for got, want in zip(conv2d_backward(dout, documented), full):
        np.testing.assert_allclose(got, want)


def test_messages_print_plain_numbers():
    import numpy as np

    from cnnlab.checks._core import Case, describe_difference

    message = describe_difference(np.array([1, 2, 5]), np.array([1, 2, 4]), 1e-7, 1e-9)
    assert "expected 4, got 5" in message and "np." not in message
    label = Case("one", {"n": np.int64(4), "s": (np.int64(2), 3)}).describe()
    assert label == "one (n=4; s=(2, 3))"
