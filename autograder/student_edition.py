"""Generate the student edition of cnnlab from the reference package.

The student edition replaces every solution region of an exercise module by a
stub (:mod:`autograder.regions`), keeping signatures, docstrings and input checks. For
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
from pathlib import Path

from autograder.checks_edition import write_checks_edition
from autograder.course import (
    ASSIGNMENTS,
    REFERENCE_ONLY,
    REFERENCE_PACKAGE,
    get_assignment,
    module_assignment_index,
)
from autograder.regions import find_regions, remove_markers, strip_solutions
from cnnlab.checks.answers import BOOK_NAME, write_book

SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def package_files(package: Path = REFERENCE_PACKAGE) -> list[Path]:
    """Every file of the package (sorted, caches and REFERENCE_ONLY modules skipped),
    relative to the package."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if any(part in SKIP_NAMES for part in rel.parts) or path.suffix in {".pyc", ".pyo"}:
            continue
        if rel.as_posix() in REFERENCE_ONLY:  # the reference's own, never the students'
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
