"""Plausible wrong versions of each exercise, by check name.

Each module here defines ``WRONG`` = {check name: [(label, factory), ...]}, where
``factory(original)`` returns a wrong implementation (it may wrap the reference).
The notebook tests assert that every test cell fails for each of them.
"""

import importlib
import pkgutil

WRONG_VERSIONS: dict = {}
for _info in pkgutil.iter_modules(__path__):
    WRONG_VERSIONS.update(importlib.import_module(f"{__name__}.{_info.name}").WRONG)
