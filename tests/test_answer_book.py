"""A student's release answers from a book, not from reference code: same verdicts.

The release's ``cnnlab/checks`` has no references (``autograder/checks_edition.py`` cuts
them out) and reads each visible test's answers from ``answers.npz``. These tests prove
the book changes nothing a student sees: the reference passes, and every planted wrong
version of every exercise gets the very message it gets from the live references.
"""

from __future__ import annotations

import importlib

import pytest

from autograder.student_edition import visible_checks
from cnnlab.checks import answers, check
from cnnlab.checks._core import PACKAGE
from tests.wrong_versions import WRONG_VERSIONS
from tests.wrong_versions import layers as wrong_layers

WRONG = {**WRONG_VERSIONS, **wrong_layers.WRONG_DENSE}
CASES = [(name, label, make) for name, variants in sorted(WRONG.items())
         for label, make in variants]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return answers.write_book(tmp_path_factory.mktemp("book") / answers.BOOK_NAME,
                              visible_checks(None))


def verdict(name: str) -> str:
    try:
        check(name)
    except AssertionError as exc:
        return str(exc)
    return "passed"


def both_verdicts(name, book, monkeypatch) -> tuple[str, str]:
    live = verdict(name)
    with monkeypatch.context() as m:
        m.setattr(answers, "BOOK", book)
        return live, verdict(name)


def test_the_reference_package_has_no_book():
    assert not (PACKAGE / "checks" / answers.BOOK_NAME).exists()
    assert not answers.has_book()


@pytest.mark.parametrize("name", visible_checks(None))
def test_the_reference_passes_from_the_book(name, book, monkeypatch, capsys):
    live, from_book = both_verdicts(name, book, monkeypatch)
    assert live == from_book == "passed"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]  # the same number of cases, too


@pytest.mark.parametrize("name, label, make", CASES, ids=[f"{n}-{lb}" for n, lb, _ in CASES])
def test_a_wrong_version_gets_the_same_message_from_the_book(name, label, make, book,
                                                             monkeypatch):
    module = importlib.import_module(f"cnnlab.{name.split('.')[0]}")
    function = name.split(".")[1]
    monkeypatch.setattr(module, function, make(getattr(module, function)))
    live, from_book = both_verdicts(name, book, monkeypatch)
    assert live != "passed"
    assert from_book == live


def test_the_book_holds_the_visible_tests_only(book, monkeypatch):
    monkeypatch.setattr(answers, "BOOK", book)
    with pytest.raises(ValueError, match=r"seed must be 0 and count None in a student's copy "
                                         r"of the course .* got seed=10417, count=60"):
        check("signal.correlate", seed=10417, count=60)


def test_a_book_without_the_check_says_so(tmp_path, monkeypatch):
    small = answers.write_book(tmp_path / answers.BOOK_NAME, ["signal.correlate"])
    monkeypatch.setattr(answers, "BOOK", small)
    with pytest.raises(ValueError, match="name must be a check of this assignment's notebooks, "
                                         "got 'pooling.upsample'"):
        check("pooling.upsample")
