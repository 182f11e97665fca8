"""How long each role's first set-up takes, and how much disk it uses.

    .venv/bin/python benchmarks/bench_setup.py [--warm-cache] [--json FILE]

Clones the repository's committed HEAD into a temporary folder and runs, in
order, what each role's first command runs on a fresh machine:

1. student / self-learner: ``make setup-lab`` (what ``make lab``, ``make student``
   and ``make demo`` install into ``.venv/``);
2. self-learner building a release: ``tools/build_release.py ps1`` (the first
   ``make student`` puts nbgrader into ``.venv/release-tools/`` and builds ps1);
3. instructor and tests: ``make setup`` (``make test``'s libraries, added to the
   same ``.venv/``).

Each step's wall time is measured, and the size of ``.venv/`` (without the
release tools) and of ``.venv/release-tools/`` after it. Packages come from the
registry with an empty pip cache (pass ``--warm-cache`` to use the machine's),
so the times include downloads and depend on the network. The browser of the
browser tests (Debian's chromium, installed by ``make test`` as root) is
reported by its installed size when present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = (
    ("student (make lab / student / demo)", ["make", "setup-lab"]),
    ("self-learner's first release (make student)",
     [".venv/bin/python", "tools/build_release.py", "ps1"]),
    ("instructor and tests (make test)", ["make", "setup"]),
)


def size_mb(path: Path, skip: Path | None = None) -> float:
    """Bytes of the regular files under ``path`` (not following links), in MB."""
    total = 0
    for folder, dirs, files in os.walk(path):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in files:
            file = Path(folder, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total / 1e6


def chromium_mb() -> float | None:
    """Installed size of Debian's chromium packages, if installed."""
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}\n", "chromium",
                           "chromium-common"], capture_output=True, text=True)
    sizes = [int(s) for s in done.stdout.split() if s.isdigit()]
    return sum(sizes) * 1024 / 1e6 if sizes else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-cache", action="store_true",
                        help="use the machine's pip cache instead of an empty one")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-setup-") as tmp:
        clone = Path(tmp) / "cnnlab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = dict(os.environ)
        if not args.warm_cache:
            env["PIP_CACHE_DIR"] = str(Path(tmp) / "pip-cache")
        env.pop("VIRTUAL_ENV", None)
        venv, tools = clone / ".venv", clone / ".venv" / "release-tools"
        for role, command in STEPS:
            start = time.perf_counter()
            done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
                print(f"{role}: {' '.join(command)} failed", file=sys.stderr)
                return 1
            rows.append({"role": role, "command": " ".join(command), "seconds": seconds,
                         "venv_mb": size_mb(venv, skip=tools),
                         "release_tools_mb": size_mb(tools) if tools.exists() else 0.0})
            print(f"{role:45s} {seconds:6.0f} s   .venv {rows[-1]['venv_mb']:5.0f} MB   "
                  f"release-tools {rows[-1]['release_tools_mb']:4.0f} MB", flush=True)
    browser = chromium_mb()
    print(f"chromium (browser tests, apt): "
          f"{'not installed' if browser is None else f'{browser:.0f} MB'}")
    if args.json:
        args.json.write_text(json.dumps({"steps": rows, "chromium_mb": browser,
                                         "warm_cache": args.warm_cache}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
