"""`make demo`'s notebook runner: one line per notebook, nothing else on the terminal."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def write_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def run_tool(tmp_path: Path, *notebooks: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_notebooks.py"), "--output-dir",
         str(tmp_path / "out"), *map(str, notebooks)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_one_line_per_notebook_and_no_kernel_warnings(tmp_path):
    first = write_notebook(tmp_path / "first.ipynb", "x = 6 * 7", "print(x)")
    second = write_notebook(tmp_path / "second.ipynb", "import sys; print('ok', file=sys.stderr)")
    done = run_tool(tmp_path, first, second)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\[1/2\] first … \d+ s", lines[0]), lines
    assert re.fullmatch(r"\[2/2\] second … \d+ s", lines[1]), lines
    assert re.fullmatch(r"2/2 notebooks ran in \d+ s; HTML copies in .*/out/", lines[2]), lines
    assert done.stderr == "", done.stderr  # e.g. ipykernel's "running over TCP" warning
    assert "42" in (tmp_path / "out" / "first.html").read_text(encoding="utf-8")
    assert not list(tmp_path.glob("kernel-*")), "ipc sockets left next to the notebooks"


def test_a_failing_notebook_is_named_and_fails_the_run(tmp_path):
    broken = write_notebook(tmp_path / "broken.ipynb", "raise ValueError('planted')")
    done = run_tool(tmp_path, broken)
    assert done.returncode == 1
    assert re.search(r"\[1/1\] broken … \d+ s  FAILED: ValueError: planted", done.stdout)
    assert "failed: broken.ipynb" in done.stderr
