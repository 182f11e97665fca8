"""Enforce each exercise's :class:`~cnnlab.checks._core.Rule`: what its code may not use.

Two layers, both used by the notebooks' test cells and by the autograder's sandbox:

* :func:`static_violations` reads the syntax tree of an exercise module and finds every
  reference to a forbidden name, through the aliases the module makes (``import
  scipy.signal as ss``, ``from scipy import signal as s``, ``from numpy import convolve``,
  ``c2d = s.correlate2d``, ``importlib.import_module("scipy.signal")``, ``getattr(s,
  "correlate2d")``). Each is charged to the exercise whose function (or a helper it calls)
  uses it, so a cheat costs that exercise only.
* :class:`Tripwires` replaces every forbidden callable, wherever a module holds it, with a
  wrapper that looks at its callers: a call made from the student's package (not from
  NumPy, SciPy or the grading side) is charged to the innermost exercise function on the
  stack, recorded, and refused if that exercise is the one being checked. This catches
  what no syntax tree shows: names built at run time, ``sys.modules``, lambdas, aliases.

Calling the student's own functions is always allowed.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import os
import sys
import types
from dataclasses import dataclass

from cnnlab.checks._core import (
    BY_FUNCTION,
    EVERYWHERE,
    EXERCISES,
    PACKAGE,
    Exercise,
    parse_source,
)


class RuleViolation(Exception):
    """An exercise's code used something its rule forbids."""


@dataclass(frozen=True)
class Violation:
    """One forbidden use, charged to ``exercise``."""

    exercise: Exercise
    function: str     # the exercise's function whose code made the use
    call: str         # the forbidden dotted name, e.g. "scipy.signal.correlate2d"
    verb: str = "calls"
    line: int | None = None

    def message(self) -> str:
        """e.g. 'correlate2d calls scipy.signal.correlate2d: implement it yourself (...)'."""
        where = f" (line {self.line})" if self.line else ""
        words = self.exercise.rule.words
        if any(self.call == n or self.call.startswith(n + ".") for n in EVERYWHERE):
            words = "nothing from the course's grading side, cnnlab.checks"
        return (f"{self.function} {self.verb} {self.call}{where}: implement it yourself "
                f"(rule of {self.exercise.short()}: {words})")

    def summary(self) -> str:
        """A short form for reports: 'rule: uses scipy.signal.correlate2d'."""
        return f"rule: {self.verb} {self.call}"


# -- static: the syntax tree of an exercise module ------------------------------------------

def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression stands for, where the module's aliases tell it."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Subscript):  # sys.modules["scipy.signal"]
        base = _dotted(node.value, aliases)
        key = node.slice
        if base == "sys.modules" and isinstance(key, ast.Constant) and isinstance(
                key.value, str):
            return key.value
        return None
    if isinstance(node, ast.Call) and node.args:
        func = _dotted(node.func, aliases)
        first = node.args[0]
        text = first.value if isinstance(first, ast.Constant) and isinstance(
            first.value, str) else None
        if func in ("importlib.import_module", "builtins.__import__") and text:
            return text if func == "importlib.import_module" else text.split(".")[0]
        if func == "builtins.getattr" and len(node.args) >= 2:
            attr = node.args[1]
            base = _dotted(first, aliases)
            if base and isinstance(attr, ast.Constant) and isinstance(attr.value, str):
                return f"{base}.{attr.value}"
    return None


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _bind(node: ast.AST, aliases: dict[str, str], package: str) -> list[tuple[str, int]]:
    """Record the names ``node`` binds in ``aliases``; return the dotted names it imports."""
    imported = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                aliases[top] = top
            imported.append((alias.name, node.lineno))
    elif isinstance(node, ast.ImportFrom):
        module = _absolute(node, package)
        for alias in node.names:
            full = f"{module}.{alias.name}" if alias.name != "*" else module
            aliases[alias.asname or alias.name] = full
            imported.append((full, node.lineno))
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name):
        value = _dotted(node.value, aliases)
        if value:
            aliases[node.targets[0].id] = value
        else:  # a variable that shadows an alias
            aliases.pop(node.targets[0].id, None)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                    node.args.vararg, node.args.kwarg):
            if arg is not None:  # a parameter shadows an alias of the same name
                aliases.pop(arg.arg, None)
    return imported


def _module_aliases(tree: ast.Module, package: str) -> dict[str, str]:
    """The names the module's top level binds (not inside functions or classes)."""
    aliases = {name: f"builtins.{name}" for name in ("getattr", "__import__")}
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            aliases.pop(node.name, None)  # the module's own function, not an import
            continue
        _bind(node, aliases, package)
        for field in ("body", "orelse", "finalbody", "handlers"):
            pending.extend(getattr(node, field, []) or [])
    return aliases


def _references(definition: ast.AST, aliases: dict[str, str], package: str):
    """(dotted name, line) of every name a definition refers to or imports, and the bare
    names it mentions (to follow calls of the module's helpers)."""
    aliases = dict(aliases)
    found, names = [], set()
    for node in ast.walk(definition):  # bindings first: flow-insensitive, on purpose
        found += _bind(node, aliases, package)
    for node in ast.walk(definition):
        if isinstance(node, ast.Name):
            names.add(node.id)
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            dotted = _dotted(node, aliases)
            if dotted:
                found.append((dotted, node.lineno))
    return found, names


