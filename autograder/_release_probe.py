"""Child of ``release_scan``: call each non-exercise function of a release on the cases.

argv: the folder holding the released ``cnnlab``, the cases' npz, the JSON list of
exercise function names. Prints one JSON line: the functions that gave
the reference's answer on every case of some check.
"""

from __future__ import annotations

import copy
import inspect
import json
import pkgutil
import signal
import sys
import warnings

import numpy as np

SECONDS_PER_CALL = 5


def candidates(exercise_functions: set[str]) -> dict[str, object]:
    """Every function defined in the released package that is no exercise."""
    import cnnlab

    if not cnnlab.__file__.startswith(sys.path[0]):
        raise SystemExit(f"imported cnnlab from {cnnlab.__file__}, not from {sys.path[0]}")
    found = {}
    modules = [cnnlab] + [__import__(info.name, fromlist=["_"]) for info in
                          pkgutil.walk_packages(cnnlab.__path__, "cnnlab.")
                          if not info.name.endswith("__main__")]
    for module in modules:
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__ \
                    and name not in exercise_functions:
                found[f"{module.__name__}.{name}"] = value
    return found


def outputs(value) -> list[np.ndarray]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in outputs(v)]
    try:
        array = np.asarray(value)
    except Exception:
        return []
    return [array] if array.dtype.kind in "biufc" else []


def reproduces(function, case, rtol, atol) -> bool:
    inputs, right = case
    try:
        bound = inspect.signature(function).bind(**inputs)
    except (TypeError, ValueError):
        try:
            bound = inspect.signature(function).bind(*inputs.values())
        except (TypeError, ValueError):
            return False
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
           for p in inspect.signature(function).parameters.values()):
        return False  # binds anything: calling it proves nothing
    signal.alarm(SECONDS_PER_CALL)
    try:
        args, kwargs = copy.deepcopy((bound.args, bound.kwargs))  # a function may write to them
        got = outputs(function(*args, **kwargs))
    except BaseException:
        return False
    finally:
        signal.alarm(0)
    for want in right.values():
        want = np.asarray(want)
        if not any(g.shape == want.shape and np.allclose(g, want, rtol=rtol, atol=atol)
                   for g in got):
            return False
    return True


def main() -> None:
    release, cases_path, exercise_functions = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
    sys.path.insert(0, release)
    from cnnlab.checks.answers import decode  # the release's own reader of its data
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError()))
    with np.load(cases_path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    checks = json.loads(str(arrays.pop("__index__")))
    functions = candidates(exercise_functions)
    found = []
    with np.errstate(all="ignore"):
        for item in checks:
            cases = [(decode(c["inputs"], arrays), decode(c["right"], arrays))
                     for c in item["cases"]]
            for name, function in functions.items():
                if all(reproduces(function, case, item["rtol"], item["atol"]) for case in cases):
                    found.append({"function": name, "check": item["name"]})
    print(json.dumps(found))


if __name__ == "__main__":
    main()
