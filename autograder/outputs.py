"""Bound the outputs of executed notebooks, and take hidden tests out of them.

A submission can print 100 MB or draw a hundred large figures; the copies the
autograder keeps (``autograded/``) and the feedback it renders must stay small.
nbgrader's ``LimitOutput`` counts lines only (a single 100 MB line passes) and
leaves images alone, so every output is capped here: text by characters and
lines, images by size and number, and each cell and notebook by a total budget.
"""

from __future__ import annotations

import json
import re

import nbformat

from autograder.testcells import HIDDEN_BEGIN, hidden_lines, strip_hidden

MAX_TEXT_CHARS = 20_000      # per text output
MAX_TEXT_LINES = 200
MAX_IMAGE_BYTES = 300_000    # base64 characters per image
MAX_IMAGES_PER_CELL = 4
MAX_CELL_BYTES = 600_000     # all outputs of one cell
MAX_NOTEBOOK_BYTES = 6_000_000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "application/pdf")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cap_text(text: str, max_chars: int = MAX_TEXT_CHARS, max_lines: int = MAX_TEXT_LINES) -> str:
    if len(text) <= max_chars and text.count("\n") <= max_lines:
        return text
    original = len(text)
    lines = text[:max_chars].split("\n")[:max_lines]
    return "\n".join(lines) + (f"\n... output truncated by the autograder ({original:,} "
                               "characters) ...\n")


def _text_of(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _size(output) -> int:
    return len(json.dumps(output))


def cap_outputs(outputs: list) -> list:
    """A bounded copy of one cell's outputs."""
    kept, images, budget = [], 0, MAX_CELL_BYTES
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = cap_text(_text_of(output.get("text", "")))
        elif kind == "error":
            output["evalue"] = cap_text(str(output.get("evalue", "")), 2000, 20)
            tb = [cap_text(_text_of(line), 4000, 40) for line in output.get("traceback", [])]
            output["traceback"] = tb[:20] + (["... traceback truncated ..."] if len(tb) > 20
                                             else [])
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            for mime in list(data):
                value = _text_of(data[mime])
                if mime in IMAGE_TYPES:
                    images += 1
                    if images > MAX_IMAGES_PER_CELL or len(value) > MAX_IMAGE_BYTES:
                        del data[mime]
                        data.setdefault("text/plain", "")
                        data["text/plain"] = (f"[{mime} output of {len(value):,} bytes removed "
                                              "by the autograder: too large or too many]")
                elif mime.startswith("text/") or mime.endswith("json"):
                    if len(value) > MAX_TEXT_CHARS:
                        if mime == "text/plain":
                            data[mime] = cap_text(value)
                        else:
                            del data[mime]
                else:
                    if len(value) > MAX_TEXT_CHARS:
                        del data[mime]
            output["metadata"] = {}
        size = _size(output)
        if size > budget:
            kept.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text="... further output removed by the autograder (too large) ...\n"))
            break
        budget -= size
        kept.append(output)
    return kept


def cap_notebook(notebook) -> None:
    """Cap every cell's outputs in place, then the notebook's total."""
    total = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = cap_outputs(cell.get("outputs", []))
        size = sum(_size(o) for o in cell.outputs)
        if total + size > MAX_NOTEBOOK_BYTES:
            cell.outputs = [nbformat.v4.new_output(
                "stream", name="stderr",
                text="... output removed by the autograder (the notebook's outputs are too "
                     "large) ...\n")]
            size = 0
        total += size
        for key in ("attachments",):
            cell.pop(key, None)


def strip_hidden_tests(notebook) -> None:
    """Remove hidden-test code from test cells, and any trace of it from their outputs."""
    for cell in notebook.cells:
        if HIDDEN_BEGIN not in cell.get("source", ""):
            continue
        secret = hidden_lines(cell.source)
        cell.source = strip_hidden(cell.source)
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                traceback = [_text_of(line) for line in output.get("traceback", [])]
                if any(_mentions(line, secret) for line in traceback):
                    # Raised by a hidden test: say so, with what went wrong but not the
                    # test's code, seed or inputs.
                    problem = _ANSI.sub("", str(output.get("evalue", ""))).split("\n")[1:]
                    problem = [line for line in problem if not _mentions(line, secret)]
                    output["evalue"] = "\n".join(["a hidden test failed", *problem])
                    output["traceback"] = [f"{output.get('ename')}: {output['evalue']}"]
            elif output.get("output_type") == "stream":
                output["text"] = "\n".join(line for line in _text_of(output["text"]).split("\n")
                                           if not _mentions(line, secret))
            for mime, value in list(output.get("data", {}).items()):
                if isinstance(value, (str, list)) and _mentions(_text_of(value), secret):
                    output["data"][mime] = "[removed: it showed a hidden test]"


def _mentions(text: str, secret: list[str]) -> bool:
    plain = _ANSI.sub("", text)
    squeezed = re.sub(r"\s+", "", plain)
    return any(line in plain or re.sub(r"\s+", "", line) in squeezed for line in secret) or \
        "HIDDEN TESTS" in plain
