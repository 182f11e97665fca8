"""Bring submissions into the course: ``submitted/<student>/<ps>/``, from a folder or a zip.

Accepted layouts (a zip may wrap any of them in one top folder, and each
student's folder may itself be, or hold, a zip):

* ``<student>/<ps>/...`` (nbgrader's own layout);
* ``<student>/...`` (the assignment's files directly);
* an LMS export with one folder per student, e.g. Moodle's
  ``Ada Lovelace_1234_assignsubmission_file_/``, or one zip per student.

Everything in a submission is the student's, so every step fails closed, per
student:

* archives are extracted with bounds: no absolute paths or ``..``, no links, at
  most :data:`MAX_MEMBERS` members; a member whose name cannot be a file here
  (too long, a file and a folder of the same name) is skipped with a note;
* one archive level only: the class export's student zips, or a zip in a
  student's folder, are unpacked; a zip inside those is kept as a file;
* one budget of unpacked bytes, counted across nesting levels and students:
  :data:`MAX_STUDENT_UNPACKED` per student, :data:`MAX_RUN_UNPACKED` per run;
* each student is unpacked in a scratch folder deleted right after, and any
  error (a corrupt or encrypted zip, unsupported compression, a budget
  exceeded…) becomes that student's note ``"could not ingest: …"`` with an
  empty ``submitted/<student>/<ps>/``, so the student is graded as having
  submitted nothing usable, with the reason, and the class goes on;
* a student's own ``timestamp.txt`` is never collected: the submission time is
  when :func:`ingest` collected it (:func:`collection_time`), recorded outside
  the submission.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from autograder.archives import (
    SKIP_DIRS,
    Budget,
    FolderTree,
    ZipTree,
    display_name,
    safe_extract,
    safe_members,
)

MAX_FILE = 20 << 20        # a submitted file larger than this is skipped
MAX_SUBMISSION = 200 << 20
MAX_FILES = 2000
MAX_CLASS_MEMBERS = 1_000_000
NOT_COLLECTED = {"timestamp.txt"}  # nbgrader reads the submission time from it
COLLECTED_LOG = "collected.jsonl"  # in grading/<ps>/ (not *.json: those are student records)
FAILED = "could not ingest: "


def student_id(name: str) -> str:
    """A safe nbgrader student id from a folder or file name."""
    name = re.sub(r"_assignsubmission.*$", "", name)              # Moodle
    name = re.sub(r"\.zip$", "", name, flags=re.IGNORECASE)
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")
    return clean[:64] or "student"


def _looks_like_assignment(tree, parts: tuple) -> bool:
    return any(name.endswith(".ipynb") and not tree.is_dir(parts + (name,))
               for name in tree.children(parts)) or tree.is_dir(parts + ("cnnlab",))


def _class_root(tree, assignment: str) -> tuple:
    """Unwrap up to three single top folders that are not a student's."""
    root: tuple = ()
    for _ in range(3):
        entries = [e for e in tree.children(root) if e not in SKIP_DIRS]
        if len(entries) != 1:
            break
        top = root + (entries[0],)
        if not tree.is_dir(top) or tree.is_dir(top + (assignment,)) or \
                _looks_like_assignment(tree, top):
            break
        if not all(tree.is_dir(top + (e,)) or e.lower().endswith(".zip")
                   for e in tree.children(top)):
            break
        root = top
    return root


def _assignment_folder(folder: Path, assignment: str, scratch: Path, notes: list,
                       budget: Budget, archives_left: int) -> Path | None:
    """Where in a student's folder the assignment's files are.

    A lone zip is unpacked while ``archives_left`` allows it (one level in all).
    """
    for _ in range(4):
        tree = FolderTree(folder)
        if (folder / assignment).is_dir() and not (folder / assignment).is_symlink():
            return folder / assignment
        if _looks_like_assignment(tree, ()):
            return folder
        entries = [e for e in folder.iterdir() if e.name not in SKIP_DIRS and not e.is_symlink()]
        zips = [e for e in entries if e.is_file() and e.suffix.lower() == ".zip"]
        dirs = [e for e in entries if e.is_dir()]
        if len(zips) == 1 and not dirs:
            if archives_left <= 0:
                notes.append(f"{display_name(zips[0].name)} is an archive inside an archive: "
                             "not unpacked (only one level is)")
                return None
            archives_left -= 1
            unpacked = Path(tempfile.mkdtemp(dir=scratch))
            notes += safe_extract(zips[0], unpacked, budget)
            folder = unpacked
        elif len(dirs) == 1:
            folder = dirs[0]
        else:
            return None
    return None


