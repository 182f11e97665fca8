"""Graceful notebooks: a cell that needs an exercise you have not done yet is skipped.

Call :func:`skip_unfinished` once, in a notebook's first cell. From then on, a cell that
calls a function still a stub does not print a traceback but one line naming the
exercise, e.g. ::

    ⏭ skipped: this cell needs `correlate2d` (exercise 1 of 02_convolution_2d.ipynb, in
    cnnlab/signal.py)

and the names that cell would have defined are remembered: a later cell that fails only
because one of them is missing is skipped the same way, with the same reason, instead
of raising a ``NameError``. Every other error (in your own code, say) is shown as usual.
A test cell is not skipped: it fails with its own message.
"""

from __future__ import annotations

import ast
import builtins

from cnnlab.checks._core import not_implemented, stub_in_traceback


def defined_names(source: str) -> set[str]:
    """Names a cell binds at its top level (assignments, imports, defs, for targets)."""
    try:
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


class _Skipper:
    def __init__(self, shell):
        self.shell = shell
        self.source = ""
        self.missing: dict[str, str] = {}  # name -> why the cell defining it was skipped

    def pre_run_cell(self, info):
        self.source = info.raw_cell or ""

    def skip(self, why: str) -> None:
        for name in defined_names(self.source):
            if name not in self.shell.user_ns:
                self.missing.setdefault(name, why)
        print(f"⏭ skipped: this cell needs {why}")

    def handle(self, shell, etype, value, tb, tb_offset=None):
        if issubclass(etype, NotImplementedError):
            stub = stub_in_traceback(value)
            if stub is not None:
                self.skip(not_implemented(stub).replace(" is not implemented yet", ""))
                return None
        elif issubclass(etype, NameError):
            name = getattr(value, "name", None)
            if (name in self.missing and name not in shell.user_ns
                    and not hasattr(builtins, name)):
                self.skip(f"`{name}`, which a skipped cell above defines: that cell needs "
                          f"{self.missing[name]}")
                return None
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None


def skip_unfinished() -> None:
    """In IPython, skip cells that need an unfinished exercise (see the module's text)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    skipper = _Skipper(shell)
    shell.events.register("pre_run_cell", skipper.pre_run_cell)
    shell.set_custom_exc((NotImplementedError, NameError), skipper.handle)
