"""The notebooks and the explorer in a real browser: JupyterLab in headless Chromium.

Under CI=true a missing Chromium fails these tests; elsewhere they are skipped with the reason.
Screenshots of every notebook go to artifacts/screenshots/.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from lab import CHROMIUM, ROOT, browser, delete_sessions, jupyterlab, run_notebook

ARTIFACTS = ROOT / "artifacts" / "screenshots"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def _browser_available():
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return True
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium")
    return False


@pytest.fixture(scope="module")
def lab():
    if not _browser_available():
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with jupyterlab() as base, browser() as b:
        yield base, b


@pytest.fixture
def page(lab):
    base, b = lab
    p = b.new_page(viewport={"width": 1400, "height": 5200})
    yield base, p
    p.close()
    delete_sessions(base)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(page, name):
    base, p = page
    result = run_notebook(p, base, name)
    p.screenshot(path=str(ARTIFACTS / f"{name[:-6]}.png"), full_page=True)
    assert result["errors"] == [], result["errors"]
    assert result["stderr"] == [], result["stderr"]
    assert result["widget_errors"] == 0


def _visible_card(p):
    return p.locator(".nv-root .nv-card:visible").first


def test_explorer_steps_with_buttons_and_keys(page):
    import nsvm_model as nm
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    trace = nm.run(nm.Scenario.svm())
    root = p.locator(".nv-root").first
    card = root.locator(".nv-card:visible").first
    start = int(card.get_attribute("data-step"))
    root.get_by_role("button", name="Next ▶").click()
    p.wait_for_function(f"() => [...document.querySelectorAll('.nv-card')].some(e => e.offsetParent && e.dataset.step == '{start + 1}')")
    card = root.locator(".nv-card:visible").first
    assert card.get_attribute("data-step-id") == trace.steps[start + 1].id
    written = set(root.locator(".nv-frame:visible td.nv-w").evaluate_all("els => els.map(e => e.dataset.path)"))
    shown = set(root.locator(".nv-frame:visible td[data-path]").evaluate_all("els => els.map(e => e.dataset.path)"))
    assert written == set(trace.steps[start + 1].written) & shown
    root.get_by_role("button", name="◀ Previous").click()
    p.wait_for_function(f"() => [...document.querySelectorAll('.nv-card')].some(e => e.offsetParent && e.dataset.step == '{start}')")
    root.locator(".widget-slider .noUi-handle, .widget-slider [role=slider]").first.focus()
    p.keyboard.press("ArrowRight")
    p.keyboard.press("ArrowRight")
    p.wait_for_function(f"() => [...document.querySelectorAll('.nv-card')].some(e => e.offsetParent && e.dataset.step == '{start + 2}')")
    p.screenshot(path=str(ARTIFACTS / "explorer-after-keys.png"))


def test_whatif_variant_and_bad_input(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    root = p.locator(".nv-root").first
    variant = root.locator("select").filter(has=p.locator("option", has_text="v6-unified")).first
    variant.select_option("v6-unified")
    p.wait_for_function("() => document.body.innerText.includes('✗ R18')", timeout=30_000)
    field = root.locator("input[placeholder='field path']").first
    field.fill("vmcb12.control.asid")
    root.locator("input[placeholder^='0x1d01']").first.fill("0x100000000")
    before = root.locator(".nv-banner").first.inner_text()
    root.get_by_role("button", name="Set field and run").click()
    p.wait_for_function("() => document.body.innerText.includes('wider than the field')", timeout=30_000)
    assert root.locator(".nv-error").first.is_visible()
    assert root.locator(".nv-banner").first.inner_text() == before      # the last good trace stays
    p.screenshot(path=str(ARTIFACTS / "explorer-whatif.png"))


def test_presenter_mode_makes_every_explorer_text_at_least_20px(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    root = p.locator(".nv-root").first
    root.get_by_role("button", name="Presenter mode").click()
    p.wait_for_function("() => document.querySelector('.nv-root.nv-presenter') !== null")
    texts = "td, th, h3, .nv-meta, .nv-note, .nv-legend, summary, .widget-label, button, select"
    sizes = root.evaluate("""r => [...r.querySelectorAll('""" + texts + """')]
        .filter(e => e.offsetParent && e.textContent.trim())
        .map(e => [e.tagName + '.' + e.className, parseFloat(getComputedStyle(e).fontSize)])""")
    small = [s for s in sizes if s[1] < 20]
    assert sizes and not small, small[:5]
    p.screenshot(path=str(ARTIFACTS / "explorer-presenter.png"))
