"""Run notebooks headless, one after the other, saying which one runs and for how long.

    python tools/run_notebooks.py --output-dir build notebooks/*.ipynb

prints ``[1/4] 01_convolution_1d … 12 s`` per notebook (on a terminal, the line
also shows the cell being run and the last state of a progress bar the
notebook drew, such as the training's tqdm bar) and writes an HTML copy of
each executed notebook that renders offline: MathJax is copied next to it
(from the ``jupyter-server-mathjax`` package) and the notebooks' own images are
embedded.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from traitlets.config import Config

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


def copy_mathjax(output_dir: Path) -> str | None:
    """Copy MathJax next to the HTML files; return the relative URL, or None if unavailable."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = output_dir / "mathjax"
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


class Status:
    """One status line, rewritten in place on a terminal, printed once otherwise."""

    def __init__(self, prefix: str, stream=sys.stdout):
        self.prefix, self.stream = prefix, stream
        self.live = stream.isatty()
        self.start = time.monotonic()
        self.width = 0

    def update(self, detail: str) -> None:
        if not self.live:
            return
        text = f"{self.prefix} … {time.monotonic() - self.start:.0f} s  {detail}"
        text = text[:shutil.get_terminal_size((100, 20)).columns - 1]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def done(self, outcome: str) -> None:
        text = f"{self.prefix} … {time.monotonic() - self.start:.0f} s{outcome}"
        if self.live:
            text = "\r" + text.ljust(self.width)
        print(text, file=self.stream, flush=True)


class ProgressClient(NotebookClient):
    """A notebook client that reports the running cell and progress-bar text."""

    def __init__(self, nb, status: Status, **kw):
        super().__init__(nb, **kw)
        self.status = status
        self.code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.cell_number = 0
        self.bar = ""
        self.on_cell_execute = self._cell_starts

    def _cell_starts(self, cell, cell_index):
        self.cell_number = self.code_cells.index(cell_index) + 1 if cell_index in \
            self.code_cells else self.cell_number
        self.bar = ""
        self._show()

    def _show(self):
        detail = f"cell {self.cell_number}/{len(self.code_cells)}"
        self.status.update(detail + (f"  {self.bar}" if self.bar else ""))

    def process_message(self, msg, cell, cell_index):
        content = msg.get("content", {})
        text = None
        if msg.get("msg_type") == "comm_msg":  # a widget update: tqdm's text part
            value = content.get("data", {}).get("state", {}).get("value")
            if isinstance(value, str) and value.strip():
                text = re.sub(r"<[^>]+>", "", html.unescape(value))
        elif msg.get("msg_type") == "stream" and content.get("name") == "stderr":
            text = content.get("text", "").replace("\r", "\n").strip().splitlines()
            text = text[-1] if text else None
        if text:
            self.bar = " ".join(text.split())
            self._show()
        return super().process_message(msg, cell, cell_index)


def keep_static_pictures(nb) -> None:
    """Drop the widget view of outputs that also carry a PNG (the cnnlab.widgets explorers).

    The HTML copy cannot show a widget offline (the widget manager comes from the web),
    and nbconvert prefers the view to the picture whenever the run stored widget state.
    """
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                data.pop("application/vnd.jupyter.widget-view+json", None)


def run(notebook: Path, output_dir: Path, mathjax_url: str | None, timeout: int,
        prefix: str) -> bool:
    nb = nbformat.read(notebook, as_version=4)
    status = Status(prefix)
    ok = True
    # Local sockets (ipc) rather than TCP ports: nothing else on the machine can talk
    # to the kernel, and ipykernel does not warn about unencrypted TCP on every run.
    with tempfile.TemporaryDirectory(prefix="cnnlab-kernel-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "k")}})
        client = ProgressClient(nb, status, timeout=timeout, kernel_name="python3", config=ipc,
                                resources={"metadata": {"path": str(notebook.parent)}})
        try:
            client.execute()
        except CellExecutionError as exc:
            ok = False
            lines = ANSI_COLOUR.sub("", str(exc)).strip().splitlines()
            error = lines[-1] if lines else type(exc).__name__
    keep_static_pictures(nb)
    exporter = HTMLExporter(embed_images=True)
    if mathjax_url:
        exporter.mathjax_url = mathjax_url
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"path": str(notebook.parent), "name": notebook.stem}})
    (output_dir / f"{notebook.stem}.html").write_text(body, encoding="utf-8")
    status.done("" if ok else f"  FAILED: {error}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("build"))
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds per cell (default 1800)")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    mathjax_url = copy_mathjax(args.output_dir)
    if mathjax_url is None:
        print("note: jupyter-server-mathjax is not installed: the HTML copies load MathJax "
              "from the web")
    failed = []
    total = time.monotonic()
    for i, notebook in enumerate(args.notebooks, 1):
        if not run(notebook, args.output_dir, mathjax_url, args.timeout,
                   f"[{i}/{len(args.notebooks)}] {notebook.stem}"):
            failed.append(notebook.name)
    print(f"{len(args.notebooks) - len(failed)}/{len(args.notebooks)} notebooks ran in "
          f"{time.monotonic() - total:.0f} s; HTML copies in {args.output_dir}/")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
