"""nbgrader's command line, without paying for its import at every command.

Importing nbgrader takes over a second, and grading runs an nbgrader command per
submission. :func:`autograder.nbg.run_nbgrader` has the standard library's fork server
(``multiprocessing``'s "forkserver" context) import this module once per grading
process; each command is then a fork of that server, which :func:`run` gives its own
session, folder, environment and log. A process that may not have children of its own
(a daemonic one, such as a Dask worker) runs ``python -I -m autograder.nbgrader_command``
instead: the same command, with the import.
"""

from __future__ import annotations

import os
import sys

from autograder.nbg import ensure_tools_on_path, skip_slow_optional_imports

skip_slow_optional_imports()  # before nbformat is imported

from nbgrader.apps.nbgraderapp import main as nbgrader_main  # noqa: E402

ensure_tools_on_path()  # (and the gradebook's schema version asked of alembic once)


def run(args: list[str], folder: str, env: dict[str, str], log: str) -> None:
    """``nbgrader ARGS`` in ``folder`` with ``env``, its output appended to ``log``.

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
    nbgrader_main()


if __name__ == "__main__":
    sys.argv[0] = "nbgrader"
    nbgrader_main()
