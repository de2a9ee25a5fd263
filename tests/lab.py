"""JupyterLab in headless Chromium, for the browser tests and the screenshot script.

A server on a free 127.0.0.1 port with a token, serving a temporary copy of
the notebooks (so autosave never touches the repository); Debian's Chromium
through Playwright.  Helpers open a notebook, run all cells, and report
error outputs and "Error displaying widget".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TOKEN = "nvtesttoken"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(notebooks: Path = ROOT / "notebooks"):
    """Yield the base URL of a JupyterLab serving a copy of `notebooks`."""
    tmp = Path(tempfile.mkdtemp(prefix="nv-lab-"))
    root = tmp / "notebooks"
    shutil.copytree(notebooks, root)
    for name, value in SETTINGS.items():
        path = tmp / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port = free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp / "rt"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.workspaces_dir={tmp / 'ws'}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start: " + (tmp / "lab.log").read_text()[-2000:])
                time.sleep(0.3)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def delete_sessions(base: str) -> None:
    """Kernels outlive pages: shut them all down between notebooks."""
    sessions = json.load(urllib.request.urlopen(f"{base}/api/sessions?token={TOKEN}"))
    for s in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(req)


def run_notebook(page, base: str, name: str, timeout: float = 120_000) -> dict:
    """Open a notebook, run every cell, and return what a reader would see as problems."""
    page.goto(f"{base}/lab/tree/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout)
    page.wait_for_function(
        """async () => { const w = window.jupyterapp.shell.currentWidget;
             if (!w || !w.sessionContext) return false;
             await w.context.ready; await w.sessionContext.ready;
             const k = w.sessionContext.session && w.sessionContext.session.kernel;
             if (!k) return false; await k.info; return k.connectionStatus === 'connected'; }""",
        timeout=timeout)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")
    page.wait_for_function(
        """() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
             return p.length > 0 && p.every(e => /^\\[\\d+\\]:$/.test(e.textContent.trim())); }""",
        timeout=timeout)
    page.wait_for_timeout(500)
    return {
        "errors": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").all_inner_texts(),
        "stderr": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts(),
        "widget_errors": page.locator(".jp-OutputArea-output", has_text="Error displaying widget").count(),
    }
