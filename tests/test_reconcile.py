"""Which score wins: the grading policy, table by table (no notebook, no gradebook)."""

from __future__ import annotations

import pytest

from autograder.reconcile import Cell, SandboxOutcome, reconcile

TEST = Cell("test_convolve", "test", 2.0, sandboxed=True)
PLAIN_TEST = Cell("test_plot", "test", 1.0, sandboxed=False)
ANSWER = Cell("answer_flip", "answer", 3.0, sandboxed=False)

PASSED = SandboxOutcome(passed=True, score=2.0, visible_passed=True)
HIDDEN_FAILED = SandboxOutcome(passed=False, score=0.0, visible_passed=True,
                               message="convolve is wrong on random case 7", summary="values")
FAILED = SandboxOutcome(passed=False, score=0.0, visible_passed=False,
                        message="convolve is wrong on the lecture example\n  details",
                        summary="values")
RULE = SandboxOutcome(passed=False, score=0.0, visible_passed=False,
                      message="convolve calls numpy.convolve: implement it yourself",
                      summary="rule: calls numpy.convolve")


def ran(score, needs_manual=False):
    return {"auto_score": score, "needs_manual_grade": needs_manual}


# cell, run state, notebook's grade, sandbox outcome, sandbox failed, manual score in the
# gradebook -> auto, manual, needs manual grade, notebook score, counted score
TABLE = {
    "both pass": (TEST, "graded", ran(2.0), PASSED, False, None, 2.0, 2.0, False, 2.0, 2.0),
    "hidden case fails: the sandbox wins, no disagreement (the run saw the visible only)":
        (TEST, "graded", ran(2.0), HIDDEN_FAILED, False, None, 2.0, 0.0, False, 2.0, 0.0),
    "the run says pass, the sandbox's visible cases fail: the sandbox wins":
        (TEST, "graded", ran(2.0), FAILED, False, None, 2.0, 0.0, False, 2.0, 0.0),
    "the run says fail, the sandbox passes: the sandbox wins":
        (TEST, "graded", ran(0.0), PASSED, False, None, 0.0, 2.0, False, 0.0, 2.0),
    "the sandbox failed to grade: a human must look":
        (TEST, "graded", ran(2.0), PASSED, True, None, 2.0, None, True, 2.0, 2.0),
    "no sandbox result for the cell: a human must look":
        (TEST, "graded", ran(2.0), None, False, None, 2.0, None, True, 2.0, 2.0),
    "the notebook was autograded without running: its test scores say nothing":
        (TEST, "not-run", ran(0.0), PASSED, False, None, None, 2.0, False, None, 2.0),
    "the notebook run failed: the sandbox still scores":
        (TEST, "failed", None, PASSED, False, None, None, 2.0, False, None, 2.0),
    "a test without check() calls: the notebook run decides":
        (PLAIN_TEST, "graded", ran(1.0), None, False, None, 1.0, None, False, 1.0, 1.0),
    "a test without check() calls in a missing notebook: 0":
        (PLAIN_TEST, "missing", None, None, False, None, 0.0, None, False, None, 0.0),
    "a test without check() calls, notebook not run: a human must look":
        (PLAIN_TEST, "not-run", ran(0.0), None, False, None, None, None, True, None, None),
    "a written answer waits for a human":
        (ANSWER, "graded", ran(None, needs_manual=True), None, False, None, None, None, True,
         None, None),
    "a notebook run cannot award points to a written answer":
        (ANSWER, "graded", ran(3.0), None, False, None, 0.0, None, True, 3.0, 0.0),
    "a blank written answer needs no grading":
        (ANSWER, "graded", ran(0.0), None, False, None, 0.0, None, False, 0.0, 0.0),
    "a written answer a human graded keeps the human's score":
        (ANSWER, "graded", ran(None, needs_manual=True), None, False, 2.5, None, 2.5, False,
         None, 2.5),
    "a written answer in a missing notebook: 0":
        (ANSWER, "missing", None, None, False, None, 0.0, None, False, None, 0.0),
}


@pytest.mark.parametrize("case", TABLE, ids=list(TABLE))
def test_reconcile(case):
    cell, state, grade, outcome, failed, manual, auto, score, needs, notebook, counted = \
        TABLE[case]
    verdict = reconcile(cell, state, grade, outcome, failed, manual)
    assert (verdict.auto_score, verdict.manual_score, verdict.needs_manual_grade,
            verdict.notebook_score, verdict.score) == (auto, score, needs, notebook, counted)


def test_a_disagreement_on_the_visible_tests_is_reported_with_the_sandbox_message():
    verdict = reconcile(TEST, "graded", ran(2.0), FAILED, False, None)
    assert verdict.disagreement == ("test_convolve: 0/2 (the notebook run said 2): convolve is "
                                    "wrong on the lecture example")
    assert verdict.rule_break is None
    verdict = reconcile(TEST, "graded", ran(0.0), PASSED, False, None)
    assert verdict.disagreement == ("test_convolve: 2/2 (the notebook run said 0): the "
                                    "sandboxed re-run of the package passed")


@pytest.mark.parametrize("outcome", [PASSED, HIDDEN_FAILED])
def test_no_disagreement_when_the_visible_cases_agree(outcome):
    assert reconcile(TEST, "graded", ran(2.0), outcome, False, None).disagreement is None


def test_a_rule_break_is_named():
    verdict = reconcile(TEST, "graded", ran(0.0), RULE, False, None)
    assert verdict.rule_break == ("test_convolve: convolve calls numpy.convolve: implement it "
                                  "yourself")
    assert verdict.manual_score == 0.0 and verdict.disagreement is None


# ------------------------------------------------------------------ the typed record
def test_a_student_record_survives_json_and_ignores_unknown_keys(tmp_path):
    import json

    from autograder.results import CellResult, SandboxResult, StudentResult, load_results

    record = StudentResult("ada", "ps1", status="scored", score=2.0, max_score=3.0,
                           cells={"test_convolve": CellResult(
                               "01", "test", 2.0, 2.0,
                               SandboxResult(True, 2.0, 63, 0, None, None, True), 2.0)})
    record.save(tmp_path / "grading" / "ps1" / "ada.json")
    data = json.loads((tmp_path / "grading" / "ps1" / "ada.json").read_text())
    assert data["cells"]["test_convolve"]["sandbox"]["cases"] == 63  # plain JSON on disk
    data["from_a_newer_version"] = True
    (tmp_path / "grading" / "ps1" / "bob.json").write_text(json.dumps({**data, "student": "bob"}))
    (tmp_path / "grading" / "ps1" / "broken.json").write_text("{")
    loaded = load_results(tmp_path, "ps1")
    assert sorted(loaded) == ["ada", "bob"]
    assert loaded["ada"] == record
    assert loaded["bob"].cells["test_convolve"].sandbox.visible_passed is True


def test_a_partial_record_still_loads(tmp_path):
    """An older or hand-written record: missing fields take their defaults."""
    import json

    from autograder.results import load_results

    folder = tmp_path / "grading" / "ps1"
    folder.mkdir(parents=True)
    (folder / "eve.json").write_text(json.dumps(
        {"cells": {"test_pad2d": {"sandbox": {"passed": False, "message": "boom"}}}}))
    eve = load_results(tmp_path, "ps1")["eve"]
    assert (eve.student, eve.assignment, eve.status) == ("eve", "ps1", "failed-to-grade")
    assert eve.cells["test_pad2d"].sandbox.message == "boom"
    assert eve.cells["test_pad2d"].kind == "test"
