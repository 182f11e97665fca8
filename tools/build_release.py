"""Build the student release of an assignment without putting nbgrader in .venv.

    .venv/bin/python tools/build_release.py ps1

is what ``make student PS=ps1`` runs: ``python -m autograder build ps1`` needs
nbgrader (its ``generate_assignment`` strips the notebooks), but a student's
JupyterLab should not show nbgrader's instructor panels. When nbgrader is
already in this environment (after ``make test``) it is used directly;
otherwise it is installed into ``.venv/release-tools/``, a second environment
that sees every package of this one (through a ``.pth`` file) and adds only
nbgrader and what nbgrader needs on top, and the build runs there.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nbgrader_requirement() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["course"]
    return next(r for r in extras if r.startswith("nbgrader"))


def tools_python(env: Path) -> Path:
    """The interpreter of ``env``, created (and given nbgrader) when missing."""
    python = env / "bin" / "python"
    marker = env / ".nbgrader-installed"
    if marker.is_file():
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    here = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "_cnnlab_base_env.pth").write_text(
        f"import site; site.addsitedir({here!r})\n", encoding="utf-8")
    print(f"installing nbgrader (to build the release only) into {env}/")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--disable-pip-version-check", nbgrader_requirement()],
                   check=True)
    marker.touch()
    return python


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="ps1, ps2 or ps3")
    parser.add_argument("--course", default=str(ROOT / "assignments"))
    parser.add_argument("--tools-env", type=Path, default=Path(sys.prefix) / "release-tools",
                        help="where nbgrader goes when this environment lacks it")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("nbgrader") is not None:
        python = Path(sys.executable)
    else:
        python = tools_python(args.tools_env)
    return subprocess.run([str(python), "-m", "autograder", "build", args.assignment,
                           "--course", args.course], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
