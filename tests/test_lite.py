"""`make lite`: the notebooks in JupyterLite, the kernel running in the browser (Pyodide), with
every request that leaves the site's own server refused.

Under CI=true a missing Chromium or a failed build fails these tests; elsewhere a missing
Chromium skips them.
"""

import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

from lab import CHROMIUM, ROOT, free_port
from test_browser import _browser_available

SITE = ROOT / "build" / "lite"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
ERRORS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], " \
         ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


@pytest.fixture(scope="module")
def site():
    if not _browser_available():
        pytest.skip(f"no browser at {CHROMIUM}")
    build = subprocess.run(["make", "lite"], cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return SITE


@contextmanager
def served(folder):
    """The site from a static server on 127.0.0.1 (JupyterLite's module scripts need http://)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(base, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_site_ships_its_own_python_and_no_cdn(site):
    lock = (site / "static" / "pyodide" / "pyodide-lock.json").read_text()
    assert "cdn.jsdelivr" not in lock and "nsvm_suite-" in lock and "anywidget-" in lock
    config = (site / "jupyter-lite.json").read_text()
    assert "./static/pyodide/pyodide.mjs" in config and '"disablePyPIFallback": true' in config
    assert (site / "extensions" / "anywidget").is_dir()           # the stage's front end
    assert sorted(p.name for p in (site / "files").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_notebook_00_runs_steps_and_answers_a_what_if_offline(site):
    from playwright.sync_api import sync_playwright

    with served(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        outside = []
        # on the context, not the page: the kernel's worker fetches Pyodide and the wheels
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith((base, "blob:", "data:"))
                      else (outside.append(r.request.url), r.abort()))
        page = context.new_page()
        page.goto(base + "lab/index.html?path=00_start_here.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.get_by_role("menuitem", name="Run").click()
        page.locator("li[data-command='runmenu:run-all']").click()     # queued until the kernel is up
        page.wait_for_function(f"""() => document.querySelector('.nvs .nvs-title')
                                          || document.querySelector("{ERRORS}")""", timeout=240_000)
        assert page.locator(ERRORS).all_inner_texts() == []
        stage = page.locator(".nvs").first
        start = int(stage.locator(".nvs-title").get_attribute("data-step"))
        stage.get_by_role("button", name="next step").click()
        stage.locator(f".nvs-title[data-step='{start + 1}']").wait_for(timeout=10_000)
        stage.locator(".nvs-flowbtn").click()                          # laid out when the site was built
        assert stage.locator(".nvs-flow svg .nvs-node-mark").count() == 1
        panel = page.locator(".nv-root").filter(has=page.get_by_text("What if?")).first
        assert "l2_runs" in stage.locator(".nvs-head").inner_text()
        panel.locator("input[placeholder='field path']").fill("vmcb12.control.asid")
        panel.locator("input[placeholder^='0x1d01']").fill("0")
        panel.get_by_role("button", name="Set field and run").click()
        page.wait_for_function("() => document.querySelector('.nvs .nvs-head').innerText.includes('vmexit_invalid')",
                               timeout=60_000)
        page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / "lite-00.png"))
        browser.close()
    assert outside == []
