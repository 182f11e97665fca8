"""The notebooks are committed clean, run top to bottom, and their tests can fail."""

from __future__ import annotations

import importlib
import os
import time

import nbformat
import pytest
from nbclient import NotebookClient

from cnnlab.checks import check
from tests.notebook_tools import NOTEBOOKS, checked_names, grade_cells, strip_magics
from tests.wrong_versions import WRONG_VERSIONS

# Seconds each notebook may take to run top to bottom with the reference package
# on a 2-core machine (they take about a third of this).
BUDGET = {"01": 120, "02": 120, "03": 180, "04": 420, "05": 180}


def notebook_id(path):
    return path.stem


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_runs_top_to_bottom_within_budget(path, tmp_path, monkeypatch):
    budget = BUDGET[path.name[:2]]
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))
    client = NotebookClient(notebook, timeout=budget, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    assert seconds < budget, f"{path.name} took {seconds:.0f} s, budget {budget} s"
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_under_grading_the_graded_cells_pass_without_the_skipped_ones(path, tmp_path,
                                                                      monkeypatch):
    """The autograder's notebook runs skip the source's ungraded code cells: the set-up and
    test cells must need none of them (and none of the figure libraries)."""
    from autograder.notebook_runs import NOT_RUN_TAG, sanitize
    from autograder.testcells import demo_cell_ids

    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    sanitize(copy, demo_cell_ids(path.parent, [path.stem])[path.stem])
    notebook = nbformat.read(copy, as_version=4)
    run = [c for c in notebook.cells if c.cell_type == "code"
           and NOT_RUN_TAG not in c.metadata.get("tags", [])]
    assert run and all("nbgrader" in c.metadata for c in run), "only graded cells run"
    assert len(run) > len(grade_cells(path)), "the set-up cell runs too"
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            skip_cells_with_tag=NOT_RUN_TAG,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.get("ename"), o.get("evalue"))
              for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    passed = [c for c in run if any("✔" in o.get("text", "") for o in c.outputs)]
    assert len(passed) == len(grade_cells(path)), "every test cell printed its ✔"


def test_every_notebook_has_graded_tests():
    for path in NOTEBOOKS:
        cells = grade_cells(path)
        assert cells, f"{path.name} has no autograded test cells"
        ids = [c.metadata["nbgrader"]["grade_id"] for c in cells]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicated grade ids {ids}"
        for cell in cells:
            assert checked_names(cell.source), (
                f"{path.name}: test cell {cell.metadata['nbgrader']['grade_id']} calls no check()")


TEST_CELLS = [(path, cell) for path in NOTEBOOKS for cell in grade_cells(path)]


def cell_id(item):
    path, cell = item
    return f"{path.stem[:2]}-{cell.metadata['nbgrader']['grade_id']}"


def run_cell(source: str) -> None:
    exec(compile(strip_magics(source), "<test cell>", "exec"), {"check": check})


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("item", TEST_CELLS, ids=[cell_id(i) for i in TEST_CELLS])
def test_test_cell_passes_on_reference_and_fails_on_stub_and_wrong_versions(item, monkeypatch,
                                                                              capsys):
    path, cell = item
    run_cell(cell.source)  # the reference passes
    for name in checked_names(cell.source):
        group, function = name.split(".")
        module = importlib.import_module(f"cnnlab.{check_module(group)}")
        original = getattr(module, function)
        variants = [("a stub", stub)] + [
            (label, make(original)) for label, make in WRONG_VERSIONS.get(name, [])]
        assert len(variants) > 1 or name not in WRONG_VERSIONS, name
        for label, version in variants:
            monkeypatch.setattr(module, function, version)
            with pytest.raises(AssertionError):
                run_cell(cell.source)
                pytest.fail(f"{cell_id(item)} passes with {label} of {name}")
            monkeypatch.setattr(module, function, original)


def check_module(group: str) -> str:
    """The module of cnnlab that a check group tests ('layers' -> 'layers', ...)."""
    return {"signal": "signal"}.get(group, group)


def test_budget_covers_every_notebook():
    assert {p.name[:2] for p in NOTEBOOKS} <= set(BUDGET)
    assert os.cpu_count()
