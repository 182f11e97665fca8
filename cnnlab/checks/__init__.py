"""Checks run by the notebooks' test cells and, sandboxed, by the autograder.

>>> from cnnlab.checks import check
>>> check("signal.convolve")  # doctest: +ELLIPSIS
✔ convolve: ... cases agree with scipy.signal.convolve
"""

from cnnlab.checks._core import (
    EXERCISES,
    REGISTRY,
    Case,
    Check,
    Exercise,
    check,
    exercise_file,
    exercise_of,
    get_check,
    register,
    run_case,
)
from cnnlab.checks.notebook import skip_unfinished

__all__ = ["EXERCISES", "REGISTRY", "Case", "Check", "Exercise", "check", "exercise_file",
           "exercise_of", "get_check", "register", "run_case", "skip_unfinished"]
