"""The notebooks and the explorer in a real browser: JupyterLab in headless Chromium.

Under CI=true a missing Chromium fails these tests; elsewhere they are skipped with the reason.
Screenshots of every notebook go to artifacts/screenshots/.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from lab import CHROMIUM, ROOT, TOKEN, browser, delete_sessions, jupyterlab, run_notebook

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


def _step(stage) -> int:
    """The 0-based step the stage shows, read from its card."""
    return int(stage.locator(".nvs-title").get_attribute("data-step"))


def _wait_step(p, stage, i):
    stage.locator(f".nvs-title[data-step='{i}']").wait_for(timeout=10_000)


def test_stage_steps_with_buttons_keys_and_slider(page):
    import nsvm_model as nm
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    trace = nm.run(nm.Scenario.preset("svm", "teaching"))
    stage = p.locator(".nvs").first
    start = _step(stage)
    stage.get_by_role("button", name="next step").click()
    _wait_step(p, stage, start + 1)
    assert stage.locator(".nvs-title").get_attribute("data-step-id") == trace.steps[start + 1].id
    written = set(stage.locator("td.nvs-w").evaluate_all("els => els.map(e => e.dataset.path)"))
    shown = set(stage.locator("td[data-path]").evaluate_all("els => els.map(e => e.dataset.path)"))
    assert written == set(trace.steps[start + 1].written) & shown
    stage.get_by_role("button", name="previous step").click()
    _wait_step(p, stage, start)
    stage.locator(".nvs-card").click()              # anywhere on the stage: the keys step
    p.keyboard.press("ArrowRight")
    p.keyboard.press("ArrowRight")
    _wait_step(p, stage, start + 2)
    p.keyboard.press("End")
    _wait_step(p, stage, len(trace.steps) - 1)
    p.keyboard.press("Home")
    _wait_step(p, stage, 0)
    # every count is 1-based and agrees: slider, counter, card, step list
    assert stage.locator(".nvs-slider").input_value() == "1"
    assert stage.locator(".nvs-count").inner_text() == f"step 1 / {len(trace.steps)}"
    assert stage.locator(".nvs-title").inner_text().startswith(f"Step 1/{len(trace.steps)}:")
    assert stage.locator(".nvs-jump option:checked").inner_text().startswith("1. ")
    p.screenshot(path=str(ARTIFACTS / "explorer-after-keys.png"))


def test_pause_stays_on_its_step(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    stage = p.locator(".nvs").first
    stage.locator(".nvs-speed").select_option(label="fast")
    start = _step(stage)
    stage.locator(".nvs-play").click()
    p.wait_for_function("s => +document.querySelector('.nvs .nvs-title').dataset.step >= s + 2", arg=start)
    stage.locator(".nvs-play").click()                # pause
    paused = _step(stage)
    p.wait_for_timeout(1200)
    assert _step(stage) == paused >= start + 2       # neither rewound nor still playing
    assert "Play" in stage.locator(".nvs-play").inner_text()


def test_whatif_variant_and_bad_input(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    root = p.locator(".jp-OutputArea-output").filter(has=p.locator(".nvs")).filter(
        has=p.get_by_text("What if?")).first
    variant = root.locator("select").filter(has=p.locator("option", has_text="v6-unified")).first
    variant.select_option("v6-unified")
    p.wait_for_function("() => document.body.innerText.includes('✗ R18')", timeout=30_000)
    field = root.locator("input[placeholder='field path']").first
    field.fill("vmcb12.control.asid")
    root.locator("input[placeholder^='0x1d01']").first.fill("0x100000000")
    before = root.locator(".nvs-head").inner_text()
    root.get_by_role("button", name="Set field and run").click()
    p.wait_for_function("() => document.body.innerText.includes('wider than the field')", timeout=30_000)
    assert root.locator(".nv-error").first.is_visible()
    assert root.locator(".nvs-head").inner_text() == before      # the last good trace stays
    p.screenshot(path=str(ARTIFACTS / "explorer-whatif.png"))


TEXTS = ".nvs-head, .nvs-bar button, .nvs-bar select, .nvs-bar label, .nvs-count, .nvs-title, .nvs-meta, " \
        ".nvs-why, .nvs-note, td, th, .nvs-legend, .nvs-focus, .nvs-chain code, .nvs-tl-names div, .nvs-run"


def _on_screen(p, stage, viewport):
    """Scroll the stage to the top of the notebook and say which of its parts are not wholly visible."""
    stage.evaluate("e => e.scrollIntoView({block: 'start'})")
    p.wait_for_timeout(200)
    top, bottom = viewport
    box = stage.bounding_box()
    parts = {"stage": box}
    for name, sel in (("card", ".nvs-title"), ("position", ".nvs-chain"), ("timeline marker", ".nvs-mark"),
                      ("controls", ".nvs-bar"), ("a focused row", "td[data-path]")):
        parts[name] = stage.locator(sel).first.bounding_box()
    return [name for name, b in parts.items() if b is None or b["y"] < top - 1 or b["y"] + b["height"] > bottom + 1]


def _notebook_viewport(p):
    return p.evaluate("""() => { const r = document.querySelector('.jp-NotebookPanel-notebook')
                                       .getBoundingClientRect(); return [r.top, r.bottom]; }""")


@pytest.mark.parametrize("presenter", [False, True], ids=["normal", "presenter"])
def test_one_step_fits_a_1280x720_screen(lab, presenter):
    """Sidebar closed: controls, card, focused rows, function chain and timeline marker of every
    explorer of a lesson are on screen together, no scrolling."""
    base, b = lab
    p = b.new_page(viewport={"width": 1280, "height": 720})
    try:
        run_notebook(p, base, "02_successful_vmrun.ipynb")
        p.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        viewport = _notebook_viewport(p)
        stages = p.locator(".nvs")
        assert stages.count() >= 2
        for k in range(stages.count()):
            stage = stages.nth(k)
            if presenter:
                stage.locator(".nvs-pres").check()
                p.wait_for_timeout(100)
            assert _on_screen(p, stage, viewport) == [], k
            if presenter:
                sizes = stage.evaluate(f"""r => [...r.querySelectorAll('{TEXTS}')]
                    .filter(e => e.offsetParent && e.textContent.trim())
                    .map(e => [e.tagName + '.' + e.className, parseFloat(getComputedStyle(e).fontSize)])""")
                small = [s for s in sizes if s[1] < 20]
                assert sizes and not small, small[:5]
        p.screenshot(path=str(ARTIFACTS / f"stage-1280x720{'-presenter' if presenter else ''}.png"))
    finally:
        p.close()
        delete_sessions(base)


CONTRAST = """(e) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  let bg = e, c = [0, 0, 0, 0];
  while (bg && ((c = rgb(getComputedStyle(bg).backgroundColor)).length < 3 || c[3] === 0)) bg = bg.parentElement;
  const fg = rgb(getComputedStyle(e).color), a = lum(fg), z = lum(c.length >= 3 ? c : [255, 255, 255]);
  return (Math.max(a, z) + 0.05) / (Math.min(a, z) + 0.05);
}"""


def test_presenter_box_enlarges_the_whatif_panel_too(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    root = p.locator(".nv-root").filter(has=p.get_by_text("What if?")).first
    root.locator(".nvs-pres").check()
    p.wait_for_function("() => document.querySelector('.nv-root.nv-presenter') !== null", timeout=10_000)
    sizes = root.evaluate("""r => [...r.querySelectorAll('.widget-label, button, select, input, .widget-html-content')]
        .filter(e => e.offsetParent && !e.closest('.nvs'))
        .map(e => [e.tagName + '.' + e.className, parseFloat(getComputedStyle(e).fontSize)])""")
    small = [s for s in sizes if s[1] < 20]
    assert sizes and not small, small[:5]


def test_dark_theme_reads(page):
    base, p = page
    run_notebook(p, base, "00_start_here.ipynb")
    p.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    p.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
    p.wait_for_timeout(500)
    stage = p.locator(".nvs").first
    stage.locator(".nvs-flowbtn").click()
    low = {}
    for sel in (".nvs-head", ".nvs-title", ".nvs-why", ".nvs-chain code", ".nvs-tl-names div", ".nvs-count",
                ".nvs-legend", "td[data-path]", ".nvs-run", ".nvs-flow text"):
        ratio = stage.locator(sel).first.evaluate(CONTRAST)
        if ratio < 4.5:
            low[sel] = round(ratio, 2)
    p.screenshot(path=str(ARTIFACTS / "explorer-dark.png"))
    p.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    assert low == {}


def test_side_by_side_at_1280_keeps_its_cards_whole(lab):
    base, b = lab
    p = b.new_page(viewport={"width": 1280, "height": 720})
    try:
        run_notebook(p, base, "06_nvmx_beside_nsvm.ipynb")
        p.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        side = p.locator(".widget-hbox").filter(has=p.locator(".nvs")).filter(has=p.locator(".nvs-vmx")).first
        side.scroll_into_view_if_needed()
        cut = side.locator(".nvs-card, .nvs-head, .nvs-bar").evaluate_all(
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).textOverflow !== 'ellipsis')"
            ".map(e => e.className)")
        p.screenshot(path=str(ARTIFACTS / "side-by-side-1280.png"))
        assert cut == []
        assert side.locator(".nvs").count() == 2
    finally:
        p.close()
        delete_sessions(base)


def test_a_saved_notebook_reopens_with_its_explorers(page):
    base, p = page
    run_notebook(p, base, "01_three_vmcbs.ipynb")
    p.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    p.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=20_000)
    delete_sessions(base)                         # no kernel: the page draws from the saved state
    p.goto(f"{base}/lab/tree/01_three_vmcbs.ipynb?token={TOKEN}&reset")
    p.wait_for_selector(".nvs .nvs-title", timeout=60_000)
    assert p.locator(".jp-OutputArea-output", has_text="Error displaying widget").count() == 0
    stage = p.locator(".nvs").first
    start = _step(stage)
    stage.get_by_role("button", name="next step").click()
    _wait_step(p, stage, start + 1)
