"""How long grading takes: one full submission, and a simulated class of 20.

    .venv/bin/python benchmarks/bench_grading.py [--assignment ps1] [--class-size 20]
                                                 [--workers 2] [--repeats 3]

Builds the assignment in a throwaway course, makes submissions from the release
(half with the reference solutions, half untouched), and grades them with
``python -m autograder grade`` semantics (the sandbox for scoring and for the
notebooks' kernels), and once more with ``--unsafe-no-isolation`` to show what
the isolation costs,
workers pinned to one BLAS/OpenMP thread each. Prints the median wall time of
one submission graded alone (with its parts: sandbox and notebook runs), and of
the class, with the per-submission throughput. The machine may be shared: the
figures are medians of ``--repeats`` runs, compared within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder import jail  # noqa: E402
from autograder.build import build  # noqa: E402
from autograder.grading import Options, grade  # noqa: E402
from autograder.submissions import from_release  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps1")
    parser.add_argument("--class-size", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    try:
        started = time.perf_counter()
        course = build([args.assignment], root / "course")
        print(f"build {args.assignment}: {time.perf_counter() - started:.1f} s "
              f"(isolation: {jail.require()}; {os.cpu_count()} CPUs)")
        submissions = root / "submissions"
        for index in range(args.class_size):
            name = f"student{index:02d}"
            from_release(course, args.assignment, submissions / name / args.assignment,
                         solved=index % 2 == 0)
        def single(unsafe: bool) -> tuple[list[float], float, float]:
            """Grade student00 alone ``--repeats`` times, with or without the sandbox."""
            if unsafe:
                os.environ["CNNLAB_NO_JAIL"] = "1"
            jail.problem.cache_clear()
            options = Options(workers=1, quiet=True, unsafe_no_isolation=unsafe)
            times, parts = [], []
            try:
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    results = grade(args.assignment, course, submissions,
                                    students=["student00"], options=options)
                    times.append(time.perf_counter() - started)
                    result = results["student00"]
                    parts.append((result.sandbox["seconds"],
                                  sum(r["seconds"] for r in result.notebooks.values())))
            finally:
                os.environ.pop("CNNLAB_NO_JAIL", None)
                jail.problem.cache_clear()
            return (times, statistics.median(p[0] for p in parts),
                    statistics.median(p[1] for p in parts))

        singles, sandbox, notebooks = single(unsafe=False)
        print(f"one submission (reference), alone: {statistics.median(singles):.1f} s median "
              f"of {args.repeats} (sandboxed tests {sandbox:.1f} s, notebook runs "
              f"{notebooks:.1f} s, the rest is setup and bookkeeping)")
        bare, bare_sandbox, bare_notebooks = single(unsafe=True)
        print(f"the same with --unsafe-no-isolation: {statistics.median(bare):.1f} s "
              f"(tests {bare_sandbox:.1f} s, notebook runs {bare_notebooks:.1f} s): the "
              f"isolation costs {statistics.median(singles) - statistics.median(bare):+.1f} s "
              "per submission")

        classes = []
        options = Options(workers=args.workers, quiet=True)
        for _ in range(args.repeats):
            started = time.perf_counter()
            results = grade(args.assignment, course, None, options=options)
            classes.append(time.perf_counter() - started)
            statuses = {r.status for r in results.values()}
        median = statistics.median(classes)
        print(f"class of {args.class_size} ({args.class_size - args.class_size // 2} reference, "
              f"{args.class_size // 2} release), {args.workers} workers: {median:.1f} s median "
              f"of {args.repeats} ({median / args.class_size:.1f} s per submission; "
              f"statuses {sorted(statuses)})")
        print(json.dumps({"single_s": round(statistics.median(singles), 2),
                          "single_sandbox_s": round(sandbox, 2),
                          "single_notebooks_s": round(notebooks, 2),
                          "single_unsafe_s": round(statistics.median(bare), 2),
                          "class_size": args.class_size, "workers": args.workers,
                          "class_s": round(median, 2)}))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
