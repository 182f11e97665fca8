"""nbgrader configuration of the cnnlab course (this folder is the course directory).

Everything generated here (source/, release/, submitted/, autograded/,
feedback/, gradebook.db, grading/, *.csv) is rebuilt by ``python -m autograder``
and never committed. Paths are relative to this file, so a copy of it makes any
folder a course directory (the tests do that).
"""

import os

c = get_config()  # noqa: F821 -- provided by traitlets when nbgrader loads this file

HERE = os.path.dirname(os.path.abspath(__file__))
STUB_MARKER = "# YOUR CODE HERE"

c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = "cnnlab"
# timeout=30: wait for the lock instead of failing when two processes write at once
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db") + "?timeout=30"
# A submitted file larger than this (in KB) is not copied for grading.
c.CourseDirectory.max_file_size = 20000
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            ".DS_Store", "*.egg-info"]

# Release: strip solutions and hidden tests from the notebooks (the package in
# source/<ps>/cnnlab is already the student edition: nbgrader copies it verbatim).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.enforce_metadata = True
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.ClearHiddenTests.enforce_metadata = True
c.LockCells.lock_readonly_cells = True
c.LockCells.lock_grade_cells = True

# Autograde: a wrong answer must fail in its own cell, not take the run down.
c.ExecutePreprocessor.timeout = int(os.environ.get("CNNLAB_CELL_TIMEOUT", "120"))
c.Execute.timeout = int(os.environ.get("CNNLAB_CELL_TIMEOUT", "120"))
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"
c.OverwriteCells.add_missing_cells = True     # a deleted test cell comes back
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60


def _student_files(assignment_dir):
    """Files of the released package the student edits (they hold stubs): keep theirs."""
    found = []
    package = os.path.join(assignment_dir, "cnnlab")
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as handle:
                if any(line.strip() == STUB_MARKER for line in handle):
                    found.append(os.path.relpath(path, assignment_dir).replace(os.sep, "/"))
    return sorted(found)


_source = os.path.join(HERE, "source")
c.Autograde.exclude_overwriting = {
    name: _student_files(os.path.join(_source, name))
    for name in (sorted(os.listdir(_source)) if os.path.isdir(_source) else [])
    if os.path.isdir(os.path.join(_source, name))
}
