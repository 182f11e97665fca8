"""The student's copy of ``cnnlab.checks``: the machinery and the calls, no reference code.

The references of the checks (SciPy's functions, loops written out, a plain-NumPy
LeNet5) are implementations of the exercises, so a release must not carry them. The
student's copy keeps what runs their functions and explains a wrong answer; the
answers themselves travel as data (:mod:`cnnlab.checks.answers`). This module cuts the
reference code out of the check modules' source:

- the methods that make cases or answers (:data:`GRADING_METHODS`) and every function,
  method or class marked ``@grading_side``;
- then, until nothing changes, every module-level name, class attribute and import that
  no remaining code of the package uses (a registered check class stays).

Lines are removed, not regenerated, so what remains reads like the source it came from.
"""

from __future__ import annotations

import ast
from pathlib import Path

GRADING_METHODS = frozenset({"reference", "mistakes", "examples", "random_cases"})
KEPT_MODULES = frozenset({"_core.py", "__init__.py", "answers.py", "notebook.py", "rules.py"})
KEEP_DECORATORS = frozenset({"register"})


def _decorator_names(node) -> set[str]:
    names = set()
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def _span(node, lines: list[str]) -> tuple[int, int]:
    """First and last line (1-based) of a statement, with its decorators and the comment
    lines right above it."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while first > 1 and lines[first - 2].lstrip().startswith("#") and not lines[
            first - 2].lstrip().startswith("# ---") and not lines[first - 2].lstrip().startswith(
            "# ==="):
        first -= 1
    return first, node.end_lineno


def _bound_names(node) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _usage(trees: dict[str, ast.Module]) -> tuple[dict, set[str], dict[str, set[str]]]:
    """Names each module reads, attributes read anywhere, and what each module imports
    from each other one."""
    names, attributes, imported = {}, set(), {}
    for module, tree in trees.items():
        read = names.setdefault(module, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                read.add(node.id)
            elif isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "cnnlab.checks."):
                stem = node.module.rsplit(".", 1)[1] + ".py"
                imported.setdefault(stem, set()).update(a.name for a in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)  # __all__ and getattr by name
    return names, attributes, imported


def _removals(module: str, tree: ast.Module, lines: list[str], names: set[str],
              attributes: set[str], imported: set[str]):
    """Line spans to delete, and import statements to rewrite, in one module."""
    spans, rewrites = [], []
    strip = module not in KEPT_MODULES
    for node in tree.body:
        decorators = _decorator_names(node)
        if strip and "grading_side" in decorators:
            spans.append(_span(node, lines))
            continue
        if isinstance(node, ast.ClassDef):
            kept_any = False
            for item in node.body:
                item_names = _bound_names(item)
                if strip and isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        item.name in GRADING_METHODS or "grading_side" in _decorator_names(item)):
                    spans.append(_span(item, lines))
                elif strip and isinstance(item, (ast.Assign, ast.AnnAssign)) and item_names \
                        and not set(item_names) & attributes:
                    spans.append(_span(item, lines))
                else:
                    kept_any = True
            if not kept_any:
                raise ValueError(f"{module}: class {node.name} would be left empty")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "cnnlab.checks":
                continue  # check modules imported for their registrations
            keep = [a for a in node.names
                    if (a.asname or a.name).split(".")[0] in names | imported]
            if not keep:
                spans.append(_span(node, lines))
            elif len(keep) < len(node.names):
                node.names = keep
                rewrites.append((node, ast.unparse(node)))
            continue
        bound = _bound_names(node)
        if not strip or not bound or KEEP_DECORATORS & decorators:
            continue
        if not set(bound) & (names | imported):
            spans.append(_span(node, lines))
    return spans, rewrites


def _apply(text: str, spans, rewrites) -> str:
    lines = text.splitlines()
    drop = set()
    for first, last in spans:
        drop.update(range(first - 1, last))
    replaced = {node.lineno - 1: (node.end_lineno - 1, new) for node, new in rewrites}
    kept, index = [], 0
    while index < len(lines):
        if index in replaced and index not in drop:
            end, new = replaced[index]
            kept.append(lines[index][: len(lines[index]) - len(lines[index].lstrip())] + new)
            index = end + 1
            continue
        if index not in drop:
            kept.append(lines[index])
        index += 1
    return "\n".join(_tidy_blank_lines(kept)) + ("\n" if text.endswith("\n") else "")


def _tidy_blank_lines(lines: list[str]) -> list[str]:
    """At most one blank line before an indented line and two before a top-level one, so
    that the removed code's blank lines do not pile up."""
    out, run = [], 0
    for line in lines:
        if not line.strip():
            run += 1
            continue
        if out:
            out.extend([""] * min(run, 1 if line[:1].isspace() else 2))
        run = 0
        out.append(line)
    return out


def strip_package(sources: dict[str, str]) -> dict[str, str]:
    """The check modules ``{file name: source}`` with the reference code cut out."""
    sources = dict(sources)
    for _ in range(50):
        trees = {name: ast.parse(text, filename=name) for name, text in sources.items()}
        names, attributes, imported = _usage(trees)
        changed = False
        for name, tree in trees.items():
            spans, rewrites = _removals(name, tree, sources[name].splitlines(), names[name],
                                        attributes, imported.get(name, set()))
            if spans or rewrites:
                new = _apply(sources[name], spans, rewrites)
                ast.parse(new, filename=name)
                changed |= new != sources[name]
                sources[name] = new
        if not changed:
            return sources
    raise RuntimeError("stripping the reference code did not settle")


def write_checks_edition(reference: Path, dest: Path) -> list[Path]:
    """Write the student's copy of the check modules of ``reference`` into ``dest``."""
    files = sorted(p for p in Path(reference).glob("*.py"))
    stripped = strip_package({p.name: p.read_text(encoding="utf-8") for p in files})
    written = []
    for name, text in stripped.items():
        (Path(dest) / name).write_text(text, encoding="utf-8")
        written.append(Path(dest) / name)
    return written
