"""Bring submissions into the course: ``submitted/<student>/<ps>/``, from a folder or a zip.

Accepted layouts (a zip may wrap any of them in one top folder, and each
student's folder may itself be, or hold, a zip):

* ``<student>/<ps>/...`` (nbgrader's own layout);
* ``<student>/...`` (the assignment's files directly);
* an LMS export with one folder per student, e.g. Moodle's
  ``Ada Lovelace_1234_assignsubmission_file_/``, or one zip per student.

Archives are extracted with bounds: no absolute paths or ``..``, no links, at
most :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED` bytes.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

MAX_FILE = 20 << 20        # a submitted file larger than this is skipped
MAX_SUBMISSION = 200 << 20
MAX_FILES = 2000
MAX_MEMBERS = 50_000
MAX_UNPACKED = 2 << 30
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git", ".hg", ".svn", "__MACOSX",
             ".venv", "venv", "node_modules"}


def student_id(name: str) -> str:
    """A safe nbgrader student id from a folder or file name."""
    name = re.sub(r"_assignsubmission.*$", "", name)              # Moodle
    name = re.sub(r"\.zip$", "", name, flags=re.IGNORECASE)
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")
    return clean[:64] or "student"


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract a zip with bounds; return notes about what was skipped."""
    notes, total = [], 0
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"{archive.name} has {len(members)} members (limit {MAX_MEMBERS})")
        for info in members:
            parts = Path(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or not parts or \
                    re.match(r"^[A-Za-z]:", info.filename):
                notes.append(f"skipped unsafe path {info.filename!r} in {archive.name}")
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                notes.append(f"skipped link {info.filename!r} in {archive.name}")
                continue
            if info.is_dir():
                (dest / Path(*parts)).mkdir(parents=True, exist_ok=True)
                continue
            total += info.file_size
            if total > MAX_UNPACKED:
                raise ValueError(f"{archive.name} unpacks to more than {MAX_UNPACKED >> 20} MB")
            target = dest / Path(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as sink:
                copied = 0
                while chunk := source.read(1 << 20):
                    copied += len(chunk)
                    if copied > info.file_size:  # a lying header
                        raise ValueError(f"{info.filename} in {archive.name} is larger than "
                                         "its header says")
                    sink.write(chunk)
    return notes


def _looks_like_assignment(folder: Path) -> bool:
    return any(folder.glob("*.ipynb")) or (folder / "cnnlab").is_dir()


def _assignment_folder(folder: Path, assignment: str, scratch: Path, notes: list) -> Path | None:
    """Where in a student's folder the assignment's files are."""
    for _ in range(4):
        if (folder / assignment).is_dir():
            return folder / assignment
        if _looks_like_assignment(folder):
            return folder
        entries = [e for e in folder.iterdir() if e.name not in SKIP_DIRS]
        zips = [e for e in entries if e.is_file() and e.suffix.lower() == ".zip"]
        dirs = [e for e in entries if e.is_dir()]
        if len(zips) == 1 and not dirs:
            unpacked = Path(tempfile.mkdtemp(dir=scratch))
            notes += safe_extract(zips[0], unpacked)
            folder = unpacked
        elif len(dirs) == 1:
            folder = dirs[0]
        else:
            return None
    return None


def copy_limited(source: Path, dest: Path, notes: list) -> None:
    """Copy a submission, skipping links, caches, oversized files and anything past the limits."""
    total, count = 0, 0
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in SKIP_DIRS for part in rel.parts) or path.is_symlink():
            continue
        if path.is_dir():
            continue
        size = path.stat().st_size
        if size > MAX_FILE or total + size > MAX_SUBMISSION or count >= MAX_FILES:
            notes.append(f"{rel.as_posix()} was not collected ({size:,} bytes; limits: "
                         f"{MAX_FILE >> 20} MB a file, {MAX_SUBMISSION >> 20} MB in all)")
            continue
        total, count = total + size, count + 1
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)


def ingest(submissions: Path, assignment: str, course: Path) -> dict[str, list[str]]:
    """Copy every student's submission to ``course/submitted/<id>/<assignment>``.

    Returns {student id: notes}. A student's earlier submission of the same
    assignment is replaced.
    """
    submissions = Path(submissions)
    found: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-ingest-") as scratch_name:
        scratch = Path(scratch_name)
        if submissions.is_file():
            root = scratch / "unpacked"
            root.mkdir()
            found["_archive"] = safe_extract(submissions, root)
        elif submissions.is_dir():
            root = submissions
        else:
            raise FileNotFoundError(f"{submissions} is neither a folder nor a zip")
        for _ in range(3):  # unwrap a single top folder that is not a student's
            entries = [e for e in root.iterdir() if e.name not in SKIP_DIRS]
            if len(entries) == 1 and entries[0].is_dir() and not (
                    entries[0] / assignment).is_dir() and not _looks_like_assignment(entries[0]) \
                    and all(e.is_dir() or e.suffix.lower() == ".zip"
                            for e in entries[0].iterdir()):
                root = entries[0]
            else:
                break
        archive_notes = found.pop("_archive", [])
        for entry in sorted(root.iterdir()):
            if entry.name in SKIP_DIRS or entry.name.startswith("."):
                continue
            notes = list(archive_notes)
            if entry.is_file() and entry.suffix.lower() == ".zip":
                folder = Path(tempfile.mkdtemp(dir=scratch))
                try:
                    notes += safe_extract(entry, folder)
                except (ValueError, zipfile.BadZipFile) as exc:
                    notes.append(f"{entry.name} could not be unpacked: {exc}")
                    folder = None
            elif entry.is_dir():
                folder = entry
            else:
                continue
            sid = student_id(entry.name)
            if sid in found:
                found[sid].append(f"a second submission folder {entry.name!r} was ignored")
                continue
            where = _assignment_folder(folder, assignment, scratch, notes) if folder else None
            dest = Path(course) / "submitted" / sid / assignment
            if dest.exists():
                shutil.rmtree(dest)
            if where is None:
                notes.append(f"no {assignment} files found in {entry.name!r}")
                dest.mkdir(parents=True)
            else:
                copy_limited(where, dest, notes)
            found[sid] = notes
    return found
