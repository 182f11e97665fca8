"""Where a graded notebook run spends its time: each notebook's cells, slowest first.

    .venv/bin/python benchmarks/bench_notebook_cells.py [--core 1] [--top 8] [NOTEBOOK ...]

Runs the master notebooks (default: those of ps1, ps2 and ps3) top to bottom with
the reference package, as the autograder's kernels do: ``NBGRADER_EXECUTION`` set
(the notebooks' shorter runs), one BLAS thread, and the kernels' matplotlib
config (:func:`autograder.kernel_jail.write_matplotlib_config`); no jail, no
nbgrader. Prints each notebook's wall time (kernel start included), the sum of its
cells, and its slowest cells with how many PNG figures each drew.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from autograder.course import NOTEBOOKS_DIR, get_assignment, thread_env  # noqa: E402
from autograder.kernel_jail import write_matplotlib_config  # noqa: E402


def cell_seconds(cell) -> float:
    """How long nbclient saw the cell run (from its recorded timing)."""
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--core", type=int, default=None, help="pin to this core")
    parser.add_argument("--top", type=int, default=8, help="slowest cells shown per notebook")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    paths = args.notebooks or [p for ps in ("ps1", "ps2", "ps3")
                               for p in get_assignment(ps).notebook_paths()]
    with tempfile.TemporaryDirectory(prefix="cnnlab-cells-") as scratch:
        os.environ.update(thread_env(), NBGRADER_EXECUTION="autograde",
                          MPLBACKEND="module://matplotlib_inline.backend_inline",
                          CNNLAB_CACHE=scratch,
                          MPLCONFIGDIR=str(write_matplotlib_config(Path(scratch) / "mpl")))
        total = 0.0
        for path in paths:
            notebook = nbformat.read(str(path), as_version=4)
            client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
            started = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - started
            total += seconds
            cells = [(cell_seconds(c), i, c) for i, c in enumerate(notebook.cells)
                     if c.cell_type == "code"]
            print(f"{path.name}: {seconds:.1f} s, cells {sum(s for s, _, _ in cells):.1f} s")
            for spent, index, cell in sorted(cells, key=lambda item: -item[0])[:args.top]:
                pngs = sum("image/png" in o.get("data", {}) for o in cell.outputs)
                graded = " (graded)" if cell.metadata.get("nbgrader", {}).get("grade") else ""
                first = cell.source.splitlines()[0][:60] if cell.source else ""
                print(f"  {spent:5.2f} s  cell {index:2d}{graded}, {pngs} figures: {first}")
        print(f"all: {total:.1f} s")


if __name__ == "__main__":
    main()
