"""Prove that a student's copy of ``cnnlab`` carries no code that solves an exercise.

Two looks at the released package (e.g. ``release/ps2/cnnlab``):

- **static**: no module imports the grading side (``autograder``) or names a library
  routine that an exercise's rule forbids (``scipy.signal``, ``scipy.special.softmax``,
  ...): such a name in a release is a reference in all but name;
- **dynamic**: every function of the release that is no exercise of its own (helpers,
  the check modules' functions) is called on the hidden cases of each exercise the
  release leaves as a stub; one that gives the reference's answer on all of them is
  reference code that slipped through, whatever it is written with.

The dynamic look runs the release in a child process (its ``cnnlab`` cannot share a
process with the reference's), with the cases and answers computed here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from autograder.course import ASSIGNMENTS, get_assignment
from cnnlab.checks import EXERCISES, REGISTRY, exercise_of
from cnnlab.checks.answers import encode
from cnnlab.checks.rules import module_references

# Given helpers that reproduce an exercise by design, each with the reason.
GIVEN = {
    ("cnnlab.signal.sliding_dot", "layers.conv_grad_kernel"):
        "notebook 01 hands out this sliding-window product as the one vectorization tool; "
        "exercise 6 of notebook 03 is a valid correlation, which students may also take "
        "from their own correlate2d",
}
HIDDEN_SEED = 8191  # not a notebook's seed: cases the release cannot have stored
CASES_PER_CHECK = 4
CHILD = Path(__file__).with_name("_release_probe.py")


def forbidden_names() -> list[str]:
    """Every name some exercise's rule forbids, and the grading side."""
    names = {name for exercise in EXERCISES for name in exercise.rule.forbidden}
    return sorted(names | {"autograder"})


def static_problems(package: Path) -> list[str]:
    """Forbidden names referred to anywhere in the released package ``package``."""
    forbidden = forbidden_names()
    problems = []
    for path in sorted(Path(package).rglob("*.py")):
        rel = path.relative_to(Path(package).parent).as_posix()
        for dotted, line in module_references(path.read_text(encoding="utf-8"), rel):
            hit = next((f for f in forbidden if dotted == f or dotted.startswith(f + ".")), None)
            if hit:
                problems.append(f"{rel}:{line} refers to {dotted} (forbidden: {hit})")
    return sorted(set(problems))


def stubbed_checks(assignment: str | None) -> list[str]:
    """The checks of the exercises that the edition for ``assignment`` leaves as stubs."""
    from autograder.student_edition import visible_checks

    if assignment is None:
        return visible_checks(None)
    start = [a.name for a in ASSIGNMENTS].index(get_assignment(assignment).name)
    return sorted({name for later in ASSIGNMENTS[start:] for name in visible_checks(later.name)})


def _probe_file(names: list[str], path: Path) -> None:
    arrays, checks = {}, []
    for name in names:
        chk = REGISTRY[name]
        cases = chk.cases(seed=HIDDEN_SEED, count=CASES_PER_CHECK)[:CASES_PER_CHECK + 2]
        entries = [{"inputs": encode(case.inputs, arrays, f"{name}/{i}/in/"),
                    "right": encode(chk.reference(**case.inputs), arrays, f"{name}/{i}/out/")}
                   for i, case in enumerate(cases)]
        checks.append({"name": name, "rtol": chk.rtol, "atol": chk.atol, "cases": entries})
    buffer = io.BytesIO()
    np.savez(buffer, __index__=np.array(json.dumps(checks)), **arrays)
    path.write_bytes(buffer.getvalue())


def dynamic_problems(package: Path, assignment: str | None, timeout: float = 600) -> list[str]:
    """Functions of the released ``package`` that reproduce a stubbed exercise."""
    names = stubbed_checks(assignment)
    exercise_functions = sorted({f for e in EXERCISES for f in e.functions})
    with tempfile.TemporaryDirectory(prefix="cnnlab-scan-") as scratch:
        cases = Path(scratch) / "cases.npz"
        _probe_file(names, cases)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
        run = subprocess.run([sys.executable, "-I", str(CHILD),
                              str(Path(package).resolve().parent), str(cases),
                              json.dumps(exercise_functions)],
                             cwd=scratch, env=env, capture_output=True, text=True,
                             timeout=timeout, check=False)
    if run.returncode != 0:
        return [f"the release could not be probed: {run.stderr.strip()[-2000:]}"]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    return [f"{item['function']} reproduces {item['check']} "
            f"({exercise_of(REGISTRY[item['check']].function).short()})" for item in found
            if (item["function"], item["check"]) not in GIVEN]


def scan(package: Path, assignment: str | None) -> list[str]:
    """Every sign of reference code in the released ``package`` (empty: none)."""
    return static_problems(package) + dynamic_problems(package, assignment)
