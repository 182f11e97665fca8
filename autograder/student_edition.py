"""Generate the student edition of cnnlab from the reference package.

In the reference, each exercise body sits between a line ``# BEGIN SOLUTION``
and a line ``# END SOLUTION`` (indented like the body). The student edition
replaces every such region by::

    # YOUR CODE HERE
    raise NotImplementedError

at the same indentation, keeping signatures, docstrings and input checks. For
assignment ``psN`` the exercise modules of earlier assignments are given in
full; those of ``psN`` and of later assignments are stubs.

The edition's ``cnnlab/checks`` holds no reference code (``checks_edition.py`` cuts it
out); the answers of the assignment's visible tests travel in its answer book,
``cnnlab/checks/answers.npz`` (:mod:`cnnlab.checks.answers`).
"""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.checks_edition import write_checks_edition
from autograder.course import (
    ASSIGNMENTS,
    REFERENCE_PACKAGE,
    get_assignment,
    module_assignment_index,
)
from cnnlab.checks.answers import BOOK_NAME, write_book

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB_MARKER = "# YOUR CODE HERE"
SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


class RegionError(ValueError):
    """The solution markers of a file are malformed."""


@dataclass(frozen=True)
class Region:
    begin: int  # index of the BEGIN line
    end: int    # index of the END line
    indent: str


def find_regions(text: str, filename: str = "<text>") -> list[Region]:
    """The solution regions of a source file, checked for balance and indentation."""
    regions, start = [], None
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped == BEGIN:
            if start is not None:
                raise RegionError(f"{filename}:{number + 1}: nested {BEGIN}")
            start = number
        elif stripped == END:
            if start is None:
                raise RegionError(f"{filename}:{number + 1}: {END} without {BEGIN}")
            lines = text.splitlines()
            indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
            if not line.startswith(indent) or line[len(indent):] != END:
                raise RegionError(f"{filename}:{number + 1}: {END} is not indented like its "
                                  f"{BEGIN} on line {start + 1}")
            regions.append(Region(start, number, indent))
            start = None
    if start is not None:
        raise RegionError(f"{filename}:{start + 1}: {BEGIN} is never closed")
    return regions


STUB_RAISE = "raise NotImplementedError"


def stub_message(function: str | None, filename: str) -> str:
    """What a stub says when called: the function, its exercise, its notebook and file."""
    from cnnlab.checks import exercise_of

    exercise = exercise_of(function) if function else None
    if exercise is None:
        return f"{function or 'this code'}: write it in cnnlab/{filename}"
    return f"{function}: {exercise.kind.lower()} {exercise.number} of {exercise.notebook}, " \
           f"write it in {exercise.file}"


def stub_lines(indent: str, message: str | None = None) -> list[str]:
    if not indent:  # a module-level region: a bare raise would break the import
        return [STUB_MARKER]
    raise_line = STUB_RAISE if message is None else f"{STUB_RAISE}({message!r})"
    return [indent + STUB_MARKER, indent + raise_line]


def owner(text: str, line: int) -> str | None:
    """The module-level function or class whose lines include index ``line``."""
    for node in ast.parse(text).body:
        if isinstance(node, DEFINITIONS) and node.lineno - 1 <= line <= node.end_lineno - 1:
            return node.name
    return None


