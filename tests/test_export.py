"""`make html`: a static site whose precomputed steppers step with no kernel and no network."""

import subprocess
from pathlib import Path

import pytest

from lab import ROOT, browser
from test_browser import _browser_available

SITE = ROOT / "build" / "html"


@pytest.fixture(scope="module")
def site():
    if not _browser_available():
        pytest.skip("no browser")
    subprocess.run(["make", "html"], cwd=ROOT, check=True, capture_output=True)
    return SITE


def test_every_notebook_is_exported(site):
    names = {p.stem for p in site.glob("*.html")}
    assert names == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert (site / "vendor").is_dir()


def _offline(page, folder: Path, hang: bool = False) -> list:
    """Requests leaving `folder` are recorded, then refused, or left hanging (weak wifi)."""
    outside = []

    def route(r):
        url = r.request.url
        if url.startswith((folder.as_uri(), "blob:", "data:")):
            return r.continue_()
        outside.append(url)
        if not hang:
            r.abort()                    # a hanging request is simply never answered
    page.route("**/*", route)
    return outside


@pytest.mark.parametrize("hang", [False, True], ids=["refused", "hanging"])
def test_stepping_works_with_no_kernel_and_no_network(site, hang):
    missing = []
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 720})
        outside = _offline(page, site, hang)
        page.on("requestfailed", lambda r: missing.append(r.url) if r.url.startswith("file:") else None)
        page.goto((site / "00_start_here.html").as_uri(), wait_until="commit")
        stage = page.locator(".nvs").first
        stage.locator(".nvs-title").wait_for(timeout=30_000)
        start = int(stage.locator(".nvs-title").get_attribute("data-step"))
        stage.locator(".nvs-card").click()
        page.keyboard.press("ArrowRight")
        stage.locator(f".nvs-title[data-step='{start + 1}']").wait_for(timeout=5_000)
        page.keyboard.press("End")
        assert int(stage.locator(".nvs-title").get_attribute("data-step")) > start + 1
        play = stage.locator(".nvs-play")
        assert play.is_visible() and play.inner_text().strip() == "▶ Play"       # text, no icon font
        page.keyboard.press("Home")
        play.click()
        page.wait_for_function("() => +document.querySelector('.nvs .nvs-title').dataset.step >= 1", timeout=5_000)
        play.click()
        assert "what-if panel needs a running kernel" in page.inner_text("body")
        page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / "exported-00.png"))
    assert not outside, outside                   # no request left the folder, none was even tried
    assert not missing, missing                   # and every file the page asked for is there


def test_the_site_ships_only_what_pages_load(site):
    shipped = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert not [p for p in shipped if p.endswith((".tgz", ".map", ".ts"))]
    assert "vendor/require.js" in shipped
    assert "vendor/embed-amd.js" in shipped and "vendor/anywidget.js" in shipped


@pytest.fixture(scope="module")
def decks():
    if not _browser_available():
        pytest.skip("no browser")
    subprocess.run(["make", "slides"], cwd=ROOT, check=True, capture_output=True)
    return sorted((ROOT / "build" / "slides").glob("*.slides.html"))


@pytest.mark.parametrize("hang", [False, True], ids=["refused", "hanging"])
def test_slides_open_with_no_request_outside_their_folder(decks, hang):
    assert len(decks) == 4
    with browser() as b:
        for deck in decks:
            missing = []
            page = b.new_page(viewport={"width": 1280, "height": 720})
            outside = _offline(page, deck.parent, hang)
            page.on("requestfailed", lambda r: missing.append(r.url) if r.url.startswith("file:") else None)
            page.goto(deck.as_uri(), wait_until="commit")
            page.wait_for_selector(".reveal.ready", timeout=30_000)         # reveal.js initialized
            page.locator(".nvs .nvs-title").first.wait_for(state="attached", timeout=30_000)
            assert not outside and not missing, (deck.name, outside, missing)
            page.close()


@pytest.mark.parametrize("deck", ["02_successful_vmrun", "06_nvmx_beside_nsvm"])
def test_a_slide_shows_the_whole_stage(decks, deck):
    """The slide holding the first explorer (06: the nSVM and nVMX side by side) shows it alone,
    in presenter size, with controls, card, focused rows and position inside the slide."""
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 720})
        page.goto((ROOT / "build" / "slides" / f"{deck}.slides.html").as_uri())
        page.wait_for_selector(".reveal.ready", timeout=30_000)
        first = page.locator(".nvs").first
        first.locator(".nvs-title").wait_for(state="attached", timeout=30_000)
        h, v = first.evaluate("""e => { const s = e.closest('section'), p = s.parentElement;
            const i = [...p.children].indexOf(s);
            return p.tagName === 'SECTION' ? [[...p.parentElement.children].indexOf(p), i] : [i, 0]; }""")
        page.evaluate(f"() => {{ location.hash = '#/{h}/{v}'; }}")
        page.wait_for_timeout(1500)
        stages = page.locator("section.present .nvs")
        assert stages.count() == (2 if deck.startswith("06") else 1)
        assert first.evaluate("e => e.closest('section').querySelectorAll('.jp-InputArea').length") == 0
        page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / f"slide-stage-{deck[:2]}.png"))
        for k in range(stages.count()):
            stage = stages.nth(k)
            assert "nvs-presenter" in stage.get_attribute("class")
            for sel in (".nvs-bar", ".nvs-title", "td[data-path]", ".nvs-chain", ".nvs-mark"):
                box = stage.locator(sel).first.bounding_box()
                assert box and 0 <= box["y"] and box["y"] + box["height"] <= 720, (k, sel)
