"""Helpers for tests that read or run the course notebooks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def grade_cells(path: Path) -> list[dict]:
    """The autograded test cells of a notebook (nbgrader grade=True, solution=False)."""
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells
            if cell.cell_type == "code"
            and cell.metadata.get("nbgrader", {}).get("grade")
            and not cell.metadata["nbgrader"].get("solution")]


def checked_names(source: str) -> list[str]:
    """Names passed to check(...) in a cell, e.g. ['signal.convolve']."""
    names = []
    for node in ast.walk(ast.parse(strip_magics(source))):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check"
                and node.args and isinstance(node.args[0], ast.Constant)):
            names.append(node.args[0].value)
    return list(dict.fromkeys(names))


def strip_magics(source: str) -> str:
    return re.sub(r"^\s*[%!].*$", "", source, flags=re.MULTILINE)