def strip_solutions(text: str, filename: str = "<text>", only_lines: set[int] | None = None) -> str:
    """``text`` with its solution regions replaced by stubs.

    ``only_lines``: if given, only regions whose BEGIN line index is in it are stubbed;
    the markers of the other regions are removed, keeping their code.
    """
    lines = text.splitlines()
    out, cursor = [], 0
    for region in find_regions(text, filename):
        out.extend(lines[cursor:region.begin])
        if only_lines is None or region.begin in only_lines:
            message = stub_message(owner(text, region.begin), filename.replace("\\", "/"))
            out.extend(stub_lines(region.indent, message))
        else:
            out.extend(lines[region.begin + 1:region.end])
        cursor = region.end + 1
    out.extend(lines[cursor:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def remove_markers(text: str, filename: str = "<text>") -> str:
    """``text`` with the solution markers removed and the solutions kept."""
    return strip_solutions(text, filename, only_lines=set())


DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def definition_span(text: str, name: str) -> tuple[int, int]:
    """First and last line indices of the module-level function or class ``name``."""
    for node in ast.parse(text).body:
        if isinstance(node, DEFINITIONS) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return start, node.end_lineno - 1
    raise KeyError(f"no function or class {name!r}")


def function_regions(text: str, function: str) -> set[int]:
    """BEGIN-line indices of the regions inside the module-level function (or class)."""
    lo, hi = definition_span(text, function)
    return {r.begin for r in find_regions(text) if lo <= r.begin <= hi}


def stub_functions(text: str, functions: list[str]) -> str:
    """The reference ``text`` with only the named functions' solutions stubbed."""
    chosen = set().union(*(function_regions(text, f) for f in functions)) if functions else set()
    return strip_solutions(text, only_lines=chosen)


def solution_bodies(reference_text: str, function: str) -> list[list[str]]:
    """The lines of each solution region of ``function`` (or a class), markers excluded."""
    lines = reference_text.splitlines()
    chosen = function_regions(reference_text, function)
    return [lines[r.begin + 1:r.end] for r in find_regions(reference_text) if r.begin in chosen]


def solution_body(reference_text: str, function: str) -> list[str]:
    """All solution lines of ``function`` in the reference (for a one-region function)."""
    return [line for body in solution_bodies(reference_text, function) for line in body]


def _stubs(lines: list[str], lo: int, hi: int) -> list[int]:
    found = []
    for index in range(lo, hi + 1):
        if lines[index].strip() == STUB_MARKER:
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            following = lines[index + 1] if index + 1 <= hi else ""
            if following == indent + STUB_RAISE or following.startswith(indent + STUB_RAISE + "("):
                found.append(index)
    return found


def replace_stub(student_text: str, function: str, body: list[str]) -> str:
    """Put ``body`` (lines, already indented) in place of the first stub of ``function``.

    Used to build submissions (in tests and the course self-test) from the release.
    """
    lines = student_text.splitlines()
    stubs = _stubs(lines, *definition_span(student_text, function))
    if not stubs:
        raise KeyError(f"{function!r} has no stub (is it given in full in this edition?)")
    new = lines[:stubs[0]] + body + lines[stubs[0] + 2:]
    return "\n".join(new) + ("\n" if student_text.endswith("\n") else "")


def restore(student_text: str, reference_text: str, name: str) -> str:
    """Every stub of the function or class ``name`` given back its reference solution."""
    bodies = solution_bodies(reference_text, name)
    lines = student_text.splitlines()
    stubs = _stubs(lines, *definition_span(student_text, name))
    if len(stubs) != len(bodies):
        raise KeyError(f"{name!r}: {len(stubs)} stubs in the student file, {len(bodies)} "
                       "solution regions in the reference")
    for index, body in reversed(list(zip(stubs, bodies))):
        lines[index:index + 2] = body
    return "\n".join(lines) + ("\n" if student_text.endswith("\n") else "")


# -- the package ---------------------------------------------------------------------------

def package_files(package: Path = REFERENCE_PACKAGE) -> list[Path]:
    """Every file of the package (sorted, caches skipped), relative to the package."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if any(part in SKIP_NAMES for part in rel.parts) or path.suffix in {".pyc", ".pyo"}:
            continue
        if path.is_file() and not path.is_symlink():
            files.append(rel)
    return files


def stubbed_modules(assignment: str | None, package: Path = REFERENCE_PACKAGE) -> list[str]:
    """Modules (relative posix paths) whose solutions the edition for ``assignment`` strips."""
    limit = 0 if assignment is None else [a.name for a in ASSIGNMENTS].index(
        get_assignment(assignment).name)
    stubbed = []
    for rel in package_files(package):
        if rel.suffix != ".py":
            continue
        text = (package / rel).read_text(encoding="utf-8")
        if not find_regions(text, str(rel)):
            continue
        index = module_assignment_index(rel.as_posix())
        if index is None or index >= limit:
            stubbed.append(rel.as_posix())
    return stubbed


def unassigned_modules(package: Path = REFERENCE_PACKAGE) -> list[str]:
    """Modules with solution regions that no assignment in the table claims."""
    return [m for m in stubbed_modules(None, package) if module_assignment_index(m) is None]


def write_student_edition(out: Path, assignment: str | None = None,
                          package: Path = REFERENCE_PACKAGE) -> Path:
    """Write the student edition of ``package`` to ``out/cnnlab``; return that folder.

    With ``assignment=None`` every exercise is a stub (the self-learner's edition).
    """
    out = Path(out)
    target = out / package.name
    if target.exists():
        shutil.rmtree(target)
    stub = set(stubbed_modules(assignment, package))
    for rel in package_files(package):
        source, dest = package / rel, target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix != ".py":
            shutil.copyfile(source, dest)
            continue
        text = source.read_text(encoding="utf-8")
        if rel.as_posix() in stub:
            text = strip_solutions(text, str(rel))
        elif find_regions(text, str(rel)):
            text = remove_markers(text, str(rel))
        ast.parse(text, filename=str(dest))  # the edition must be valid Python
        dest.write_text(text, encoding="utf-8")
    write_checks_edition(package / "checks", target / "checks")
    write_book(target / "checks" / BOOK_NAME, visible_checks(assignment))
    return target


def visible_checks(assignment: str | None) -> list[str]:
    """The checks whose visible tests the notebooks of ``assignment`` run (None: all)."""
    from cnnlab.checks import REGISTRY, exercise_of

    for path in sorted((REFERENCE_PACKAGE / "checks").glob("[a-z]*.py")):
        importlib.import_module(f"cnnlab.checks.{path.stem}")  # every check registered
    prefixes = None if assignment is None else get_assignment(assignment).notebook_prefixes
    names = []
    for name, chk in REGISTRY.items():
        exercise = exercise_of(chk.function)
        if exercise and (prefixes is None or exercise.notebook.split("_")[0] in prefixes):
            names.append(name)
    return sorted(names)


def find_leaks(edition: Path, assignment: str | None = None,
               package: Path = REFERENCE_PACKAGE) -> list[str]:
    """Solution lines of stubbed modules that appear anywhere in the edition.

    A line counts as a leak if it is non-blank, lies inside a solution region of a
    module the edition stubs, does not occur outside the regions of any reference
    file, and occurs in some file of the edition.
    """
    outside, secret = set(), {}
    for rel in package_files(package):
        if rel.suffix != ".py":
            continue
        text = (package / rel).read_text(encoding="utf-8")
        lines = text.splitlines()
        inside = set()
        for region in find_regions(text, str(rel)):
            inside.update(range(region.begin, region.end + 1))
        for number, line in enumerate(lines):
            if number not in inside:
                outside.add(line.strip())
        if rel.as_posix() in stubbed_modules(assignment, package):
            for number in sorted(inside):
                secret.setdefault(lines[number].strip(), f"{rel}:{number + 1}")
    secret = {line: where for line, where in secret.items() if line and line not in outside}
    leaks = []
    for path in sorted(Path(edition).rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip() in secret:
                leaks.append(f"{path}:{number + 1} repeats {secret[line.strip()]}: {line.strip()}")
    return leaks


def main_student_edition(out: Path, assignment: str | None) -> int:
    for module in unassigned_modules():
        print(f"warning: cnnlab/{module} has solutions but no assignment in "
              "autograder/course.py claims it; it is stubbed in every edition", file=sys.stderr)
    target = write_student_edition(out, assignment)
    leaks = find_leaks(target, assignment)
    if leaks:
        print("solution lines leaked into the student edition:\n" + "\n".join(leaks),
              file=sys.stderr)
        return 1
    stubbed = stubbed_modules(assignment)
    print(f"wrote {target} ({'all exercises' if assignment is None else assignment}: "
          f"stubs in {', '.join(stubbed) or 'no module'})")
    return 0
