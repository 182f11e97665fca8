"""The answer book: what a student's release knows about the right answers, as data.

A student's copy of the course holds no code that could solve an exercise, and the
references (SciPy, loops written out, a plain-NumPy LeNet5) are such code. So when the
release is built, every visible test (``check(name)``, seed 0) is run once with the
references and what it needs is written to :data:`BOOK_NAME` next to this module:
each case's inputs, the right outputs, and the outputs of the planted mistakes that the
hints are diagnosed from. In the release, :func:`cnnlab.checks.check` reads them from
there; in the reference package (no book) it computes them as it goes.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.checks._core import Case, Check, get_check

BOOK_NAME = "answers.npz"
BOOK = Path(__file__).resolve().with_name(BOOK_NAME)
VISIBLE_SEED = 0  # the seed of the notebooks' visible tests


@dataclass(frozen=True)
class Expectation:
    """One case of a check, with the right outputs and the explained wrong ones."""

    case: Case
    right: dict
    wrong: tuple[tuple[str, dict], ...]


def expect(chk: Check, case: Case) -> Expectation:
    """The right outputs of ``case`` and the plausible mistakes that differ from them."""
    right = chk.reference(**case.inputs)
    return Expectation(case, right, tuple(chk.wrong_answers(case, right)))


def encode(value, arrays: dict, prefix: str):
    """JSON for one value; arrays go into ``arrays`` under fresh keys."""
    if isinstance(value, np.ndarray):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"__scalar__": key}
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, complex):
        return {"__complex__": [value.real, value.imag]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, list):
        return {"__list__": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): encode(v, arrays, prefix) for k, v in value.items()}}
    raise TypeError(f"a check value of type {type(value).__name__} cannot be stored")


def decode(value, arrays):
    """Rebuild a value written by :func:`encode` (arrays from the npz)."""
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__scalar__" in value:
            return arrays[value["__scalar__"]][()]
        if "__complex__" in value:
            return complex(*value["__complex__"])
        if "__tuple__" in value:
            return tuple(decode(v, arrays) for v in value["__tuple__"])
        if "__list__" in value:
            return [decode(v, arrays) for v in value["__list__"]]
        if "__dict__" in value:
            return {k: decode(v, arrays) for k, v in value["__dict__"].items()}
        raise ValueError(f"cannot decode {value!r}")
    return value


def write_book(path: Path, names) -> Path:
    """Run the visible tests of the checks ``names`` with the references; store them."""
    arrays, index = {}, {}
    for name in sorted(names):
        chk = get_check(name)
        entries = []
        for number, case in enumerate(chk.cases(seed=VISIBLE_SEED)):
            found = expect(chk, case)
            prefix = f"{name}/{number}/"
            entries.append({
                "label": case.label,
                "inputs": encode(case.inputs, arrays, prefix),
                "right": encode(found.right, arrays, prefix),
                "wrong": [[hint, encode(outputs, arrays, prefix)] for hint, outputs in found.wrong],
            })
        index[name] = entries
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, __index__=np.array(json.dumps(index)), **arrays)
    path.write_bytes(buffer.getvalue())
    return path


@functools.cache
def _book(path: Path) -> tuple[dict, dict] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return json.loads(str(arrays.pop("__index__"))), arrays


def has_book() -> bool:
    """Whether this copy of the course answers from a book (a student's release)."""
    return BOOK.is_file()


def expectations(chk: Check, seed: int = VISIBLE_SEED, count: int | None = None,
                 book: Path | None = None) -> list[Expectation]:
    """The cases of ``check(chk.name, seed, count)`` with their answers.

    From the book if this copy has one (a student's release), else computed with the
    references.
    """
    loaded = _book(BOOK if book is None else book)
    if loaded is None:
        return [expect(chk, case) for case in chk.cases(seed=seed, count=count)]
    index, arrays = loaded
    if seed != VISIBLE_SEED or count is not None:
        raise ValueError(f"seed must be {VISIBLE_SEED} and count None in a student's copy of "
                         f"the course (its answer book holds the visible tests only), got "
                         f"seed={seed!r}, count={count!r}")
    if chk.name not in index:
        raise ValueError(f"name must be a check of this assignment's notebooks, got "
                         f"{chk.name!r}")
    return [Expectation(Case(entry["label"], decode(entry["inputs"], arrays)),
                        decode(entry["right"], arrays),
                        tuple((hint, decode(outputs, arrays)) for hint, outputs in entry["wrong"]))
            for entry in index[chk.name]]
