"""Every command the README shows is one the project really has.

The commands' behaviour is exercised elsewhere (make by CI itself, the CLIs by
tests/test_cli.py and tests/test_autograder_*.py); here each line of every
```bash block must parse against the real Makefile, argument parsers and files,
so the README cannot drift from them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def check_make(words):
    assert len(words) == 2, "one target per make line"
    result = subprocess.run(["make", "-n", words[1]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def check_python_module(words):
    module, argv = words[2], words[3:]
    if module == "cnnlab":
        from cnnlab.__main__ import build_parser
        build_parser().parse_args(argv)
    elif module == "autograder":
        from autograder.__main__ import parser
        parser().parse_args(argv)
    else:
        pytest.fail(f"unknown module in README: {module}")


def check_python_script(words):
    script = ROOT / words[1]
    assert script.is_file(), f"{words[1]} does not exist"
    result = subprocess.run([str(ROOT / ".venv/bin/python"), str(script), "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def check_conda(words):
    name = yaml.safe_load((ROOT / "environment.yml").read_text())["name"]
    assert words[1:] in (["env", "create", "-f", "environment.yml"], ["activate", name])


def check_jupyter(words):
    assert words[1:] == ["lab"]
    import jupyterlab  # noqa: F401  (installed by `make`)


def check_cd(words):
    assert (ROOT / words[1]).is_dir() or words[1] in ("assignments",)


def check_nbgrader(words):
    from nbgrader.apps.nbgraderapp import NbGraderApp
    assert words[1] in NbGraderApp.subcommands


def check_dask(words):
    assert words[1] in ("scheduler", "worker"), words
    result = subprocess.run([str(ROOT / ".venv/bin/dask"), words[1], "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    options = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
    assert all(option in result.stdout for option in options), (options, result.stdout)


HANDLERS = {"make": check_make, "dask": check_dask, "conda": check_conda, "jupyter": check_jupyter,
            "cd": check_cd, "nbgrader": check_nbgrader}


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_is_real(command):
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[0].endswith("/dask"):
            check_dask(words)
        elif words[0].endswith("python") and words[1] == "-m":
            check_python_module(words)
        elif words[0].endswith("python"):
            check_python_script(words)
        else:
            assert words[0] in HANDLERS, f"README command with no check: {command}"
            HANDLERS[words[0]](words)


def test_readme_has_the_two_promised_commands():
    commands = readme_commands()
    assert "make test" in commands and "make demo" in commands
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, flags=re.MULTILINE), ".ci/run must run `make test`"
