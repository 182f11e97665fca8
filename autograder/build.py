"""Assemble ``source/<ps>/`` from the master notebooks and the student edition, then release.

``source/<ps>/`` holds the master notebooks (with solutions and hidden tests)
and the *student edition* of cnnlab for that assignment: ``nbgrader
generate_assignment`` strips the notebooks but copies every other file
verbatim, so the package placed there must already be stripped.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from autograder.course import (
    CONFIG_NAME,
    DEFAULT_COURSE,
    NOTEBOOKS_DIR,
    REFERENCE_PACKAGE,
    get_assignment,
)
from autograder.nbg import base_env, run_nbgrader
from autograder.student_edition import find_leaks, write_student_edition
from autograder.testcells import assignment_cells


class BuildError(RuntimeError):
    pass


def ensure_course(course: Path) -> Path:
    """Make ``course`` a course directory (copying the committed nbgrader config)."""
    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    config = course / CONFIG_NAME
    if not config.exists():
        shutil.copyfile(DEFAULT_COURSE / CONFIG_NAME, config)
    return course


def notebook_names(course: Path, assignment: str) -> list[str]:
    """Notebook names (no suffix) of an assignment as built in ``source/``."""
    source = Path(course) / "source" / assignment
    names = sorted(p.stem for p in source.glob("*.ipynb"))
    if not names:
        raise BuildError(f"{source} has no notebooks: run `python -m autograder build "
                         f"{assignment}` first")
    return names


def assemble_source(course: Path, assignment: str, notebooks_dir: Path = NOTEBOOKS_DIR,
                    package: Path = REFERENCE_PACKAGE) -> Path:
    spec = get_assignment(assignment)
    paths = spec.notebook_paths(notebooks_dir)
    if len(paths) != len(spec.notebook_prefixes):
        raise BuildError(f"{assignment}: notebooks {spec.notebook_prefixes} are not all in "
                         f"{notebooks_dir} yet")
    source = Path(course) / "source" / assignment
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    uses_images = False
    for path in paths:
        notebook = nbformat.read(str(path), as_version=4)
        nbformat.validate(notebook)
        shutil.copyfile(path, source / path.name)
        uses_images |= "images/" in path.read_text(encoding="utf-8")
    images = notebooks_dir / "images"
    if uses_images and images.is_dir():
        for item in sorted(images.iterdir()):
            if item.is_file() and item.suffix != ".py":
                (source / "images").mkdir(exist_ok=True)
                shutil.copyfile(item, source / "images" / item.name)
    edition = write_student_edition(source, assignment, package)
    leaks = find_leaks(edition, assignment, package)
    if leaks:
        raise BuildError("solution lines leaked into the student edition:\n" + "\n".join(leaks))
    # Every test cell's check calls must be literal, so the sandbox can replay them.
    for cell in assignment_cells(source, [p.stem for p in paths]):
        if cell.kind == "test" and not cell.calls:
            print(f"warning: {cell.notebook}/{cell.grade_id} calls no check(): its score comes "
                  "from the notebook run only, which student code can forge")
    return source


def generate(course: Path, assignment: str, timeout: float = 600) -> None:
    with tempfile.TemporaryDirectory() as logs:
        result = run_nbgrader(["generate_assignment", assignment, "--force", "--create"],
                              course, timeout, Path(logs) / "generate.log", env=base_env())
    if not result.ok:
        raise BuildError(f"nbgrader generate_assignment {assignment} failed:\n{result.output}")


def build(assignments: list[str], course: Path = DEFAULT_COURSE,
          notebooks_dir: Path = NOTEBOOKS_DIR, package: Path = REFERENCE_PACKAGE) -> Path:
    """Build and release each assignment; return the course directory."""
    course = ensure_course(course)
    for name in assignments:
        assemble_source(course, name, notebooks_dir, package)
        generate(course, name)
        release = course / "release" / name
        print(f"{name}: source/{name} and release/{name} built "
              f"({', '.join(p.name for p in sorted(release.glob('*.ipynb')))} + cnnlab/)")
    return course
