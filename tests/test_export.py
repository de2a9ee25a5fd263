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


def test_stepping_works_with_no_kernel_and_no_network(site):
    blocked, missing = [], []
    with browser() as b:
        page = b.new_page(viewport={"width": 1300, "height": 1600})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                   else (blocked.append(r.request.url), r.abort()))
        page.on("requestfailed", lambda r: missing.append(r.url) if r.url.startswith("file:") else None)
        page.goto((site / "00_start_here.html").as_uri())
        page.wait_for_selector(".nv-card", timeout=30_000)

        def visible_step():
            return [c.get_attribute("data-step") for c in page.locator(".nv-card").all() if c.is_visible()][0]

        start = int(visible_step())
        handle = page.locator(".nv-root .widget-slider .noUi-handle").first      # the step slider
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => [...document.querySelectorAll('.nv-card')].some(e => e.offsetParent && e.dataset.step == '{start + 1}')")
        page.keyboard.press("End")
        page.wait_for_timeout(300)
        assert int(visible_step()) > start + 1
        assert "what-if panel need a running kernel" in page.inner_text("body")
        icons = page.evaluate("""() => [...document.querySelectorAll('.widget-play button i, .jupyter-button i')]
            .filter(i => i.offsetParent).map(i => getComputedStyle(i, '::before').fontFamily)""")
        fonts_ok = page.evaluate("() => document.fonts.check('16px FontAwesome')")
        page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / "exported-00.png"))
    assert not blocked, blocked                   # no request left the folder, not even one refused
    assert not missing, missing                   # and every file the page asked for is there
    assert icons and fonts_ok                     # the Play icons draw from the shipped font


def test_the_site_ships_only_what_pages_load(site):
    shipped = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert not [p for p in shipped if p.endswith((".tgz", ".map", ".ts"))]
    assert "vendor/require.js" in shipped
    assert "vendor/embed-amd.js" in shipped and any(p.startswith("@jupyter-widgets/") for p in shipped)


@pytest.fixture(scope="module")
def decks():
    if not _browser_available():
        pytest.skip("no browser")
    subprocess.run(["make", "slides"], cwd=ROOT, check=True, capture_output=True)
    return sorted((ROOT / "build" / "slides").glob("*.slides.html"))


def test_slides_open_with_no_request_outside_their_folder(decks):
    assert len(decks) == 4
    with browser() as b:
        for deck in decks:
            blocked, missing = [], []
            page = b.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else (blocked.append(r.request.url), r.abort()))
            page.on("requestfailed", lambda r: missing.append(r.url) if r.url.startswith("file:") else None)
            page.goto(deck.as_uri())
            page.wait_for_selector(".reveal.ready", timeout=30_000)         # reveal.js initialized
            page.wait_for_timeout(1000)
            assert not blocked and not missing, (deck.name, blocked, missing)
            assert page.evaluate("() => document.fonts.check('16px FontAwesome')"), deck.name
            page.close()
