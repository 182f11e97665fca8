"""``nbgrader``'s command line, as the autograder starts it (``python -I -m
autograder.nbgrader_command ARGS``): with jsonschema's slow optional import of
``rfc3987_syntax`` skipped, the gradebook's schema version asked of alembic once, and
no interpreter teardown at the end.
"""

from __future__ import annotations

import os
import sys

from autograder.nbg import ensure_tools_on_path, skip_slow_optional_imports

skip_slow_optional_imports()  # before nbformat is imported

from nbgrader.apps.nbgraderapp import main as nbgrader_main  # noqa: E402

ensure_tools_on_path()


def main() -> int:
    """Run nbgrader; its exit status."""
    sys.argv[0] = "nbgrader"
    try:
        nbgrader_main()
    except SystemExit as exc:  # as the interpreter would: an int is the status, text is told
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    # nbgrader has written everything and closed its gradebooks and kernels by now:
    # tearing down its hundreds of modules would take another half second.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
