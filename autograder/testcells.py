"""Read the graded cells of the source notebooks, and the check calls of each test cell."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
_MAGIC = re.compile(r"^\s*[%!].*$", re.MULTILINE)
_MAGIC_NAME = re.compile(r"^(\s*)%%?\w+[ \t]*", re.MULTILINE)
_SHELL = re.compile(r"^\s*!.*$", re.MULTILINE)


@dataclass(frozen=True)
class CheckCall:
    """One ``check(name, seed=..., count=...)`` call of a test cell."""

    name: str
    seed: int = 0
    count: int | None = None
    hidden: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}|{self.seed}|{self.count}"


@dataclass
class GradedCell:
    notebook: str          # notebook name without .ipynb
    grade_id: str
    points: float
    kind: str              # "test" (autograded code) or "manual" (written answer / task)
    source: str
    calls: list[CheckCall] = field(default_factory=list)

    @property
    def sandboxed(self) -> bool:
        """Whether the sandbox decides this cell's score (it is a test cell that calls check)."""
        return self.kind == "test" and bool(self.calls)


def strip_magics(source: str) -> str:
    """Python from IPython source: ``%time check(...)`` keeps its code, ``!cmd`` goes."""
    code = _MAGIC_NAME.sub(r"\1", _SHELL.sub("", source))
    try:
        ast.parse(code)
    except SyntaxError:
        return _MAGIC.sub("", source)
    return code


def hidden_line_numbers(source: str) -> set[int]:
    """Indices of the lines of ``source`` inside hidden-test regions (markers included)."""
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines()):
        if line.strip().startswith(HIDDEN_BEGIN):
            inside = True
        if inside:
            hidden.add(number)
        if line.strip().startswith(HIDDEN_END):
            inside = False
    return hidden


def strip_hidden(source: str) -> str:
    """``source`` without its hidden-test regions."""
    hidden = hidden_line_numbers(source)
    return "\n".join(line for number, line in enumerate(source.splitlines())
                     if number not in hidden)


def hidden_lines(source: str) -> list[str]:
    """The non-blank lines of the hidden-test regions, markers excluded, stripped."""
    lines = source.splitlines()
    return [lines[n].strip() for n in sorted(hidden_line_numbers(source))
            if lines[n].strip() and not lines[n].strip().startswith(("### BEGIN", "### END"))]


def check_calls(source: str) -> list[CheckCall]:
    """The ``check(...)`` calls of a cell, in order, with literal arguments.

    Raises ValueError for a call whose arguments are not literals (the autograder
    could not reproduce it).
    """
    hidden = hidden_line_numbers(source)
    calls = []
    for node in ast.walk(ast.parse(strip_magics(source))):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check"):
            continue
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise ValueError(f"line {node.lineno}: check(...) must have literal arguments, got "
                             f"{ast.unparse(node)}") from None
        names = ("name", "seed", "count")
        bound = dict(zip(names, args)) | kwargs
        if "name" not in bound or set(bound) - set(names):
            raise ValueError(f"line {node.lineno}: cannot read {ast.unparse(node)}")
        calls.append(CheckCall(bound["name"], int(bound.get("seed", 0)),
                               None if bound.get("count") is None else int(bound["count"]),
                               hidden=(node.lineno - 1) in hidden))
    calls.sort(key=lambda c: c.hidden)
    return list(dict.fromkeys(calls))


def graded_cells(path: Path) -> list[GradedCell]:
    """The graded cells of a (source or submitted) notebook."""
    notebook = nbformat.read(str(path), as_version=4)
    return graded_cells_of(notebook, Path(path).stem)


def graded_cells_of(notebook, name: str) -> list[GradedCell]:
    cells = []
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade") or meta.get("task")):
            continue
        test = cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")
        graded = GradedCell(name, meta["grade_id"], float(meta.get("points", 0)),
                            "test" if test else "manual", cell.source)
        if test:
            try:
                graded.calls = check_calls(cell.source)
            except SyntaxError:
                graded.calls = []
        cells.append(graded)
    return cells


def assignment_cells(source_dir: Path, notebooks: list[str]) -> list[GradedCell]:
    cells = []
    for name in notebooks:
        cells.extend(graded_cells(Path(source_dir) / f"{name}.ipynb"))
    return cells


def demo_cell_ids(source_dir: Path, notebooks: list[str]) -> dict[str, frozenset[str]]:
    """{notebook: ids of its ungraded code cells}, read from the source notebooks.

    These cells (figures, demonstrations, timings) are not run under grading: no
    score depends on them, and they are most of a notebook's run time.
    """
    found = {}
    for name in notebooks:
        notebook = nbformat.read(str(Path(source_dir) / f"{name}.ipynb"), as_version=4)
        found[name] = frozenset(cell.get("id") for cell in notebook.cells
                                if cell.cell_type == "code" and "nbgrader" not in cell.metadata
                                and cell.get("id"))
    return found
