"""Make submissions from the release (for the course self-test, the tests and benchmarks).

A submission starts as a copy of ``release/<ps>/``; then functions of the
student's package get the reference solution, or any body you give.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from autograder.course import REFERENCE_PACKAGE, get_assignment
from autograder.regions import STUB_MARKER, remove_markers, replace_stub, restore


def stubbed_functions(text: str) -> list[str]:
    """Module-level functions and classes of a student file that still hold a stub."""
    tree = ast.parse(text)
    lines = text.splitlines()
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
                line.strip() == STUB_MARKER for line in lines[node.lineno - 1:node.end_lineno]):
            names.append(node.name)
    return names


def solve(package: Path, module: str, functions: list[str] | None = None,
          reference: Path = REFERENCE_PACKAGE) -> None:
    """Put the reference solution of ``functions`` (default: all stubs) of ``module`` in place."""
    path = Path(package) / module
    text = path.read_text(encoding="utf-8")
    ref = (Path(reference) / module).read_text(encoding="utf-8")
    for name in functions if functions is not None else stubbed_functions(text):
        text = restore(text, ref, name)
    path.write_text(text, encoding="utf-8")


def patch_function(package: Path, module: str, function: str, body: list[str]) -> None:
    """Give ``function`` of ``module`` the body ``body`` (lines, indented as in the function)."""
    path = Path(package) / module
    path.write_text(replace_stub(path.read_text(encoding="utf-8"), function, body),
                    encoding="utf-8")


def from_release(course: Path, assignment: str, dest: Path, solved: bool = False,
                 reference: Path = REFERENCE_PACKAGE) -> Path:
    """Copy ``release/<assignment>`` to ``dest``; with ``solved``, fill in the reference."""
    release = Path(course) / "release" / assignment
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(release, dest)
    if solved:  # the reference itself, for the assignment's modules
        for module in get_assignment(assignment).modules:
            if (Path(reference) / module).exists():
                text = (Path(reference) / module).read_text(encoding="utf-8")
                (dest / "cnnlab" / module).write_text(remove_markers(text), encoding="utf-8")
    return dest


def submission(course: Path, assignment: str, dest: Path, module: str, solved: bool = True,
               broken: dict[str, list[str]] | None = None,
               reference: Path = REFERENCE_PACKAGE) -> Path:
    """The release in ``dest``, with ``module`` solved but for ``broken`` {function: body}.

    With ``solved=False`` only the ``broken`` functions change: the rest keep their stubs.
    """
    folder = from_release(course, assignment, dest, reference=reference)
    package = folder / "cnnlab"
    broken = broken or {}
    if solved:
        stubs = stubbed_functions((package / module).read_text(encoding="utf-8"))
        solve(package, module, [name for name in stubs if name not in broken], reference)
    for function, body in broken.items():
        patch_function(package, module, function, body)
    return folder