def static_violations(source: str, file: str) -> list[Violation]:
    """Forbidden uses in the exercise module ``source`` (the file ``file``, e.g.
    'cnnlab/signal.py'), one per exercise function at most, each charged to the exercise
    whose function, or a non-exercise helper it calls, makes the use."""
    return list(_static_violations(source, file))


# Grading asks this of every exercise of a file in turn, about 30 times per submission:
# the file is analysed once (the answer depends on its text alone).
@functools.lru_cache(maxsize=64)
def _static_violations(source: str, file: str) -> tuple[Violation, ...]:
    tree = parse_source(source)
    module = file.removesuffix(".py").replace("/", ".")
    package = module if file.endswith("__init__.py") else module.rpartition(".")[0]
    aliases = _module_aliases(tree, package.removesuffix(".__init__"))
    definitions = {node.name: node for node in tree.body if isinstance(
        node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    refs = {name: _references(node, aliases, package) for name, node in definitions.items()}
    violations = []
    for name in definitions:
        exercise = BY_FUNCTION.get(name)
        if exercise is None or exercise.file != file:
            continue
        found = [(dotted, line) for dotted, line in _reachable(name, refs)
                 if exercise.rule.forbids(dotted)]
        if found:  # the most specific name (the function, not the module imported for it)
            dotted, line = max(found, key=lambda item: (len(item[0]), -item[1]))
            violations.append(Violation(exercise, name, dotted, "uses", line))
    return tuple(violations)


def module_references(source: str, file: str) -> list[tuple[str, int]]:
    """(dotted name, line) of every name the module ``source`` (the file ``file``) imports
    or refers to, anywhere in it."""
    tree = parse_source(source)
    module = file.removesuffix(".py").replace("/", ".")
    package = module if file.endswith("__init__.py") else module.rpartition(".")[0]
    aliases = _module_aliases(tree, package.removesuffix(".__init__"))
    return _references(tree, aliases, package)[0]


def _reachable(name: str, refs: dict) -> list[tuple[str, int]]:
    """The dotted names ``name`` uses, with those of the helpers it calls (transitively;
    not through other exercises' functions, which answer for themselves)."""
    seen, order, found = {name}, [name], []
    while order:
        current = order.pop(0)
        dotted, names = refs[current]
        found += dotted
        for other in sorted(names & refs.keys() - seen):
            if other not in BY_FUNCTION:
                seen.add(other)
                order.append(other)
    return found


def check_source(exercise: Exercise, package_root=PACKAGE.parent) -> Violation | None:
    """The first static violation of ``exercise`` in the package under ``package_root``."""
    path = os.path.join(package_root, exercise.file)
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        found = static_violations(source, exercise.file)
    except (OSError, SyntaxError, ValueError):
        return None  # importing it will say what is wrong
    return next((v for v in found if v.exercise == exercise), None)


# -- dynamic: tripwires in place of the forbidden callables -----------------------------------

def _callables(name: str, imported_only: bool = False) -> dict[str, object]:
    """{dotted name: callable} that the forbidden ``name`` covers (a module: its functions).

    With ``imported_only``, nothing is imported: a name whose module is not loaded yet
    covers nothing (for now).
    """
    if name in EVERYWHERE:
        found = {}
        for module_name, module in list(sys.modules.items()):
            if (module_name == name or module_name.startswith(name + ".")) and \
                    module_name != __name__:
                for attr, value in vars(module).items():
                    if isinstance(value, types.FunctionType) and value.__module__ == module_name:
                        found[f"{module_name}.{attr}"] = value
        return found
    target = _loaded(name) if imported_only else _imported(name)
    if not isinstance(target, types.ModuleType):
        return {name: target} if callable(target) and not isinstance(target, type) else {}
    public = getattr(target, "__all__", None) or [a for a in vars(target) if a[:1] != "_"]
    found = {}
    for attr in public:  # its own functions, not what it re-exports from elsewhere
        value = getattr(target, attr, None)
        if _own_function(value, name):
            found[f"{name}.{attr}"] = value
    # and those of its private modules, loaded with it: scipy.signal._sigtools._convolve2d,
    # the C routine under correlate2d, does the exercise as well as correlate2d does
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(name + ".") and isinstance(module, types.ModuleType):
            for attr, value in list(vars(module).items()):
                if _own_function(value, name):
                    found.setdefault(f"{module_name}.{attr}", value)
    return found


def _own_function(value, package: str) -> bool:
    """Whether ``value`` is a function (Python, C or Cython) defined in ``package``."""
    return callable(value) and not isinstance(value, (type, types.ModuleType)) and str(
        getattr(value, "__module__", "") or "").startswith(package)


def _imported(name: str):
    """The module or attribute ``name`` names, imported if need be (None if there is none)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        parent, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(parent), attr)
        except (ImportError, AttributeError, ValueError):
            return None


def _loaded(name: str):
    """What ``name`` names if its module is imported already, else None (imports nothing:
    ``vars``, because a package's ``__getattr__`` may import a submodule)."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, attr = name.rpartition(".")
    module = sys.modules.get(parent)
    return None if module is None else vars(module).get(attr)


class Tripwires:
    """Forbidden callables replaced, in every module that holds them, by tripwires.

    Only a call whose nearest caller inside the ``cnnlab`` package folder is the student's
    code (not ``cnnlab/checks``) counts; NumPy and SciPy calling each other, and the
    instructor's checks computing references, pass through untouched.
    """

    def __init__(self, package=PACKAGE):
        self.package = os.path.realpath(package)
        self.checks = os.path.join(self.package, "checks")
        self.running: Exercise | None = None
        self.violations: list[Violation] = []
        self._patched: list[tuple[dict, str, object]] = []
        self._kinds: dict[str, str] = {}
        self._pending: list[str] = []       # forbidden names not covered yet
        self._imported_only = False
        self._planted: dict[int, object] = {}  # id: original, of those with tripwires

    def install(self, exercises=EXERCISES, imported_only: bool = False) -> None:
        """Put tripwires on every callable the rules of ``exercises`` forbid.

        With ``imported_only``, only on those of modules imported already (a test cell's
        check: importing all of SciPy there would cost every notebook run a second);
        :meth:`install_late` covers the modules imported since.
        """
        self._pending = sorted({n for e in exercises for n in (*e.rule.forbidden, *EVERYWHERE)})
        self._imported_only = imported_only
        self.install_late()

    def install_late(self) -> bool:
        """Put tripwires on the forbidden callables of modules imported since
        :meth:`install` (with ``imported_only``); return whether there were any."""
        originals, pending = {}, []
        for name in self._pending:
            found = _callables(name, self._imported_only)
            if not found or name in EVERYWHERE:  # (the grading side's modules: any new one)
                pending.append(name)
            for dotted, value in found.items():
                if id(value) not in self._planted:
                    originals.setdefault(id(value), (value, self._tripwire(value, dotted)))
        self._pending = pending
        if not originals:
            return False
        for module in list(sys.modules.values()):
            try:
                namespace = vars(module)
            except TypeError:
                continue
            if namespace.get("__name__") == __name__:
                continue
            for attr, value in list(namespace.items()):
                entry = originals.get(id(value))
                if entry is not None and entry[0] is value:
                    namespace[attr] = entry[1]
                    self._patched.append((namespace, attr, value))
        self._planted.update({key: value for key, (value, _) in originals.items()})
        return True

    def uninstall(self) -> None:
        """Give every module its originals back."""
        for namespace, attr, value in reversed(self._patched):
            namespace[attr] = value
        self._patched.clear()
        self._planted.clear()
        self._pending = []

    @contextlib.contextmanager
    def checking(self, exercise: Exercise | None):
        """While the check of ``exercise`` runs, its forbidden calls are refused."""
        before, self.running = self.running, exercise
        try:
            yield self
        finally:
            self.running = before

    def _tripwire(self, original, dotted: str):
        on_call = self._on_call

        def tripwire(*args, **kwargs):
            on_call(dotted, sys._getframe(1))
            return original(*args, **kwargs)

        for attr in ("__name__", "__qualname__", "__doc__"):
            try:
                setattr(tripwire, attr, getattr(original, attr))
            except (AttributeError, TypeError):
                pass
        return tripwire

    def _kind(self, filename: str) -> str:
        """'student', 'checks' or 'other' for a code object's file."""
        kind = self._kinds.get(filename)
        if kind is None:
            path = os.path.realpath(filename)
            if path.startswith(self.checks + os.sep):
                kind = "checks"
            elif path.startswith(self.package + os.sep):
                kind = "student"
            else:
                kind = "other"
            self._kinds[filename] = kind
        return kind

    def _student_frames(self, frame) -> list:
        """The student's frames nearest the call, up to the first frame of the checks."""
        frames = []
        while frame is not None:
            kind = self._kind(frame.f_code.co_filename)
            if kind == "checks":
                break
            if kind == "student":
                frames.append(frame)
            frame = frame.f_back
        return frames

    def _on_call(self, dotted: str, frame) -> None:
        frames = self._student_frames(frame)
        if not frames:
            return
        function, exercise = None, None
        for student_frame in frames:
            head = student_frame.f_code.co_qualname.split(".")[0]
            if head in BY_FUNCTION:
                function, exercise = head, BY_FUNCTION[head]
                break
        if exercise is None and self.running is not None:
            function, exercise = self.running.functions[0], self.running
        if exercise is None or not exercise.rule.forbids(dotted):
            return
        violation = Violation(exercise, function, dotted)
        if violation not in self.violations:
            self.violations.append(violation)
        if exercise == self.running:
            raise RuleViolation(violation.message())

    def violation_of(self, exercise: Exercise) -> Violation | None:
        """The first recorded violation charged to ``exercise``."""
        return next((v for v in self.violations if v.exercise == exercise), None)
