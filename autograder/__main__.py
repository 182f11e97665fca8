"""Instructor commands: ``python -m autograder COMMAND``.

The walk-through is in README.md, section "Grading (for instructors)".
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

from autograder.course import DEFAULT_COURSE, REPO, available_assignments, get_assignment


def _assignments(names: list[str]) -> list[str]:
    if names:
        for name in names:
            if not get_assignment(name).available():
                raise SystemExit(f"{name}: its notebooks are not all in notebooks/ yet")
        return names
    found = [a.name for a in available_assignments()]
    if not found:
        raise SystemExit("no assignment has its notebooks in notebooks/ yet")
    return found


def cmd_student_edition(args) -> int:
    from autograder.student_edition import main_student_edition
    return main_student_edition(Path(args.out), args.assignment)


def cmd_build(args) -> int:
    from autograder.build import build
    build(_assignments(args.assignments), Path(args.course))
    return 0


def cmd_release(args) -> int:
    """Zip release/<ps> for an LMS (or use nbgrader's exchange: nbgrader release_assignment)."""
    release = Path(args.course).resolve() / "release" / args.assignment
    if not release.is_dir():
        raise SystemExit(f"{release} does not exist: run `python -m autograder build "
                         f"{args.assignment}` first")
    out = Path(args.zip or Path(args.course) / f"{args.assignment}-release.zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(release.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, Path(args.assignment) / path.relative_to(release))
    print(f"wrote {out}: unzip it to get {args.assignment}/ (notebooks + cnnlab/)")
    return 0


def _options(args):
    from autograder.grading import Options
    return Options(workers=args.workers, cell_timeout=args.cell_timeout,
                   submission_timeout=args.submission_timeout, memory_mb=args.memory_mb,
                   unsafe_no_isolation=args.unsafe_no_isolation,
                   cluster=getattr(args, "cluster", None), resume=getattr(args, "resume", False))


def cmd_collect(args) -> int:
    from autograder.ingest import ingest
    found = ingest(Path(args.submissions), args.assignment, Path(args.course).resolve())
    for student, notes in sorted(found.items()):
        print(f"  {student}" + (f": {'; '.join(notes)}" if notes else ""))
    print(f"collected {len(found)} submissions into "
          f"{Path(args.course) / 'submitted'}/<student>/{args.assignment}")
    return 0


def cmd_grade(args) -> int:
    from autograder.grading import grade
    from autograder.jail import IsolationUnavailable
    try:
        results = grade(args.assignment, Path(args.course),
                        Path(args.submissions) if args.submissions else None,
                        students=args.student or None, options=_options(args))
    except (IsolationUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if results or args.resume else 1


def cmd_feedback(args) -> int:
    from autograder.feedback import generate_feedback
    produced = generate_feedback(Path(args.course), args.assignment, args.student or None)
    files = sum(len(v) for v in produced.values())
    print(f"wrote {files} feedback files for {len(produced)} students in "
          f"{Path(args.course) / 'feedback'}/<student>/{args.assignment}")
    return 0


def cmd_export(args) -> int:
    from autograder.export import export_csv
    out = Path(args.out or Path(args.course) / "grades.csv")
    rows = export_csv(Path(args.course), out, args.assignment or None)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"wrote {out}: {len(rows)} rows ("
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
    return 0


def cmd_report(args) -> int:
    from autograder.export import format_report, report, unisolated
    print(format_report(report(Path(args.course), args.assignment)))
    unsafe = unisolated(Path(args.course), args.assignment)
    if unsafe:
        print(f"\nWARNING: {len(unsafe)} submissions were graded with --unsafe-no-isolation "
              f"(student code ran with the grader's rights): {', '.join(unsafe)}")
    return 0


def cmd_check(args) -> int:
    from autograder.selfcheck import self_check
    ok = self_check(_assignments(args.assignments), workers=args.workers,
                    keep=Path(args.keep) if args.keep else None)
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    def command(name, func, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        if name not in ("student-edition",):
            sub.add_argument("--course", default=str(DEFAULT_COURSE),
                             help="the nbgrader course directory (default: assignments/)")
        return sub

    sub = command("student-edition", cmd_student_edition,
                  "write the student edition of cnnlab (solutions replaced by stubs)")
    sub.add_argument("--assignment", help="psN: earlier assignments' exercises given in full")
    sub.add_argument("--out", required=True, help="folder to write cnnlab/ into")

    sub = command("build", cmd_build, "assemble source/<ps> and generate release/<ps>")
    sub.add_argument("assignments", nargs="*", help="default: every assignment with notebooks")

    sub = command("release", cmd_release, "zip release/<ps> for an LMS")
    sub.add_argument("assignment")
    sub.add_argument("--zip", help="output file (default: <course>/<ps>-release.zip)")

    sub = command("collect", cmd_collect,
                  "copy submissions (folder or LMS zip) to submitted/<student>/<ps>")
    sub.add_argument("assignment")
    sub.add_argument("--submissions", required=True)

    sub = command("grade", cmd_grade, "autograde submissions (notebooks + sandboxed tests)")
    sub.add_argument("assignment")
    sub.add_argument("--submissions", help="a folder <student>/<ps>/... or an LMS zip; "
                     "default: what is already in submitted/")
    sub.add_argument("--student", action="append", help="grade only this student (repeatable)")
    sub.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    sub.add_argument("--cell-timeout", type=float, default=120.0,
                     help="seconds per notebook cell and per sandboxed test (default 120)")
    sub.add_argument("--submission-timeout", type=float, default=900.0,
                     help="seconds per submission (default 900)")
    sub.add_argument("--memory-mb", type=int, default=2048,
                     help="address-space limit of the sandboxed tests (default 2048)")
    sub.add_argument("--unsafe-no-isolation", action="store_true",
                     help="grade even where the sandbox (bubblewrap) cannot be set up: student "
                          "code then runs with your rights; recorded in every record and report")
    sub.add_argument("--cluster", metavar="ADDRESS",
                     help="run each submission's work on the Dask scheduler at ADDRESS "
                          "(tcp://host:8786; needs the [cluster] extra); default: a local pool")
    sub.add_argument("--resume", action="store_true",
                     help="grade only the students of the last grading run of this "
                          "assignment that it did not record (after Ctrl-C or a crash)")

    sub = command("feedback", cmd_feedback, "write feedback HTML (no hidden tests)")
    sub.add_argument("assignment")
    sub.add_argument("--student", action="append")

    sub = command("export", cmd_export, "write grades with a status column to CSV")
    sub.add_argument("--assignment", action="append")
    sub.add_argument("--out", help="default: <course>/grades.csv")

    sub = command("report", cmd_report, "per test: failures and the commonest problem")
    sub.add_argument("assignment")

    sub = command("check", cmd_check, "course self-test: reference, release and stubs")
    sub.add_argument("assignments", nargs="*")
    sub.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    sub.add_argument("--keep", help="keep the throwaway course in this folder")
    return top


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))  # the reference cnnlab, whatever the cwd
    from autograder.nbg import skip_slow_optional_imports
    skip_slow_optional_imports()  # over a second of nbformat's import, for nothing we use
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
