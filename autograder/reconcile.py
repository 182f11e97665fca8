"""Which score a graded cell gets, and why: the grading's policy as one pure function.

Two witnesses speak about a test cell: the **notebook run** (nbgrader autograde in the
jailed kernel; student code can forge what it says, and it runs the visible tests only)
and the **sandbox** (a re-run of every check call, visible and hidden, on the submitted
package). :func:`reconcile` decides, for one cell:

- a test cell with check() calls is scored by the sandbox (``manual_score``, which
  nbgrader lets win); the notebook run's score stays as ``auto_score`` for comparison,
  and a disagreement on the visible tests is reported; no sandbox result means a human
  must look (``needs_manual_grade``);
- a test cell without check() calls has only the notebook run to go by;
- a written answer waits for a human; a notebook run can never award it points; a blank
  one needs no grading; a missing notebook scores 0 everywhere.

It reads nothing and writes nothing: :func:`autograder.grading.record` applies the
verdict to nbgrader's gradebook.
"""

from __future__ import annotations

from dataclasses import dataclass

RUN_STATES_WITH_GRADES = ("graded", "not-run")  # the notebook run produced a gradebook


@dataclass(frozen=True)
class Cell:
    """What reconciling needs to know about a graded cell."""

    grade_id: str
    kind: str          # "test" or "answer"
    points: float
    sandboxed: bool    # a test cell that calls check(): the sandbox re-runs it


@dataclass(frozen=True)
class SandboxOutcome:
    """The sandbox's result for one test cell."""

    passed: bool
    score: float
    visible_passed: bool
    message: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class Verdict:
    auto_score: float | None
    manual_score: float | None
    needs_manual_grade: bool
    notebook_score: float | None      # what the notebook run said (None: it did not run)
    disagreement: str | None = None   # the sandbox contradicts the notebook run
    rule_break: str | None = None     # the score is 0 because of the exercise's rule

    @property
    def score(self) -> float | None:
        """The score nbgrader counts: the manual one if there is one."""
        return self.manual_score if self.manual_score is not None else self.auto_score


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0][:300] if text else ""


def reconcile(cell: Cell, run_state: str, ran: dict | None, outcome: SandboxOutcome | None,
              sandbox_failed: bool, manual_score: float | None) -> Verdict:
    """The verdict for one graded cell.

    Parameters
    ----------
    cell : Cell
    run_state : str
        The notebook run's state: 'graded', 'not-run' (autograded without executing),
        'missing', 'corrupt' or 'failed'.
    ran : dict or None
        The notebook run's grade of the cell (``auto_score``, ``needs_manual_grade``).
    outcome : SandboxOutcome or None
        The sandbox's result for the cell (sandboxed test cells only).
    sandbox_failed : bool
        The sandbox could not grade this submission at all.
    manual_score : float or None
        The manual score the gradebook already holds (a human's, for written answers).
    """
    ran = ran if run_state in RUN_STATES_WITH_GRADES else None
    # a notebook autograded without running says nothing about its tests
    notebook_score = ran["auto_score"] if ran and run_state == "graded" else None
    if cell.kind == "test" and cell.sandboxed:
        return _sandboxed_test(cell, notebook_score, outcome, sandbox_failed)
    if cell.kind == "test":  # no check() call: only the notebook run knows
        if run_state == "missing":
            return Verdict(0.0, None, False, notebook_score)
        return Verdict(notebook_score, None, notebook_score is None, notebook_score)
    if run_state == "missing":  # a written answer
        return Verdict(0.0, manual_score, False, notebook_score)
    auto = ran["auto_score"] if ran else None
    auto = None if auto is None else min(float(auto), 0.0)  # a run cannot award points
    blank = ran is not None and not ran["needs_manual_grade"] and ran["auto_score"] == 0
    return Verdict(auto, manual_score, manual_score is None and not blank, notebook_score)


def _sandboxed_test(cell: Cell, notebook_score: float | None, outcome: SandboxOutcome | None,
                    sandbox_failed: bool) -> Verdict:
    if outcome is None or sandbox_failed:
        return Verdict(notebook_score, None, True, notebook_score)
    rule_break = None
    if (outcome.summary or "").startswith("rule:"):
        rule_break = f"{cell.grade_id}: {_first_line(outcome.message)}"
    disagreement = None
    visible_score = cell.points if outcome.visible_passed else 0.0  # all a notebook runs
    if notebook_score is not None and notebook_score != visible_score:
        why = ("the sandboxed re-run of the package passed" if outcome.passed
               else _first_line(outcome.message))
        disagreement = (f"{cell.grade_id}: {outcome.score:g}/{cell.points:g} (the notebook run "
                        f"said {notebook_score:g}): {why}")
    return Verdict(notebook_score, outcome.score, False, notebook_score, disagreement,
                   rule_break)
