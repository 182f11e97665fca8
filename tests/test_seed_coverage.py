"""docs/seed_coverage.md points at notebook sections that really exist.

Each row of the seed coverage table names a lecture topic and either the notebook
headings that teach it (`notebook.ipynb` › `## heading`) or, after a `—`, the reason
the course leaves it out. Renaming or removing a section must break this test, not
leave the document pointing at nothing.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "seed_coverage.md"
NOTEBOOKS = ROOT / "notebooks"
DECKS = ("000", "001", "002", "003", "004")

ROW = re.compile(r"^\| (?P<id>\d{3}\.\d{2}) \|(?P<cells>.*)\|$")
# `notebook.ipynb` › `heading`, or ``heading`` when the heading itself has backticks
REFERENCE = re.compile(
    r"`(?P<notebook>[\w.-]+\.ipynb)` › (?P<fence>`+) ?(?P<heading>#.*?) ?(?P=fence)(?!`)")


def table_rows() -> list[tuple[str, str, str, str]]:
    """(id, topic, taught_in, note) of every topic row."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            cells = [cell.strip() for cell in match["cells"].split("|")]
            assert len(cells) == 3, f"row {match['id']} has {len(cells)} cells after the id, not 3"
            rows.append((match["id"], *cells))
    return rows


@cache
def markdown_headings(notebook: Path) -> frozenset[str]:
    """Every heading line of the notebook's markdown cells, outside code fences."""
    headings = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        in_fence = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            elif not in_fence and re.match(r"#{1,6} ", line):
                headings.add(line.strip())
    return frozenset(headings)


ROWS = table_rows()


def test_the_table_covers_every_deck_once_per_topic():
    ids = [row[0] for row in ROWS]
    assert len(ids) >= 80, f"only {len(ids)} rows parsed: has the table's format changed?"
    assert len(set(ids)) == len(ids), "a row id is used twice"
    assert {row_id[:3] for row_id in ids} == set(DECKS)


@pytest.mark.parametrize(("row_id", "topic", "taught_in", "note"), ROWS,
                         ids=[row[0] for row in ROWS])
def test_row_has_a_section_or_a_reason(row_id, topic, taught_in, note):
    assert topic, f"{row_id}: no topic"
    if taught_in == "—":
        assert note.startswith("Left out: ") and len(note.split()) >= 8, (
            f"{row_id}: a topic the course leaves out needs a reason, 'Left out: …'")
    else:
        references = REFERENCE.findall(taught_in)
        assert references, f"{row_id}: 'Taught in' is neither '—' nor `notebook` › `heading`"
        leftover = REFERENCE.sub("", taught_in)
        assert re.fullmatch(r"[\s;]*(\(new\)[\s;]*)*", leftover), (
            f"{row_id}: unparsed text in 'Taught in': {leftover!r}")
        assert not note.startswith("Left out"), f"{row_id}: taught and left out at once"


@pytest.mark.parametrize(("row_id", "taught_in"),
                         [(row[0], row[2]) for row in ROWS if row[2] != "—"],
                         ids=[row[0] for row in ROWS if row[2] != "—"])
def test_referenced_heading_exists(row_id, taught_in):
    for notebook, _fence, heading in REFERENCE.findall(taught_in):
        path = NOTEBOOKS / notebook
        assert path.is_file(), f"{row_id}: notebooks/{notebook} does not exist"
        assert heading in markdown_headings(path), (
            f"{row_id}: {notebook} has no markdown heading {heading!r}")


def test_reference_pattern_reads_headings_with_backticks():
    cell = ("`01_convolution_1d.ipynb` › ``## 3. How much output? `'full'` ``; "
            "`02_x.ipynb` › `## 1. A`")
    assert REFERENCE.findall(cell) == [
        ("01_convolution_1d.ipynb", "``", "## 3. How much output? `'full'`"),
        ("02_x.ipynb", "`", "## 1. A")]


def test_the_two_seed_errors_are_noted():
    text = DOC.read_text(encoding="utf-8")
    assert "65" in text and "63" in text, "the 65-vs-63 misprint is not mentioned"
    assert "scipy.linalg.kron" in text and "numpy.kron" in text


def test_readme_links_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The notebooks", 1)[1].split("\n## ", 1)[0]
    assert "(docs/seed_coverage.md)" in section
