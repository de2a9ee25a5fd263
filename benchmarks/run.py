"""`make bench`: measured speed and memory of the model, printed as one table.

Targets (issue 2): a VMRUN + #VMEXIT round trip under 2 ms (median);
`import nsvm_model` under 0.2 s with no UI library imported; an explorer
step update p95 under 16 ms in the kernel; a variant switch under 300 ms;
each notebook under 30 s.  Issue 12: each exported page at most 1 MiB and each site at
most 15 MiB; a client-side step paints within one frame (p95 under 16.7 ms exported,
under 50 ms in JupyterLab); the first stage paints within 3 s while outside requests hang.  Issue 13: the whole oracle
(every kvm-unit-tests and selftests case) runs through the model in under 30 s.
`--quick` leaves out the notebooks and the browser.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nsvm_model as nm  # noqa: E402

ROWS = []
ROOT = Path(__file__).resolve().parents[1]


def row(name, value, unit, target=""):
    ROWS.append((name, value, unit, target))


def timed(fn, n):
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def bench_model():
    for isa_name, preset in (("svm", "round_trip"), ("svm", "default"), ("svm", "asid_zero"),
                             ("svm", "msrpm_unbacked"), ("vmx", "round_trip"), ("vmx", "default"),
                             ("vmx", "vpid_zero")):
        sc = nm.Scenario.preset(isa_name, preset)
        nm.run(sc)
        med, p95 = timed(lambda: nm.run(sc), 300)
        target = "< 2 ms median" if preset == "round_trip" else ""
        row(f"{isa_name} {preset} ({len(nm.run(sc).steps)} steps) median", f"{med * 1e3:.2f}", "ms", target)
        row(f"{isa_name} {preset} p95", f"{p95 * 1e3:.2f}", "ms")
    sc = nm.Scenario.preset("svm", "round_trip")
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 2.0:
        nm.run(sc)
        n += 1
    row("svm round-trip traces per second", f"{n / (time.perf_counter() - t0):.0f}", "1/s")


def bench_import():
    code = ("import sys, time; t=time.perf_counter(); import nsvm_model; "
            "d=time.perf_counter()-t; ui=[m for m in ('ipywidgets','matplotlib','graphviz','IPython') "
            "if m in sys.modules]; print(__import__('json').dumps([d, ui]))")
    results = []
    for _ in range(7):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        results.append(json.loads(out.stdout))
    med = statistics.median(r[0] for r in results)
    row("import nsvm_model (fresh interpreter, median of 7)", f"{med * 1e3:.1f}", "ms", "< 200 ms")
    row("UI libraries imported by nsvm_model", ",".join(results[0][1]) or "none", "", "none")


def bench_widgets():
    import gc
    import tracemalloc
    from widgets import VmrunExplorer

    t0 = time.perf_counter()
    ex = VmrunExplorer(nm.Scenario.svm())
    row("explorer first build (imports, dot layout, stage data)", f"{(time.perf_counter() - t0) * 1e3:.0f}", "ms")
    n = len(ex.trace.steps)
    samples = []
    for k in range(400):
        t0 = time.perf_counter()
        ex.step = (k * 7) % n
        samples.append(time.perf_counter() - t0)
    samples.sort()
    row("explorer step update p50 (kernel side)", f"{statistics.median(samples) * 1e3:.2f}", "ms")
    row("explorer step update p95 (kernel side)", f"{samples[int(0.95 * len(samples))] * 1e3:.2f}", "ms", "< 16 ms")
    switches = []
    for variant in ("v6-unified", "upstream", "v6.6-order", "upstream", "pre-gif-fix", "upstream"):
        t0 = time.perf_counter()
        ex.whatif.variant.value = variant
        switches.append(time.perf_counter() - t0)
    row("variant switch, first time per variant (max)", f"{max(switches[:3]) * 1e3:.0f}", "ms", "< 300 ms")
    row("variant switch, median", f"{statistics.median(switches) * 1e3:.0f}", "ms", "< 300 ms")
    gc.collect()
    tracemalloc.start()
    for k in range(1000):
        ex.step = k % n if (k // n) % 2 == 0 else n - 1 - k % n
    gc.collect()
    first, _ = tracemalloc.get_traced_memory()
    for k in range(1000):
        ex.step = k % n if (k // n) % 2 == 0 else n - 1 - k % n
    gc.collect()
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row("memory growth over 1,000 more steps back and forth", f"{(second - first) / 1024:.1f}", "KiB", "~0")


def bench_notebooks():
    """Each notebook executed headless (nbclient), as `make test` and `make html` do."""
    import nbformat
    from nbclient import NotebookClient

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        row(f"notebook {path.stem}", f"{time.perf_counter() - t0:.1f}", "s", "< 30 s")


# From the input event that steps (a key, a click) to the end of the frame that shows the new
# card: a callback queued from requestAnimationFrame runs once that frame has been rendered.  A
# step drawn within the event's own frame measures under 16.7 ms (at 60 Hz).
PAINT_PROBE = """() => {
  window.__lat = [];
  const step = () => document.querySelector('.nvs .nvs-title')?.dataset.step;
  const start = () => {
    const t0 = performance.now(), before = step();
    const frame = () => requestAnimationFrame(() => setTimeout(() => {
      if (step() !== before) window.__lat.push(performance.now() - t0);
      else if (performance.now() - t0 < 3000) frame();
    }, 0));
    frame();
  };
  document.addEventListener('keydown', start, true);
  document.addEventListener('click', start, true);
}"""


def paint_rows(page, where, target):
    """Input-to-paint of the first stage: from the key or click event to the frame after the card
    changed, measured in the page (performance.now), so Playwright's round trips do not count."""
    page.evaluate(PAINT_PROBE)
    stage = page.locator(".nvs").first
    cases = (("arrow key", lambda: page.keyboard.press("ArrowRight")),
             ("next button", lambda: stage.get_by_role("button", name="next step").click()))
    for label, act in cases:
        stage.locator(".nvs-card").click()
        page.keyboard.press("Home")
        page.wait_for_timeout(300)
        page.evaluate("() => { window.__lat = []; }")
        for _ in range(30):
            act()
            page.wait_for_timeout(120)
        samples = sorted(page.evaluate("() => window.__lat"))
        row(f"step paint p50, {label}, {where}", f"{statistics.median(samples):.1f}", "ms")
        row(f"step paint p95, {label}, {where}", f"{samples[int(0.95 * (len(samples) - 1))]:.1f}", "ms", target)


