"""The course layout: which notebooks and package modules make up each assignment.

Everything the autograder does is driven by :data:`ASSIGNMENTS`. An assignment
is *available* once all its master notebooks exist in ``notebooks/``; the
commands skip (or refuse) the others, so ps2 and ps3 start working by
themselves as soon as their notebooks and checks are committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_PACKAGE = REPO / "cnnlab"
NOTEBOOKS_DIR = REPO / "notebooks"
DEFAULT_COURSE = REPO / "assignments"
CONFIG_NAME = "nbgrader_config.py"
COURSE_ID = "cnnlab"


@dataclass(frozen=True)
class Assignment:
    """One problem set: its notebooks (by number prefix) and its exercise modules."""

    name: str
    notebook_prefixes: tuple[str, ...]
    modules: tuple[str, ...]  # files with exercises, relative to cnnlab/: "layers/conv.py"

    def notebook_paths(self, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
        """The master notebooks that exist, in order (one per prefix at most)."""
        found = []
        for prefix in self.notebook_prefixes:
            matches = sorted(notebooks_dir.glob(f"{prefix}_*.ipynb"))
            if len(matches) > 1:
                raise ValueError(f"{self.name}: several notebooks start with {prefix}_: "
                                 f"{[m.name for m in matches]}")
            found.extend(matches)
        return found

    def available(self, notebooks_dir: Path = NOTEBOOKS_DIR) -> bool:
        return len(self.notebook_paths(notebooks_dir)) == len(self.notebook_prefixes)


ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment("ps1", ("01", "02"), ("signal.py",)),
    Assignment("ps2", ("03",), ("pooling.py", "gradcheck.py", "layers/conv.py")),
    Assignment("ps3", ("04",), ("layers/dense.py", "lenet.py", "optim.py")),
    Assignment("ps4", ("05",), ("layers/shapes.py", "layers/modern.py")),
)
BY_NAME = {a.name: a for a in ASSIGNMENTS}
#: Modules of the reference package (relative to cnnlab/) that never reach students:
#: lenet_fast.py computes LeNet5's gradients in another form, so it holds the answers
#: of ps2 and ps3 without solution regions to stub. The student edition leaves them out.
REFERENCE_ONLY: tuple[str, ...] = ("lenet_fast.py",)


def get_assignment(name: str) -> Assignment:
    if name not in BY_NAME:
        raise SystemExit(f"unknown assignment {name!r}; the course has {', '.join(BY_NAME)}")
    return BY_NAME[name]


def available_assignments(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Assignment]:
    return [a for a in ASSIGNMENTS if a.available(notebooks_dir)]


def module_assignment_index(module: str) -> int | None:
    """Index in :data:`ASSIGNMENTS` of the assignment whose exercise ``module`` is."""
    module = module.replace(os.sep, "/")
    for index, assignment in enumerate(ASSIGNMENTS):
        if module in assignment.modules:
            return index
    return None


def config_path(course: Path) -> Path:
    return Path(course) / CONFIG_NAME


def db_path(course: Path) -> Path:
    return Path(course) / "gradebook.db"


def db_url(course: Path) -> str:
    return f"sqlite:///{db_path(course)}"


def thread_env() -> dict[str, str]:
    """Environment pinning BLAS and OpenMP to one thread (one grading worker = one core)."""
    return {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
