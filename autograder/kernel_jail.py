"""Start a notebook run's Jupyter kernel inside the sandbox (a kernelspec's launcher).

nbgrader executes a submitted notebook through jupyter_client, which starts the
kernel named in a kernelspec. During grading that kernelspec (written by
:func:`write_kernelspec` into the private course's data folder) runs this
module instead of ``ipykernel``: it copies the notebook's folder (the student's
files) to a scratch folder, and ``exec``\\ s :func:`autograder.jail.command`
so that the kernel runs

* with that scratch copy mounted at the notebook's own path, so the kernel
  works where it expects to while nbgrader's real folder, where the autograded
  notebook is written, is out of its reach (no file swapped after the run);
* with nothing else of the machine but ``/usr`` and Python: no course, no
  gradebook, no source notebooks, no other student;
* talking to nbgrader over Unix sockets in one folder (``KernelManager.transport
  = "ipc"``), since it has no network at all;
* under the seccomp filter and resource limits of :mod:`autograder._lockdown`,
  loaded by :mod:`autograder._kernel_entry` before any cell runs.

The process ``exec``\\ s the sandbox, so jupyter_client's kill reaches it, and
bubblewrap's ``--die-with-parent`` and PID namespace take every process the
kernel started down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from autograder import jail

SPEC_ENV = "CNNLAB_KERNEL_JAIL"
ENTRY = Path(__file__).with_name("_kernel_entry.py")
MAX_COPY_BYTES = 256 << 20
# Under grading, figures are drawn at 60 dpi instead of matplotlib's 100: rendering the
# PNGs was about a fifth of a notebook run, and the instructor reading the autograded
# notebook still sees every figure, a little coarser. (Only the kernel's defaults: a
# figure made with its own dpi keeps it.)
GRADING_MATPLOTLIBRC = "figure.dpi: 60\n"


def write_matplotlib_config(folder: Path) -> Path:
    """The kernels' matplotlib config folder: :data:`GRADING_MATPLOTLIBRC` and a font list.

    Written by the grading process (trusted), once per run; each kernel gets a copy as
    its MPLCONFIGDIR. Without the font list every fresh kernel scans the fonts (about
    0.4 s); a font it lists that the jail does not show makes matplotlib scan anew.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "matplotlibrc").write_text(GRADING_MATPLOTLIBRC, encoding="utf-8")
    try:
        from matplotlib import font_manager
        font_manager.json_dump(font_manager.fontManager, str(
            folder / f"fontlist-v{font_manager.FontManager.__version__}.json"))
    except ImportError:  # no matplotlib here: each kernel lists the fonts itself
        pass
    return folder


def write_kernelspec(data_dir: Path, spec: dict, spec_path: Path) -> None:
    """A ``python3`` kernelspec under ``data_dir/kernels`` that starts kernels in the jail."""
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    folder = data_dir / "kernels" / "python3"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "autograder.kernel_jail", "{connection_file}"],
        "display_name": "Python 3 (cnnlab grading sandbox)", "language": "python",
        "env": {SPEC_ENV: str(spec_path)}, "metadata": {"debugger": False},
    }), encoding="utf-8")


def copy_folder(source: Path, dest: Path) -> None:
    """Copy the notebook's folder for the kernel: regular files only, within a size budget."""
    total = 0
    dest.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        rel = Path(root).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            total += path.stat().st_size
            if total > MAX_COPY_BYTES:
                return
            shutil.copyfile(path, dest / rel / name)


def main(argv: list[str]) -> None:
    connection_file = Path(argv[0])
    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text(encoding="utf-8"))
    notebook_dir = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="kernel-", dir=spec["scratch"]))
    work, home, tools = scratch / "work", scratch / "home", scratch / "tools"
    copy_folder(notebook_dir, work)
    for sub in ("tmp", ".ipython", "mpl", "cache"):
        (home / sub).mkdir(parents=True)
    shutil.copytree(spec["matplotlib"], home / "mpl", dirs_exist_ok=True)
    tools.mkdir()
    shutil.copyfile(ENTRY, tools / "_kernel_entry.py")
    shutil.copyfile(jail.LOCKDOWN, tools / "_lockdown.py")
    # the connection file is the grader's (0600): the kernel gets its own copy
    shutil.copyfile(connection_file, tools / "connection.json")
    (tools / "limits.json").write_text(json.dumps(spec["rlimits"]), encoding="utf-8")
    jail.make_writable(work)
    jail.make_writable(home)
    jail.make_writable(tools)
    env = dict(spec["env"], HOME=str(home), TMPDIR=str(home / "tmp"),
               IPYTHONDIR=str(home / ".ipython"), MPLCONFIGDIR=str(home / "mpl"),
               XDG_CACHE_HOME=str(home / "cache"), CNNLAB_CACHE=str(home / "cache"))
    command = jail.command(
        [sys.executable, str(tools / "_kernel_entry.py"), str(tools)],
        chdir=notebook_dir, read_only=[tools],
        writable=[(work, notebook_dir), (home, home), (Path(spec["sockets"]),
                                                        Path(spec["sockets"]))],
        env=env)
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
