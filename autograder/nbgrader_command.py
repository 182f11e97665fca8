"""nbgrader's command line, without paying for its import at every command.

Importing nbgrader takes over a second, and grading runs an nbgrader command per
submission. :func:`autograder.nbg.run_nbgrader` has the standard library's fork server
(``multiprocessing``'s "forkserver" context) import this module once per grading
process; each command is then a fork of that server, which :func:`run` gives its own
session, folder, environment and log. A process that may not have children of its own
(a daemonic one, such as a Dask worker) runs ``python -I -m autograder.nbgrader_command``
instead: the same command, with the import, and no interpreter teardown at the end.
Either way, jsonschema's slow optional import of ``rfc3987_syntax`` is skipped and the
gradebook's schema version is asked of alembic once.
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


def run(args: list[str], folder: str, env: dict[str, str], log: str) -> int:
    """``nbgrader ARGS`` in ``folder`` with ``env``, its output appended to ``log``; its
    exit status.

    In a fresh fork of the server: a session of its own, so that killing its process
    group on a timeout takes the kernels' launchers with it.
    """
    os.setsid()
    stdin = os.open(os.devnull, os.O_RDONLY)
    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for source, target in ((stdin, 0), (output, 1), (output, 2)):
        os.dup2(source, target)
    os.close(stdin)
    os.close(output)
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["nbgrader", *args]
    return main()


if __name__ == "__main__":
    status = main()
    # nbgrader has written everything and closed its gradebooks and kernels by now:
    # tearing down its hundreds of modules would take another half second.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