def bench_browser():
    """A client-side step in Chromium, in JupyterLab and in an exported page (Play steps through the
    same paint as a key)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from lab import browser, jupyterlab, run_notebook

    if not Path("/usr/bin/chromium").exists():
        row("step paint in the browser", "n/a", "", "needs /usr/bin/chromium")
        return
    with jupyterlab() as base, browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 720})
        run_notebook(page, base, "00_start_here.ipynb")
        paint_rows(page, "JupyterLab", "< 50 ms")
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 720})
        page.goto((ROOT / "build" / "html" / "00_start_here.html").as_uri())
        page.locator(".nvs .nvs-title").first.wait_for(timeout=30_000)
        paint_rows(page, "exported page", "< 16.7 ms")


def bench_exported():
    """`make html` and `make slides`: page sizes, site sizes, and the first stage painted while every
    request outside the folder hangs."""
    subprocess.run(["make", "html", "slides"], cwd=ROOT, check=True, capture_output=True)
    for site, pattern in (("html", "*.html"), ("slides", "*.slides.html")):
        folder = ROOT / "build" / site
        pages = sorted(folder.glob(pattern), key=lambda p: p.stat().st_size)
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        row(f"largest exported page, {site} ({pages[-1].name})", f"{pages[-1].stat().st_size / 2**20:.2f}", "MiB",
            "<= 1 MiB")
        row(f"whole {site} site ({len(pages)} pages and vendor/)", f"{total / 2**20:.1f}", "MiB", "<= 15 MiB")
    lite = ROOT / "build" / "lite"
    if lite.is_dir():                                 # make lite: Pyodide and JupyterLab in one folder
        size = sum(p.stat().st_size for p in lite.rglob("*") if p.is_file())
        row("JupyterLite site (make lite, when built)", f"{size / 2**20:.1f}", "MiB")
    if not Path("/usr/bin/chromium").exists():
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from lab import browser
    with browser() as b:
        for page_path in (ROOT / "build" / "html" / "00_start_here.html",
                          sorted((ROOT / "build" / "slides").glob("*.slides.html"))[0]):
            page = b.new_page(viewport={"width": 1280, "height": 720})
            folder = page_path.parent.as_uri()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((folder, "blob:", "data:"))
                       else None)                             # outside requests hang: never answered
            t0 = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="commit")
            page.locator(".nvs .nvs-title").first.wait_for(state="attached", timeout=30_000)
            row(f"first stage painted, outside requests hanging ({page_path.name})",
                f"{time.perf_counter() - t0:.2f}", "s", "< 3 s")
            page.close()


def bench_oracle():
    """Build and run every oracle case as the tests do (their scenario_for())."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_kut_svm, test_kut_vmx, test_oracle_svm, test_oracle_vmx, test_selftests_oracle  # noqa: E401,E402

    suites = (("oracle table svm", test_oracle_svm.CASES, test_oracle_svm.scenario_for),
              ("oracle table vmx", test_oracle_vmx.CASES, test_oracle_vmx.scenario_for),
              ("kvm-unit-tests svm", test_kut_svm.CASES, test_kut_svm.scenario_for),
              ("kvm-unit-tests vmx", test_kut_vmx.CASES, test_kut_vmx.scenario_for),
              ("selftests", test_selftests_oracle.CASES, test_selftests_oracle.scenario_for))
    total_t, total_n = 0.0, 0
    for name, cases, scenario_for in suites:
        t0 = time.perf_counter()
        for case in cases:
            nm.run(scenario_for(case))
        took = time.perf_counter() - t0
        total_t, total_n = total_t + took, total_n + len(cases)
        row(f"oracle: {name}, {len(cases)} cases", f"{took:.2f}", "s")
    row(f"oracle: all {total_n} cases", f"{total_t:.2f}", "s", "< 30 s")


def bench_memory():
    row("peak RSS of this benchmark process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        "MiB")


def main():
    bench_import()
    bench_model()
    bench_widgets()
    bench_oracle()
    bench_memory()
    if "--quick" not in sys.argv:
        bench_notebooks()
        bench_exported()
        bench_browser()
    width = max(len(r[0]) for r in ROWS)
    print(f"{'measure':<{width}}  {'value':>10}  {'unit':<4}  target")
    print("-" * (width + 30))
    for name, value, unit, target in ROWS:
        print(f"{name:<{width}}  {value:>10}  {unit:<4}  {target}")


if __name__ == "__main__":
    main()
