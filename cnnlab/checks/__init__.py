"""Checks run by the notebooks' test cells and, sandboxed, by the autograder.

>>> from cnnlab.checks import check
>>> check("signal.convolve")  # doctest: +ELLIPSIS
✔ convolve: ... cases agree with scipy.signal.convolve
"""

from cnnlab.checks._core import REGISTRY, Case, Check, check, get_check, register, run_case

__all__ = ["REGISTRY", "Case", "Check", "check", "get_check", "register", "run_case"]
