"""The package the sandbox tests: the student's exercise files, the release's others."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from autograder.regions import STUB_MARKER

MAX_FILE_BYTES = 1 << 20
MAX_PACKAGE_BYTES = 8 << 20
MAX_PACKAGE_FILES = 300
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def student_owned(text: str) -> bool:
    """Whether a file of the released package is the student's to edit (it has stubs)."""
    return any(line.strip() == STUB_MARKER for line in text.splitlines())


def assemble_package(submitted: Path | None, trusted: Path, dest: Path) -> list[str]:
    """Build the package to test in ``dest``: the student's files where they are theirs.

    Like nbgrader's autograde with ``exclude_overwriting``: every file of the
    released package overwrites the student's copy, except the exercise files
    (those with stubs), which are the student's. Extra ``.py`` files the student
    added are kept. Returns notes about files that were skipped.
    """
    notes, total, count = [], 0, 0
    dest.mkdir(parents=True)
    if submitted is not None and submitted.is_dir():
        for path in sorted(submitted.rglob("*.py")):
            rel = path.relative_to(submitted)
            if path.is_symlink() or not path.is_file() or any(
                    not _IDENTIFIER.match(p) for p in [*rel.parts[:-1], rel.stem]):
                continue
            if len(rel.parts) > 5:
                continue
            size = path.stat().st_size
            if size > MAX_FILE_BYTES or total + size > MAX_PACKAGE_BYTES or \
                    count >= MAX_PACKAGE_FILES:
                notes.append(f"cnnlab/{rel.as_posix()} was skipped (package size limits)")
                continue
            total, count = total + size, count + 1
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
    for path in sorted(trusted.rglob("*")):
        rel = path.relative_to(trusted)
        if not path.is_file() or "__pycache__" in rel.parts:
            continue
        if path.suffix == ".py" and student_owned(path.read_text(encoding="utf-8")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)
    return notes
