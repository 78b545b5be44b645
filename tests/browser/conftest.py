"""Fixtures for the real-browser test: a throw-away JupyterLab server and headless Chromium.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`), driven by Playwright's
Python package through ``executable_path``: no `playwright install` download is needed.
Outside CI a missing Chromium or Playwright skips the test; in CI (CI=true) it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 120  # seconds

# The classroom defaults `make lab` and Binder use (no news question, no update check, no
# build notices): the Makefile's LAB_SETTINGS, passed the same way, --LabApp.app_settings_dir.
APP_SETTINGS = ROOT / "binder" / "jupyter" / "lab" / "settings"
# User settings for the throw-away JupyterLab on top: never write the notebook back to the
# repo (autosave off), keep every cell in the DOM (no windowing).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(reason: str):
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Lab:
    url: str  # base URL, ends with /
    token: str
    log: Path

    def page_url(self, path: str) -> str:
        # ?reset starts from an empty workspace, so only this notebook's tab is open.
        return f"{self.url}{path}?reset&token={self.token}"

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}api/{path}?token={self.token}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (loopback only)
            body = r.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every notebook session, so one notebook's kernel does not outlive its test."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return r.status


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`)")
    return CHROMIUM


@pytest.fixture(scope="session")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing(
            "playwright is not installed: `pip install -e .[browser]` (or `make browser-test`)"
        )
    return sync_playwright


@pytest.fixture(scope="session")
def browser(sync_playwright, chromium_path):
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def lab(jupyter_lab: Lab):
    """The session's JupyterLab; the kernels a test started are shut down after it."""
    yield jupyter_lab
    jupyter_lab.shut_down_kernels()


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory) -> Lab:
    """JupyterLab on a free loopback port, root at the repository, settings in tmp dirs."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("jupyterlab is not installed: `pip install -e .[browser]`")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    settings = tmp / "settings"
    for plugin, values in LAB_SETTINGS.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    (tmp / "workspaces").mkdir()
    (tmp / "runtime").mkdir()
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        VAE_TUTORIAL_QUICK="1",
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI runs as root
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        f"--LabApp.app_settings_dir={APP_SETTINGS}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/"
    lab = Lab(url=base, token=token, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if _get(f"{base}api/status?token={token}") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"jupyter lab did not answer in {SERVER_START_TIMEOUT}s:\n{tail}")
            time.sleep(0.5)
        yield lab
    finally:
        _shutdown(proc, base, token)


def _shutdown(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to stop (it shuts its kernels down too); kill it if it does not."""
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 (loopback only)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen: kernels gone, server lingering; SIGTERM ends it
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
