"""Unpacking untrusted archives, and reading a class export as a tree, within bounds.

Every archive here is a student's: no absolute paths or ``..``, no links, at most
:data:`MAX_MEMBERS` members, and one budget of unpacked bytes across nesting levels
and students (:class:`Budget`); a member whose name cannot be a file here is skipped
with a note.
"""

from __future__ import annotations

import errno
import re
import stat
import zipfile
from pathlib import Path

MAX_MEMBERS = 50_000       # in one student's archive (or share of the class export)
MAX_STUDENT_UNPACKED = 256 << 20   # bytes unpacked for one student, all levels together
MAX_RUN_UNPACKED = 4 << 30         # bytes unpacked in one run of ingest
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git", ".hg", ".svn", "__MACOSX",
             ".venv", "venv", "node_modules"}
# A member whose name the file system refuses: skipped, the rest is extracted.
UNREPRESENTABLE = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EEXIST, errno.EISDIR,
                   errno.EINVAL, errno.EILSEQ}


class Budget:
    """Bytes that unpacking may still write: for the whole run and for the current student.

    One budget across nesting levels and students, so that neither a zip of
    zips nor many students' archives can fill the disk.
    """

    def __init__(self, run: int | None = None):
        self.run_left = MAX_RUN_UNPACKED if run is None else run
        self.student_left = MAX_STUDENT_UNPACKED

    def next_student(self) -> None:
        self.student_left = MAX_STUDENT_UNPACKED

    def check(self, size: int, what: str) -> None:
        """Refuse before writing anything when ``size`` bytes would not fit."""
        if size > self.student_left:
            raise ValueError(f"{what} unpacks to more than {MAX_STUDENT_UNPACKED >> 20} MB "
                             "(the limit for one student)")
        if size > self.run_left:
            raise ValueError(f"unpacking {what} would pass this collection's limit of "
                             f"{MAX_RUN_UNPACKED >> 20} MB unpacked in all")

    def spend(self, size: int, what: str) -> None:
        self.check(size, what)
        self.student_left -= size
        self.run_left -= size


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """The parts of a member's relative path, or None when it is absolute or climbs out."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return None
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def display_name(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _skip_reason(info: zipfile.ZipInfo) -> str | None:
    if _safe_parts(info.filename) is None:
        return "skipped unsafe path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "skipped link"
    return None


def safe_members(zf: zipfile.ZipFile, label: str, notes: list,
                 limit: int = MAX_MEMBERS) -> list[tuple[tuple[str, ...], zipfile.ZipInfo]]:
    """The members that may be extracted, as (path parts, info); notes say what was skipped."""
    members = zf.infolist()
    if len(members) > limit:
        raise ValueError(f"{label} has {len(members)} members (limit {limit})")
    kept = []
    for info in members:
        reason = _skip_reason(info)
        if reason:
            notes.append(f"{reason} {display_name(info.filename)} in {label}")
        else:
            kept.append((_safe_parts(info.filename), info))
    return kept


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path,
                    budget: Budget, label: str) -> None:
    """Write one member, charging every byte to the budget (never trusting its header)."""
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as source, open(target, "wb") as sink:
        copied = 0
        while chunk := source.read(1 << 20):
            copied += len(chunk)
            if copied > info.file_size:  # a lying header
                raise ValueError(f"{display_name(info.filename)} in {label} is larger than its "
                                 "header says")
            budget.spend(len(chunk), label)
            sink.write(chunk)


def extract_members(zf: zipfile.ZipFile, members: list, dest: Path, budget: Budget,
                    label: str, notes: list) -> None:
    """Extract ``members`` ((parts, info), parts relative to ``dest``) within the budget."""
    members = [(p, i) for p, i in members if not any(part in SKIP_DIRS for part in p)]
    budget.check(sum(info.file_size for _, info in members), label)
    for parts, info in members:
        try:
            _extract_member(zf, info, dest.joinpath(*parts), budget, label)
        except OSError as exc:
            if exc.errno not in UNREPRESENTABLE:
                raise
            notes.append(f"skipped {display_name(info.filename)} in {label}: it cannot be written "
                         f"here ({exc.strerror})")


def safe_extract(archive: Path, dest: Path, budget: Budget | None = None) -> list[str]:
    """Extract a zip with bounds; return notes about what was skipped."""
    notes: list[str] = []
    budget = budget or Budget()
    with zipfile.ZipFile(archive) as zf:
        members = safe_members(zf, archive.name, notes)
        extract_members(zf, members, dest, budget, archive.name, notes)
    return notes


class FolderTree:
    """A folder of submissions, addressed by path parts (like :class:`ZipTree`)."""

    def __init__(self, root: Path):
        self.root = root

    def children(self, parts: tuple) -> list[str]:
        return sorted(p.name for p in self.root.joinpath(*parts).iterdir())

    def is_dir(self, parts: tuple) -> bool:
        return self.root.joinpath(*parts).is_dir()

    def materialize(self, parts: tuple, scratch: Path, budget: Budget, notes: list) -> Path:
        return self.root.joinpath(*parts)  # the instructor's folder: read in place


class ZipTree:
    """A zipped class export, read as a tree without extracting it.

    Only one student's share is ever extracted at a time (:meth:`materialize`),
    so a bad member name or a bomb costs that student only.
    """

    def __init__(self, zf: zipfile.ZipFile, members: list):
        self.zf, self.members = zf, members
        self.skipped = [(info.filename.replace("\\", "/"), reason) for info in zf.infolist()
                        if (reason := _skip_reason(info))]
        self.kids: dict[tuple, set] = {(): set()}
        self.dirs: set[tuple] = {()}
        for parts, info in members:
            for i in range(1, len(parts) + 1):
                self.kids.setdefault(parts[:i - 1], set()).add(parts[i - 1])
                if i < len(parts) or info.is_dir():
                    self.dirs.add(parts[:i])

    def children(self, parts: tuple) -> list[str]:
        return sorted(self.kids.get(parts, ()))

    def is_dir(self, parts: tuple) -> bool:
        return parts in self.dirs

    def materialize(self, parts: tuple, scratch: Path, budget: Budget, notes: list) -> Path:
        """Extract the entry ``parts`` (a folder or a file) into ``scratch``; return its path."""
        top = scratch / "entry"
        top.mkdir()
        label = display_name("/".join(parts))
        notes += [f"{reason} {display_name(name)} in the export" for name, reason in self.skipped
                  if name.startswith("/".join(parts) + "/")]
        if not self.is_dir(parts):
            members = [(parts[-1:], info) for p, info in self.members if p == parts]
            extract_members(self.zf, members[-1:], top, budget, label, notes)
            return top / parts[-1]
        members = [(p[len(parts):], info) for p, info in self.members
                   if len(p) > len(parts) and p[:len(parts)] == parts]
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"{label} has {len(members)} files (limit {MAX_MEMBERS})")
        extract_members(self.zf, members, top, budget, label, notes)
        return top
