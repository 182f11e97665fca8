"""The cases and reference answers of every check call of some test cells.

Made once per grading run in the trusted grading process, from the instructor's
:mod:`cnnlab.checks` (the reference package, never a student's): each call becomes a
*task* whose inputs are written for the sandboxed child as an ``.npz`` and JSON.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.course import REFERENCE_PACKAGE
from autograder.testcells import CheckCall, GradedCell
from cnnlab.checks import exercise_of
from cnnlab.checks.answers import encode


@dataclass
class Task:
    id: str
    call: CheckCall
    check: object
    cases: list
    references: list[dict]
    encoded: list
    npz: bytes


class CaseBank:
    """The cases and reference answers of every check call of some test cells."""

    def __init__(self, cells: list[GradedCell]):
        import cnnlab
        from cnnlab.checks import get_check

        if Path(cnnlab.__file__).resolve().parent != REFERENCE_PACKAGE.resolve():
            raise RuntimeError(f"the grading process imported cnnlab from {cnnlab.__file__}, "
                               f"not the reference in {REFERENCE_PACKAGE}")

        self.tasks: dict[str, Task] = {}
        for cell in cells:
            for call in cell.calls:
                if call.key in self.tasks:
                    continue
                chk = get_check(call.name)
                cases = chk.cases(seed=call.seed, count=call.count)
                arrays, encoded = {}, []
                for index, case in enumerate(cases):
                    encoded.append({k: encode(v, arrays, f"c{index}_")
                                    for k, v in case.inputs.items()})
                references = [chk.reference(**case.inputs) for case in cases]
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                if exercise_of(chk.function) is not None:  # find its file now, not in threads
                    exercise_of(chk.function).file  # noqa: B018
                task_id = f"t{len(self.tasks)}"
                self.tasks[call.key] = Task(task_id, call, chk, cases, references, encoded,
                                            buffer.getvalue())

    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks.values()}
