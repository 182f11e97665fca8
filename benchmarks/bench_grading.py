"""How long grading takes: one full submission, a simulated class, and the class on Dask.

    .venv/bin/python benchmarks/bench_grading.py [--assignment ps1] [--class-size 20]
                                                 [--workers 2] [--repeats 3]
                                                 [--cluster-workers 2]

Builds the assignment in a throwaway course, makes submissions from the release
(half with the reference solutions, half untouched), and grades them with
``python -m autograder grade`` semantics (the sandbox for scoring and for the
notebooks' kernels), and once more with ``--unsafe-no-isolation`` to show what
the isolation costs,
workers pinned to one BLAS/OpenMP thread each. Prints the median wall time of
one submission graded alone (with its parts: sandbox and notebook runs), and of
the class, with the per-submission throughput. Then the same class through
``--cluster`` on a local Dask cluster (a ``dask scheduler`` and
``--cluster-workers`` ``dask worker`` processes of one thread each; 0 skips it),
in submissions per minute beside the local pool's, and the per-task overhead of
going through Dask: the round trip of a task that carries one submission's files
and does nothing. The machine may be shared: the figures are medians of
``--repeats`` runs, compared within one run.
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
    parser.add_argument("--cluster-workers", type=int, default=2,
                        help="workers of the local Dask cluster (0: no cluster run)")
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
              f"of {args.repeats} ({median / args.class_size:.1f} s per submission, "
              f"{60 * args.class_size / median:.1f} submissions/min; "
              f"statuses {sorted(statuses)})")
        figures = {"single_s": round(statistics.median(singles), 2),
                   "single_sandbox_s": round(sandbox, 2),
                   "single_notebooks_s": round(notebooks, 2),
                   "single_unsafe_s": round(statistics.median(bare), 2),
                   "class_size": args.class_size, "workers": args.workers,
                   "class_s": round(median, 2),
                   "local_per_min": round(60 * args.class_size / median, 2)}
        if args.cluster_workers > 0:
            figures.update(on_cluster(course, root, args, statuses))
        print(json.dumps(figures))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def on_cluster(course: Path, root: Path, args, local_statuses: set) -> dict:
    """The class through ``--cluster`` on a local Dask cluster, and Dask's per-task cost."""
    from autograder.cluster import ProcessCluster, submission_files

    with ProcessCluster(root / "dask-logs", workers=args.cluster_workers) as cluster:
        times = []
        options = Options(quiet=True, cluster=cluster.address)
        for _ in range(args.repeats):
            started = time.perf_counter()
            results = grade(args.assignment, course, None, options=options)
            times.append(time.perf_counter() - started)
            statuses = {r.status for r in results.values()}
        median = statistics.median(times)
        print(f"the same class on a local Dask cluster of {args.cluster_workers} workers: "
              f"{median:.1f} s median of {args.repeats} "
              f"({60 * args.class_size / median:.1f} submissions/min; statuses "
              f"{sorted(statuses)}{'' if statuses == local_statuses else ' DIFFER'})")
        files = submission_files(course / "submitted" / "student00" / args.assignment)
        size = sum(len(v) for v in files.values())
        with cluster.client() as client:
            client.submit(_nothing, files, pure=False).result()  # connections warmed up
            trips = []
            for _ in range(30):
                started = time.perf_counter()
                client.submit(_nothing, files, pure=False).result()
                trips.append(time.perf_counter() - started)
        overhead = statistics.median(trips)
        print(f"per-task overhead of Dask: {1000 * overhead:.0f} ms median of 30 round trips "
              f"of a task carrying one submission's files ({size / 1024:.0f} KiB) and doing "
              f"nothing ({100 * overhead * args.class_size / median:.1f}% of the class time)")
    return {"cluster_workers": args.cluster_workers, "cluster_class_s": round(median, 2),
            "cluster_per_min": round(60 * args.class_size / median, 2),
            "dask_task_overhead_ms": round(1000 * overhead, 1),
            "submission_kib": round(size / 1024)}


def _nothing(files: dict) -> int:
    return len(files)


if __name__ == "__main__":
    main()
