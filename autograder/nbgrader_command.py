"""``nbgrader``'s command line, as the autograder starts it (``python -I -m
autograder.nbgrader_command ARGS``): with jsonschema's slow optional import of
``rfc3987_syntax`` skipped and the gradebook's schema version asked of alembic once.
"""

from __future__ import annotations

import sys

from autograder.nbg import ensure_tools_on_path, skip_slow_optional_imports

skip_slow_optional_imports()  # before nbformat is imported

from nbgrader.apps.nbgraderapp import main as nbgrader_main  # noqa: E402

ensure_tools_on_path()

if __name__ == "__main__":
    sys.argv[0] = "nbgrader"
    nbgrader_main()
