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
    blocked = []
    with browser() as b:
        page = b.new_page(viewport={"width": 1300, "height": 1600})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                   else (blocked.append(r.request.url), r.abort()))
        page.goto((site / "00_start_here.html").as_uri())
        page.wait_for_selector(".nv-card", timeout=30_000)

        def visible_step():
            return [c.get_attribute("data-step") for c in page.locator(".nv-card").all() if c.is_visible()][0]

        start = int(visible_step())
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => [...document.querySelectorAll('.nv-card')].some(e => e.offsetParent && e.dataset.step == '{start + 1}')")
        page.keyboard.press("End")
        page.wait_for_timeout(300)
        assert int(visible_step()) > start + 1
        assert "what-if panel need a running kernel" in page.inner_text("body")
        page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / "exported-00.png"))
    assert all("mathjax" in u.lower() for u in blocked), blocked      # nothing else left the machine