def copy_limited(source: Path, dest: Path, notes: list,
                 not_collected: frozenset | set = frozenset()) -> None:
    """Copy a submission, skipping links, caches, oversized files and anything past the limits.

    Files named in ``not_collected`` (relative to ``source``) are skipped with a note.
    """
    total, count = 0, 0
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in SKIP_DIRS for part in rel.parts) or path.is_symlink():
            continue
        if path.is_dir():
            continue
        if rel.as_posix() in not_collected:
            notes.append(f"{rel.as_posix()} was not collected: the submission time is when "
                         "it was collected")
            continue
        size = path.stat().st_size
        if size > MAX_FILE or total + size > MAX_SUBMISSION or count >= MAX_FILES:
            notes.append(f"{rel.as_posix()} was not collected ({size:,} bytes; limits: "
                         f"{MAX_FILE >> 20} MB a file, {MAX_SUBMISSION >> 20} MB in all)")
            continue
        total, count = total + size, count + 1
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)


def _ingest_student(tree, parts: tuple, assignment: str, dest: Path, scratch: Path,
                    budget: Budget) -> list[str]:
    """Copy one student's submission to ``dest``; raises on anything unreadable."""
    notes: list[str] = []
    local = tree.materialize(parts, scratch, budget, notes)
    archives_left = 1
    if not local.is_dir():  # the student's entry is a zip
        folder = scratch / "unpacked"
        notes += safe_extract(local, folder, budget)
        archives_left = 0
    else:
        folder = local
    where = _assignment_folder(folder, assignment, scratch, notes, budget, archives_left)
    if where is None:
        notes.append(f"no {assignment} files found in {display_name(parts[-1])}")
        dest.mkdir(parents=True)
    else:
        copy_limited(where, dest, notes, NOT_COLLECTED)
    return notes


def _reset(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)


def _open_class(submissions: Path, stack) -> FolderTree | ZipTree:
    if submissions.is_dir():
        return FolderTree(submissions)
    if not submissions.is_file():
        raise FileNotFoundError(f"{submissions} is neither a folder nor a zip")
    try:
        zf = stack.enter_context(zipfile.ZipFile(submissions))
        members = safe_members(zf, submissions.name, [], MAX_CLASS_MEMBERS)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ValueError(f"{submissions} cannot be read as a zip: {exc}") from None
    return ZipTree(zf, members)


def ingest(submissions: Path, assignment: str, course: Path) -> dict[str, list[str]]:
    """Copy every student's submission to ``course/submitted/<id>/<assignment>``.

    Returns {student id: notes}. A student's earlier submission of the same
    assignment is replaced. A student whose submission could not be read at
    all (corrupt or encrypted zip, over the size budget, …) gets an empty
    folder and a note starting with ``"could not ingest: "`` (:data:`FAILED`).
    The time of collection is recorded for every student (:func:`collection_time`).
    Only an unreadable ``submissions`` itself raises (``FileNotFoundError``,
    ``ValueError``).
    """
    submissions, course = Path(submissions), Path(course)
    found: dict[str, list[str]] = {}
    budget = Budget()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="cnnlab-ingest-") as tmp:
        tree = _open_class(submissions, stack)
        root = _class_root(tree, assignment)
        for name in tree.children(root):
            parts = root + (name,)
            if name in SKIP_DIRS or name.startswith(".") or not (
                    tree.is_dir(parts) or name.lower().endswith(".zip")):
                continue
            sid = student_id(name)
            if sid in found:
                found[sid].append(f"a second submission folder {display_name(name)} was ignored")
                continue
            dest = course / "submitted" / sid / assignment
            found[sid] = _ingest_one(tree, parts, assignment, dest, Path(tmp), budget)
            record_collection(course, assignment, sid)
    return found


def _ingest_one(tree, parts: tuple, assignment: str, dest: Path, tmp: Path,
                budget: Budget) -> list[str]:
    """One student, failing closed: any error is a note and an empty submission folder."""
    scratch = Path(tempfile.mkdtemp(dir=tmp))
    budget.next_student()
    try:
        _reset(dest)
        return _ingest_student(tree, parts, assignment, dest, scratch, budget)
    except Exception as exc:  # whatever the archive holds: this student's problem only
        _reset(dest)
        dest.mkdir(parents=True)
        return [f"{FAILED}{type(exc).__name__}: {str(exc)[:300]}"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _collected_log(course: Path, assignment: str) -> Path:
    return Path(course) / "grading" / assignment / COLLECTED_LOG


def record_collection(course: Path, assignment: str, student: str) -> str:
    """Append the time ``student``'s submission was collected (UTC, ISO 8601); return it."""
    when = datetime.now(UTC).isoformat()
    log = _collected_log(course, assignment)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"student": student, "time": when}) + "\n")
    return when


def collection_time(course: Path, assignment: str, student: str) -> str | None:
    """When :func:`ingest` last collected this student's submission, or None.

    The submission time for the gradebook: it is read from the collection log
    in ``grading/<ps>/``, never from a file inside the submission (which the
    student wrote).
    """
    log = _collected_log(course, assignment)
    if not log.is_file():
        return None
    found = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("student") == student and \
                isinstance(entry.get("time"), str):
            found = entry["time"]
    return found
