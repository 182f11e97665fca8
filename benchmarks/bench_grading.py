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

    .venv/bin/python benchmarks/bench_grading.py --one-core [--core 1] [--repeats 3]

grades one student's ps1, ps2 and ps3 (the reference solutions) on one core
(this process and its children pinned with ``os.sched_setaffinity``): with our
grader (``workers=1``), per assignment with its parts (sandboxed tests, notebook
runs), and with plain ``nbgrader autograde`` of the same notebooks in a copy of
the course, and prints the ratio ours/plain. The medians are of calls in one process
after its first (its imports are paid once); then each assignment is graded once more
by the instructor's command, a fresh process each, start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder import jail  # noqa: E402
from autograder.build import build  # noqa: E402
from autograder.grading import Options, grade  # noqa: E402
from autograder.nbg import base_env  # noqa: E402
from autograder.submissions import from_release  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps1")
    parser.add_argument("--class-size", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cluster-workers", type=int, default=2,
                        help="workers of the local Dask cluster (0: no cluster run)")
    parser.add_argument("--one-core", action="store_true",
                        help="ps1+ps2+ps3 of one student on one core, ours and plain nbgrader")
    parser.add_argument("--core", type=int, default=0, help="the core of --one-core")
    args = parser.parse_args()
    if args.one_core:
        one_core(args)
        return

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
        def single(unsafe: bool) -> tuple[float, float, float]:
            """Grade student00 alone ``--repeats`` times, with or without the sandbox."""
            if unsafe:
                os.environ["CNNLAB_NO_JAIL"] = "1"
            jail.problem.cache_clear()
            options = Options(workers=1, quiet=True, unsafe_no_isolation=unsafe)
            try:
                median, results = timed(args.repeats, lambda: grade(
                    args.assignment, course, submissions, students=["student00"],
                    options=options)["student00"])
            finally:
                os.environ.pop("CNNLAB_NO_JAIL", None)
                jail.problem.cache_clear()
            return (median, *parts(results))

        singles, sandbox, notebooks = single(unsafe=False)
        print(f"one submission (reference), alone: {singles:.1f} s median "
              f"of {args.repeats} (sandboxed tests {sandbox:.1f} s, notebook runs "
              f"{notebooks:.1f} s, the rest is setup and bookkeeping)")
        bare, bare_sandbox, bare_notebooks = single(unsafe=True)
        print(f"the same with --unsafe-no-isolation: {bare:.1f} s "
              f"(tests {bare_sandbox:.1f} s, notebook runs {bare_notebooks:.1f} s): the "
              f"isolation costs {singles - bare:+.1f} s "
              "per submission")

        options = Options(workers=args.workers, quiet=True)
        median, runs = timed(args.repeats, lambda: grade(args.assignment, course, None,
                                                         options=options))
        statuses = {r.status for results in runs for r in results.values()}
        print(f"class of {args.class_size} ({args.class_size - args.class_size // 2} reference, "
              f"{args.class_size // 2} release), {args.workers} workers: {median:.1f} s median "
              f"of {args.repeats} ({median / args.class_size:.1f} s per submission, "
              f"{60 * args.class_size / median:.1f} submissions/min; "
              f"statuses {sorted(statuses)})")
        figures = {"single_s": round(singles, 2),
                   "single_sandbox_s": round(sandbox, 2),
                   "single_notebooks_s": round(notebooks, 2),
                   "single_unsafe_s": round(bare, 2),
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
        options = Options(quiet=True, cluster=cluster.address)
        median, runs = timed(args.repeats, lambda: grade(args.assignment, course, None,
                                                         options=options))
        statuses = {r.status for results in runs for r in results.values()}
        print(f"the same class on a local Dask cluster of {args.cluster_workers} workers: "
              f"{median:.1f} s median of {args.repeats} "
              f"({60 * args.class_size / median:.1f} submissions/min; statuses "
              f"{sorted(statuses)}{'' if statuses == local_statuses else ' DIFFER'})")
        files = submission_files(course / "submitted" / "student00" / args.assignment)
        size = sum(len(v) for v in files.values())
        with cluster.client() as client:
            client.submit(_nothing, files, pure=False).result()  # connections warmed up
            overhead, _ = timed(30, lambda: client.submit(_nothing, files,
                                                          pure=False).result())
        print(f"per-task overhead of Dask: {1000 * overhead:.0f} ms median of 30 round trips "
              f"of a task carrying one submission's files ({size / 1024:.0f} KiB) and doing "
              f"nothing ({100 * overhead * args.class_size / median:.1f}% of the class time)")
    return {"cluster_workers": args.cluster_workers, "cluster_class_s": round(median, 2),
            "cluster_per_min": round(60 * args.class_size / median, 2),
            "dask_task_overhead_ms": round(1000 * overhead, 1),
            "submission_kib": round(size / 1024)}


def timed(repeats: int, run: Callable[[], object]) -> tuple[float, list]:
    """Median wall seconds of ``repeats`` calls of ``run``, and what each call returned."""
    times, returned = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        returned.append(run())
        times.append(time.perf_counter() - started)
    return statistics.median(times), returned


def parts(results: list) -> tuple[float, float]:
    """Median seconds of the sandboxed tests and of the notebook runs of graded results."""
    return (statistics.median(r.sandbox["seconds"] for r in results),
            statistics.median(sum(n["seconds"] for n in r.notebooks.values())
                              for r in results))


ONE_CORE_ASSIGNMENTS = ("ps1", "ps2", "ps3")


def one_core(args) -> None:
    """One student's ps1+ps2+ps3 on one core: our grader against plain ``nbgrader autograde``."""
    os.sched_setaffinity(0, {args.core})  # inherited by every process started from here
    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    try:
        started = time.perf_counter()
        course = build(list(ONE_CORE_ASSIGNMENTS), root / "course")
        print(f"build {'+'.join(ONE_CORE_ASSIGNMENTS)}: {time.perf_counter() - started:.1f} s "
              f"(isolation: {jail.require()}; pinned to core {args.core})")
        plain = root / "plain"
        shutil.copytree(course, plain)  # before our grader ingests anything into it
        submissions = root / "submissions"
        for name in ONE_CORE_ASSIGNMENTS:
            from_release(course, name, submissions / "student00" / name, solved=True)
            shutil.copytree(submissions / "student00" / name,
                            plain / "submitted" / "student00" / name)
        options = Options(workers=1, quiet=True)
        figures: dict = {"core": args.core, "repeats": args.repeats}
        ours_total = plain_total = 0.0
        for name in ONE_CORE_ASSIGNMENTS:
            ours, results = timed(args.repeats, lambda name=name: grade(
                name, course, submissions, students=["student00"], options=options)["student00"])
            sandbox, notebooks = parts(results)
            status = {f"{r.status} {r.score:g}/{r.max_score:g}" for r in results}
            theirs, codes = timed(args.repeats, lambda name=name: _plain_autograde(plain, name))
            ours_total += ours
            plain_total += theirs
            print(f"{name}: ours {ours:.1f} s (sandboxed tests {sandbox:.1f} s, notebook runs "
                  f"{notebooks:.1f} s; {', '.join(sorted(status))}), plain nbgrader autograde "
                  f"{theirs:.1f} s (exit {sorted(set(codes))}): ours/plain {ours / theirs:.2f}")
            figures[name] = {"ours_s": round(ours, 2), "sandbox_s": round(sandbox, 2),
                             "notebooks_s": round(notebooks, 2), "plain_s": round(theirs, 2)}
        print(f"total: ours {ours_total:.1f} s, plain nbgrader autograde {plain_total:.1f} s: "
              f"ours/plain {ours_total / plain_total:.2f} (medians of {args.repeats})")
        figures.update(ours_total_s=round(ours_total, 2), plain_total_s=round(plain_total, 2),
                       ratio=round(ours_total / plain_total, 3))
        # The medians above are of calls in this process after the first: its imports are
        # paid once. An instructor's command pays them each time.
        commands = {name: _command_seconds(course, name) for name in ONE_CORE_ASSIGNMENTS}
        cold = sum(commands.values())
        print(f"one `python -m autograder grade psN --student student00` per assignment (a "
              f"fresh process each, start-up included): {cold:.1f} s ("
              + ", ".join(f"{n} {t:.1f} s" for n, t in commands.items())
              + f"); against plain nbgrader: {cold / plain_total:.2f}")
        figures.update(commands_s={n: round(t, 2) for n, t in commands.items()},
                       commands_total_s=round(cold, 2))
        print(json.dumps(figures))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _command_seconds(course: Path, assignment: str) -> float:
    """Wall seconds of the instructor's command grading student00's ``assignment`` again."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, "--course",
                    str(course), "--student", "student00", "--workers", "1"],
                   cwd=Path(__file__).resolve().parents[1], check=True, capture_output=True)
    return time.perf_counter() - started


def _plain_autograde(course: Path, assignment: str) -> int:
    """``nbgrader autograde`` as an instructor would run it; its exit code."""
    nbgrader = Path(sys.executable).with_name("nbgrader")
    log = course / f"autograde-{assignment}.log"
    with open(log, "wb") as handle:
        return subprocess.run([str(nbgrader), "autograde", assignment, "--student=student00",
                               "--force"], cwd=course, env=base_env(), stdout=handle,
                              stderr=subprocess.STDOUT, check=False).returncode


def _nothing(files: dict) -> int:
    return len(files)


if __name__ == "__main__":
    main()
