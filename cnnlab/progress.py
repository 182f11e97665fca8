"""Progress bars: shown in a terminal and in Jupyter (as widgets), not in logs.

:func:`progress_bar` gives a ``tqdm`` bar when bars are wanted and None otherwise,
so that callers write ``if bar is not None: bar.update(1)``.
"""

from __future__ import annotations

import sys

__all__ = ["in_jupyter", "progress_bar", "progress_enabled"]


def in_jupyter() -> bool:
    """Whether this code runs in a Jupyter kernel (where progress bars are widgets)."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ipython = shell.get_ipython()
    except AttributeError:
        return False
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def progress_enabled(progress) -> bool:
    """``progress`` if it is True or False; for None, whether stderr is a terminal or Jupyter."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr
    try:
        tty = stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or in_jupyter()


def progress_bar(progress, **options):
    """A ``tqdm.auto.tqdm(**options)`` bar if :func:`progress_enabled` says so, else None."""
    if not progress_enabled(progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(**options)
