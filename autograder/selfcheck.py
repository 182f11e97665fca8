"""The course self-test: ``python -m autograder check``.

In a throwaway course directory, for each assignment:

1. ``nbgrader validate`` passes on the source notebooks next to the reference
   package, and ``nbgrader validate --invert`` finds no passing test in the
   untouched release;
2. grading a class of two through the whole pipeline gives the reference full
   marks on every autograded test (in the sandbox and in the notebook run) and
   the untouched release zero on every one;
3. every test fails in the sandbox when the function it checks is replaced by a
   stub (and the rest of the package is the reference);
4. the reference obeys every exercise's rule: its modules use no forbidden name
   (the syntax-tree check; step 2 ran it under the sandbox's tripwires, where a
   forbidden call would have cost it its full marks);
5. the release carries no reference code: no module of its ``cnnlab`` names a
   forbidden library routine or the grading side, and none of its functions gives
   the reference's answers to the hidden cases of an exercise it leaves as a stub
   (:mod:`autograder.release_scan`).
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder.build import build, notebook_names
from autograder.casebank import CaseBank
from autograder.course import REFERENCE_PACKAGE, get_assignment
from autograder.grading import Options, grade
from autograder.nbg import base_env, run_nbgrader
from autograder.regions import function_regions, stub_functions
from autograder.release_scan import scan
from autograder.sandbox import Limits, run_sandbox
from autograder.student_edition import SKIP_NAMES
from autograder.submissions import from_release
from autograder.testcells import assignment_cells
from cnnlab.checks import EXERCISES
from cnnlab.checks.rules import check_source


class Report:
    def __init__(self):
        self.failures: list[str] = []

    def expect(self, ok: bool, what: str) -> bool:
        print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
        if not ok:
            self.failures.append(what)
        return ok


def validate(course: Path, assignment: str, scratch: Path, report: Report) -> None:
    names = notebook_names(course, assignment)
    folder = scratch / "validate" / assignment
    folder.mkdir(parents=True)
    for name in names:
        shutil.copyfile(course / "source" / assignment / f"{name}.ipynb", folder / f"{name}.ipynb")
    shutil.copytree(REFERENCE_PACKAGE, folder / "cnnlab",
                    ignore=shutil.ignore_patterns(*SKIP_NAMES, "*.pyc"))
    env = base_env({"NBGRADER_EXECUTION": "validate"})
    for name in names:
        run = run_nbgrader(["validate", f"{name}.ipynb"], folder, 900,
                           scratch / f"validate-{assignment}-{name}.log", env=env)
        report.expect("Success! Your notebook passes all the tests." in run.output,
                      f"{assignment}/{name}: nbgrader validate passes on the source with the "
                      "reference package")
        release = course / "release" / assignment
        run = run_nbgrader(["validate", "--invert", f"{name}.ipynb"], release, 900,
                           scratch / f"invert-{assignment}-{name}.log", env=env)
        report.expect("Success! The notebook does not pass any tests." in run.output,
                      f"{assignment}/{name}: nbgrader validate --invert finds no passing test "
                      "in the untouched release")


def grade_reference_and_release(course: Path, assignment: str, scratch: Path, workers: int,
                                report: Report) -> None:
    submissions = scratch / "submissions" / assignment
    from_release(course, assignment, submissions / "reference" / assignment, solved=True)
    from_release(course, assignment, submissions / "release" / assignment)
    results = grade(assignment, course, submissions,
                    options=Options(workers=workers, quiet=True))
    for student, full in (("reference", True), ("release", False)):
        result = results[student]
        report.expect(not result.reasons,
                      f"{assignment}: the {student} is graded without failure "
                      f"({'; '.join(result.reasons) or result.status})")
        wrong = []
        for grade_id, entry in result.cells.items():
            if entry.kind != "test":
                continue
            want = entry.points if full else 0.0
            sandbox = entry.sandbox
            if entry.score != want or entry.notebook_score != want:
                wrong.append(f"{grade_id}: sandbox {sandbox.score if sandbox else None}, "
                             f"notebook {entry.notebook_score}, want {want:g}"
                             + (f" ({((sandbox.message if sandbox else '') or '')[:200]})"
                                if full else ""))
        report.expect(not wrong, f"{assignment}: the {student} scores "
                      f"{'full marks' if full else 'zero'} on every autograded test"
                      + ("" if not wrong else ":\n        " + "\n        ".join(wrong)))


def defining_file(chk) -> str:
    """The reference file (relative to cnnlab/) that defines the function a check tests."""
    from cnnlab.checks import exercise_file

    return exercise_file(chk.name).split("/", 1)[1]


def stubs_fail(course: Path, assignment: str, scratch: Path, workers: int,
               report: Report) -> None:
    from cnnlab.checks import get_check

    source = course / "source" / assignment
    cells = [c for c in assignment_cells(source, notebook_names(course, assignment))
             if c.kind == "test"]
    for cell in cells:
        if not cell.sandboxed:
            report.expect(False, f"{assignment}/{cell.grade_id} calls check(): the sandbox can "
                          "score it")
    jobs = []
    for cell in [c for c in cells if c.sandboxed]:
        bank = CaseBank([cell])  # once per cell: its stub jobs share the same cases
        for name in dict.fromkeys(call.name for call in cell.calls):
            chk = get_check(name)
            text = (REFERENCE_PACKAGE / defining_file(chk)).read_text(encoding="utf-8")
            if not function_regions(text, chk.function):
                print(f"  skip  {assignment}/{cell.grade_id}: {chk.function} has no solution "
                      "region of its own (it is tested through the exercises it uses)")
                continue
            jobs.append((cell, chk, bank))

    def run(job):
        cell, chk, bank = job
        module = defining_file(chk)
        package = scratch / "stubs" / f"{cell.grade_id}-{chk.function}" / "cnnlab"
        shutil.copytree(REFERENCE_PACKAGE, package,
                        ignore=shutil.ignore_patterns(*SKIP_NAMES, "*.pyc"))
        path = package / module
        path.write_text(stub_functions(path.read_text(encoding="utf-8"), [chk.function]),
                        encoding="utf-8")
        outcome = run_sandbox(package, source / "cnnlab", bank, [cell],
                              Limits(cell_timeout=120, submission_timeout=300), course=course)
        return cell, chk, outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for cell, chk, outcome in pool.map(run, jobs):
            result = outcome.cells[cell.grade_id]
            report.expect(not outcome.error and not result.passed,
                          f"{assignment}/{cell.grade_id} fails when {chk.module}.{chk.function} "
                          "is a stub" + (f" ({outcome.error})" if outcome.error else ""))


def reference_obeys_rules(assignment: str, report: Report) -> None:
    """Step 4: no exercise of the assignment uses a name its rule forbids, in the reference."""
    modules = {f"cnnlab/{m}" for m in get_assignment(assignment).modules}
    for exercise in EXERCISES:
        if exercise.file in modules:
            violation = check_source(exercise, package_root=REFERENCE_PACKAGE.parent)
            report.expect(violation is None, f"{assignment}: the reference of "
                          f"{exercise.short()} obeys its rule"
                          + (f" ({violation.message()})" if violation else ""))


def release_has_no_reference_code(course: Path, assignment: str, report: Report) -> None:
    """Step 5: the scan of the released package finds no reference code."""
    problems = scan(course / "release" / assignment / "cnnlab", assignment)
    report.expect(not problems, f"{assignment}: the release carries no reference code"
                  + "".join(f"\n        {p}" for p in problems))


def self_check(assignments: list[str], workers: int = 2, keep: Path | None = None) -> bool:
    scratch = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cnnlab-check-"))
    scratch.mkdir(parents=True, exist_ok=True)
    report = Report()
    try:
        course = build(assignments, scratch / "course")
        for assignment in assignments:
            print(f"{assignment}:", flush=True)
            validate(course, assignment, scratch, report)
            grade_reference_and_release(course, assignment, scratch, workers, report)
            stubs_fail(course, assignment, scratch, workers, report)
            reference_obeys_rules(assignment, report)
            release_has_no_reference_code(course, assignment, report)
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if report.failures:
        print(f"course self-test FAILED ({len(report.failures)} problem(s))")
        return False
    print("course self-test passed")
    return True
