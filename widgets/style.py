"""Colours (Okabe-Ito) and the CSS every view shares.

Colour is never the only signal: a field written with the value it had gets
✎, a field whose value changed ✎Δ and an outline, a read field •, the current
VMCB a ◀ pointer, a broken rule ✗.  Text and backgrounds use
JupyterLab's theme variables, so light and dark themes both read well.
"""

OKABE_ITO = {
    "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999",
}
WRITE = OKABE_ITO["orange"]
READ = OKABE_ITO["sky"]
CURRENT = OKABE_ITO["blue"]
BROKEN = OKABE_ITO["vermillion"]
OK = OKABE_ITO["green"]

WRITE_GLYPH = "✎"
CHANGE_GLYPH = "Δ"
READ_GLYPH = "•"
POINTER_GLYPH = "◀"

CSS = f"""
<style>
.nv-root {{ font-family: var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color1, #111);
           font-size: 13px; }}
.nv-root.nv-presenter {{ font-size: 20px; }}
/* every text of the explorer at least 20 px on a projector: the widgets' own font rules and the
   tables' smaller em sizes would win otherwise */
.nv-root.nv-presenter .widget-html-content, .nv-root.nv-presenter .nv-tbl,
.nv-root.nv-presenter .nv-legend, .nv-root.nv-presenter .nv-card .nv-meta,
.nv-root.nv-presenter .nv-focus, .nv-root.nv-presenter .widget-label,
.nv-root.nv-presenter .widget-readout, .nv-root.nv-presenter .jupyter-button,
.nv-root.nv-presenter .widget-dropdown select, .nv-root.nv-presenter input,
.nv-root.nv-presenter summary {{ font-size: 20px !important; }}
.nv-root.nv-presenter .nv-diagram svg, .nv-root.nv-presenter .nv-timeline svg {{ zoom: 1.4; }}
.nv-frame {{ display: grid; grid-template-columns: minmax(0, 1fr) minmax(280px, 420px); gap: 10px;
             align-items: start; }}
.nv-wide {{ grid-column: 1 / span 2; }}
.nv-state {{ grid-column: 1 / span 2; display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }}
.nv-state > .nv-scroll {{ flex: 1 1 auto; max-width: 100%; }}
.nv-scroll {{ overflow-x: auto; }}
.nv-card {{ border-left: 5px solid {CURRENT}; padding: 6px 10px; background: var(--jp-layout-color2, #f4f4f4);
           grid-column: 1 / span 2; }}
.nv-card h3 {{ margin: 0 0 4px 0; font-size: 1.15em; }}
.nv-card .nv-meta {{ color: var(--jp-ui-font-color2, #555); font-size: 0.92em; }}
.nv-card .nv-note {{ margin: 2px 0; }}
.nv-card .nv-fail {{ color: {BROKEN}; font-weight: bold; }}
.nv-tbl {{ border-collapse: collapse; font-family: var(--jp-code-font-family, monospace); font-size: 0.85em;
           line-height: 1.25; }}
.nv-tbl th, .nv-tbl td {{ border: 1px solid var(--jp-border-color2, #ccc); padding: 0 4px; text-align: left;
                          white-space: nowrap; vertical-align: top; }}
.nv-tbl td {{ min-width: 6em; max-width: 26em; white-space: normal; overflow-wrap: anywhere; }}
.nv-tbl th {{ background: var(--jp-layout-color2, #eee); }}
.nv-tbl th.nv-current {{ border: 3px solid {CURRENT}; }}
.nv-tbl td.nv-w {{ background: {WRITE}33; }}
.nv-tbl td.nv-c {{ background: {WRITE}77; font-weight: bold; outline: 2px solid {WRITE}; outline-offset: -2px; }}
.nv-tbl td.nv-r {{ box-shadow: inset 0 -3px 0 {READ}; }}
.nv-tbl td.nv-current-col {{ border-left: 3px solid {CURRENT}; border-right: 3px solid {CURRENT}; }}
.nv-ptr {{ color: {CURRENT}; font-weight: bold; }}
.nv-legend {{ font-size: 0.85em; color: var(--jp-ui-font-color2, #555); margin: 2px 0 6px 0; }}
.nv-legend .nv-w {{ background: {WRITE}33; padding: 0 3px; }}
.nv-legend .nv-c {{ background: {WRITE}77; font-weight: bold; outline: 2px solid {WRITE}; outline-offset: -2px; }}
.nv-focus {{ font-size: 0.9em; font-style: italic; margin: 2px 0; }}
.nv-legend .nv-r {{ box-shadow: inset 0 -3px 0 {READ}; padding: 0 3px; }}
.nv-panels details {{ margin-bottom: 4px; }}
.nv-panels summary {{ cursor: pointer; font-weight: bold; }}
.nv-error {{ color: {BROKEN}; font-weight: bold; }}
.nv-broken li {{ margin-bottom: 3px; }}
.nv-broken .nv-x {{ color: {BROKEN}; font-weight: bold; }}
.nv-diagram, .nv-timeline {{ overflow: auto; max-height: 520px; }}
.nv-side {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }}
.nv-phase {{ font-weight: bold; color: {CURRENT}; }}
.nv-banner {{ background: {OKABE_ITO["yellow"]}66; padding: 4px 8px; border-left: 4px solid {OKABE_ITO["orange"]};
             color: var(--jp-ui-font-color1, #111); }}
body[data-jp-theme-light="false"] .nv-ptr, body[data-jp-theme-light="false"] .nv-phase,
body[data-jp-theme-light="false"] .nv-card a {{ color: {OKABE_ITO["sky"]}; }}
body[data-jp-theme-light="false"] .nv-tbl th.nv-current,
body[data-jp-theme-light="false"] .nv-tbl td.nv-current-col {{ border-color: {OKABE_ITO["sky"]}; }}
</style>
"""
