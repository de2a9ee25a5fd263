"""Colours (Okabe-Ito) and the CSS of the kernel-side panels.

Colour is never the only signal: a broken rule is ✗, a failing phase "fails here"; the stage
(stage.css) marks written, changed and read fields with ✎, ✎Δ and •.  Text and backgrounds
use JupyterLab's theme variables, so light and dark themes both read well.
"""

OKABE_ITO = {
    "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999",
}
CURRENT = OKABE_ITO["blue"]
BROKEN = OKABE_ITO["vermillion"]

# The panels drawn by ipywidgets (what-if, the side by side's phase banner); the stage has its
# own stylesheet (stage.css).
CSS = f"""
<style>
.nv-root {{ font-family: var(--jp-ui-font-family, sans-serif); color: var(--jp-ui-font-color1, #111);
           font-size: 13px; }}
/* presenter mode (ticked on the stage) makes the what-if panel's text at least 20 px too: the
   widgets' own font rules would win otherwise */
.nv-root.nv-presenter, .nv-root.nv-presenter .widget-html-content, .nv-root.nv-presenter .nv-legend,
.nv-root.nv-presenter .widget-label, .nv-root.nv-presenter .jupyter-button,
.nv-root.nv-presenter .widget-dropdown select, .nv-root.nv-presenter input,
.nv-root.nv-presenter code {{ font-size: 20px !important; }}
.nv-legend {{ font-size: 0.85em; color: var(--jp-ui-font-color2, #555); margin: 2px 0 6px 0; }}
.nv-error {{ color: {BROKEN}; font-weight: bold; }}
.nv-broken li {{ margin-bottom: 3px; }}
.nv-broken .nv-x {{ color: {BROKEN}; font-weight: bold; }}
.nv-phase {{ font-weight: bold; color: {CURRENT}; }}
.nv-banner {{ background: {OKABE_ITO["yellow"]}66; padding: 4px 8px; border-left: 4px solid {OKABE_ITO["orange"]};
             color: var(--jp-ui-font-color1, #111); }}
body[data-jp-theme-light="false"] .nv-phase {{ color: {OKABE_ITO["sky"]}; }}
body[data-jp-theme-light="false"] .nv-banner {{ background: #4a4418; }}
</style>
"""
