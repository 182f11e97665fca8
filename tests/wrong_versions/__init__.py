"""Plausible wrong versions of each exercise, by check name, and the hint each must get.

Each module here defines ``WRONG`` = {check name: [(label, factory), ...]}, where
``factory(original)`` returns a wrong implementation (it may wrap the reference), and
``HINTS`` = {(check name, label): regular expression}: what ``check(name)`` must say
about that wrong version. tests/test_check_contract.py asserts that every check fails
on each of them with its hint; the notebook tests, that every test cell fails.
"""

import importlib
import pkgutil

WRONG_VERSIONS: dict = {}
HINTS: dict = {}
for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    WRONG_VERSIONS.update(_module.WRONG)
    HINTS.update(_module.HINTS)


def plant(monkeypatch, name: str, make) -> None:
    """Replace the function that check ``name`` tests by ``make(original)``."""
    from cnnlab.checks import get_check

    chk = get_check(name)
    module = importlib.import_module(chk.module)
    monkeypatch.setattr(module, chk.function, make(getattr(module, chk.function)))
