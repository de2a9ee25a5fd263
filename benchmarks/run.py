"""`make bench`: measured speed and memory of the model, printed as one table.

Targets (issue 2): a VMRUN + #VMEXIT round trip under 2 ms (median);
`import nsvm_model` under 0.2 s with no UI library imported; an explorer
step update p95 under 16 ms in the kernel; a variant switch under 300 ms;
click-to-paint p95 under 100 ms in the browser; each notebook under 30 s.
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
    row("explorer first build (imports, dot layout, timeline)", f"{(time.perf_counter() - t0) * 1e3:.0f}", "ms")
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


PAINT_PROBE = """(selector) => {
  window.__lat = [];
  const visibleStep = () => [...document.querySelectorAll('.nv-card')].find(e => e.offsetParent)?.dataset.step;
  const start = () => {
    const t0 = performance.now(), before = visibleStep();
    const tick = () => { if (visibleStep() !== before) requestAnimationFrame(() => window.__lat.push(performance.now() - t0));
                         else if (performance.now() - t0 < 3000) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  };
  document.addEventListener('keydown', start, true);
  document.addEventListener('mousedown', start, true);
}"""


def bench_browser():
    """Click-to-paint in JupyterLab: from the input event to the frame that shows the new step card.

    Measured in the page (performance.now, up to the next animation frame after the card
    changed), so Playwright's own round trips are not counted.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from lab import browser, jupyterlab, run_notebook

    if not Path("/usr/bin/chromium").exists():
        row("click-to-paint in the browser", "n/a", "", "needs /usr/bin/chromium")
        return
    with jupyterlab() as base, browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1600})
        run_notebook(page, base, "00_start_here.ipynb")
        page.evaluate(PAINT_PROBE)
        root = page.locator(".nv-root").first
        cases = (("Next button (kernel round trip)", lambda: root.get_by_role("button", name="Next ▶").click()),
                 ("arrow key on the slider (client only)", lambda: page.keyboard.press("ArrowRight")))
        for label, act in cases:
            root.get_by_role("button", name="|◀ First").click()
            page.wait_for_timeout(300)
            if "arrow" in label:
                root.locator(".widget-slider .noUi-handle").first.focus()
            page.evaluate("() => { window.__lat = []; }")
            for _ in range(30):
                act()
                page.wait_for_timeout(150)
            samples = sorted(page.evaluate("() => window.__lat"))
            row(f"click-to-paint p50, {label}", f"{statistics.median(samples):.0f}", "ms")
            row(f"click-to-paint p95, {label}", f"{samples[int(0.95 * (len(samples) - 1))]:.0f}", "ms", "< 100 ms")


def bench_memory():
    row("peak RSS of this benchmark process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        "MiB")


def main():
    bench_import()
    bench_model()
    bench_widgets()
    bench_memory()
    if "--quick" not in sys.argv:
        bench_notebooks()
        bench_browser()
    width = max(len(r[0]) for r in ROWS)
    print(f"{'measure':<{width}}  {'value':>10}  {'unit':<4}  target")
    print("-" * (width + 30))
    for name, value, unit, target in ROWS:
        print(f"{name:<{width}}  {value:>10}  {unit:<4}  {target}")


if __name__ == "__main__":
    main()
