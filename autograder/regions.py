"""Solution regions of one source file, and the text transforms on them.

In the reference, each exercise body sits between a line ``# BEGIN SOLUTION``
and a line ``# END SOLUTION`` (indented like the body). A stub replaces a region by::

    # YOUR CODE HERE
    raise NotImplementedError

at the same indentation, keeping signatures, docstrings and input checks.
:mod:`autograder.student_edition` applies these to a whole package;
:mod:`autograder.submissions` and the self-test use them to write solutions back.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB_MARKER = "# YOUR CODE HERE"


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
