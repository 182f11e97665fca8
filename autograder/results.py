"""A student's grading result: one typed record, written as JSON by grading and read by
feedback, export, report and the self-test.

The file is ``grading/<ps>/<student>.json`` in the course directory; its keys are the
fields below, so an instructor can read it with any JSON tool.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class SandboxResult:
    """The sandbox's verdict on one test cell (every check call, visible and hidden)."""

    passed: bool = False
    score: float = 0.0
    cases: int = 0
    failed_cases: int = 0
    message: str | None = None
    summary: str | None = None
    visible_passed: bool = False


@dataclass
class CellResult:
    """One graded cell: what the notebook run said, what the sandbox said, what counts."""

    notebook: str = ""
    kind: str = "test"                 # "test" or "answer"
    points: float = 0.0
    notebook_score: float | None = None
    sandbox: SandboxResult | None = None
    score: float | None = None


@dataclass
class StudentResult:
    student: str = ""
    assignment: str = ""
    graded_at: str = ""
    status: str = "failed-to-grade"    # scored, manual-pending, missing, failed-to-grade
    reasons: list[str] = field(default_factory=list)   # why it could not be graded
    notes: list[str] = field(default_factory=list)     # what the instructor should know
    notebooks: dict[str, dict] = field(default_factory=dict)  # each notebook run's state
    cells: dict[str, CellResult] = field(default_factory=dict)
    sandbox: dict | None = None        # the sandbox's report, as it wrote it
    score: float = 0.0
    max_score: float = 0.0
    pending: int = 0                   # cells still to grade by hand
    empty: bool = False                # nothing was submitted
    isolation: str = ""
    seconds: float = 0.0
    traceback: str | None = None
    run: str = ""                      # the grading run that wrote it (for --resume)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> StudentResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cells"] = {grade_id: _cell(entry)
                           for grade_id, entry in (data.get("cells") or {}).items()}
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write the record whole or not at all: it is what marks a student as graded."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        os.replace(partial, path)


def _cell(entry: dict) -> CellResult:
    known = {f.name for f in fields(CellResult)}
    values = {k: v for k, v in entry.items() if k in known}
    sandbox = values.get("sandbox")
    if sandbox is not None:
        names = {f.name for f in fields(SandboxResult)}
        values["sandbox"] = SandboxResult(**{k: v for k, v in sandbox.items() if k in names})
    return CellResult(**values)


def results_dir(course: Path, assignment: str) -> Path:
    return Path(course) / "grading" / assignment


def load_results(course: Path, assignment: str) -> dict[str, StudentResult]:
    """Every student's record of ``assignment`` (unreadable files are skipped)."""
    results = {}
    for path in sorted(results_dir(course, assignment).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            results[path.stem] = StudentResult.from_json(
                {"student": path.stem, "assignment": assignment, **data})
        except (OSError, ValueError, TypeError):
            continue
    return results
