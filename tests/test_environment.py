"""environment.yml (conda, for students and Binder) names what pyproject.toml names."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_map(lines):
    """{'numpy': '>=1.26', ...} from PEP 508 / conda requirement strings."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", line)
        found[match.group(1).lower().replace("_", "-")] = match.group(2).replace(" ", "")
    return found


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = requirement_map(project["dependencies"] + project["optional-dependencies"]["lab"])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = requirement_map(d for d in environment["dependencies"] if isinstance(d, str))
    assert conda.pop("python") == ">=" + project["requires-python"].removeprefix(">=")
    assert conda == wanted, (
        "environment.yml and pyproject.toml (dependencies + the 'lab' extra) disagree: "
        f"only in environment.yml: {sorted(set(conda.items()) - set(wanted.items()))}, "
        f"only in pyproject.toml: {sorted(set(wanted.items()) - set(conda.items()))}"
    )


def test_student_environment_never_installs_the_reference_package():
    text = (ROOT / "environment.yml").read_text()
    assert "pip:" not in text and "cnnlab" not in text.split("name:", 1)[1].split("\n", 1)[1]
