"""Trace -> HTML/SVG.  Views only: every value shown comes from the trace.

Per step, a frame holds the step card, the VMCB/VMCS panel, the vCPU table,
and two tiny SVGs that <use> the timeline and the flow diagram drawn once
per trace and per flow (defs()), with the current step marked on top.  So
stepping swaps small frames, never re-runs matplotlib or dot, and works in
an exported page with no kernel.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import html
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import nsvm_model as nm
from nsvm_model.phases import PHASES
from nsvm_model.text import show_value

from .style import BROKEN, CHANGE_GLYPH, CURRENT, OKABE_ITO, POINTER_GLYPH, READ_GLYPH, WRITE_GLYPH

esc = html.escape

# --- which structures each ISA's panel shows (view configuration) -------------

PANELS = {
    "svm": {
        "pointer": ("svm.current_vmcb", "svm->vmcb"),
        "columns": (("vmcb01", "vmcb01.{g}.{f}"), ("vmcb02", "vmcb02.{g}.{f}"),
                    ("vmcb12", "vmcb12.{g}.{f}"), ("cached vmcb12", "nested.{c}.{f}")),
        "groups": (("control", "ctl"), ("save", "save")),
        "folded": ("save: segments and descriptor tables",),
        "always": ("control.intercepts", "control.asid", "control.int_ctl", "control.msrpm_base_pa",
                   "control.exit_code", "control.event_inj", "save.efer", "save.cr0", "save.cr3", "save.cr4",
                   "save.rip"),
    },
    "vmx": {
        "pointer": ("vmx.current_vmcs", "vmx->loaded_vmcs"),
        "columns": (("vmcs01", "vmcs01.{f}"), ("vmcs02", "vmcs02.{f}"), ("vmcs12", "vmcs12.{f}")),
        "groups": (("controls", None), ("guest state", "guest_"), ("host state", "host_"),
                   ("exit information", None)),
        "folded": ("guest segments and descriptor tables",),
        "always": ("pin_based_vm_exec_control", "cpu_based_vm_exec_control", "secondary_vm_exec_control",
                   "vm_entry_controls", "vm_exit_controls", "guest_cr0", "guest_cr3", "guest_cr4", "guest_rip",
                   "host_cr3", "host_rip", "vm_instruction_error", "vm_exit_reason", "exit_qualification"),
    },
}
EXIT_INFO = ("vm_instruction_error", "vm_exit_reason", "exit_qualification", "launch_state")

VCPU_ROWS = {
    "svm": ("svm.current_vmcb", "vcpu.guest_mode", "vcpu.gif", "svm.gif_location", "vcpu.rip", "vcpu.arch.cr0",
            "vcpu.arch.cr3", "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.arch.mmu", "vcpu.arch.root_mmu.cpu_role",
            "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.pgd", "vcpu.arch.guest_mmu.cpu_role",
            "vcpu.arch.guest_mmu.root_role.guest_mode", "vcpu.arch.guest_mmu.pgd", "vcpu.arch.pdptrs_status",
            "vcpu.arch.nested_run_pending", "vcpu.arch.tsc_offset", "vcpu.arch.exception", "vcpu.requests",
            "kvm_run.exit_reason"),
    "vmx": ("vmx.current_vmcs", "vcpu.guest_mode", "vcpu.rip", "vcpu.arch.rflags", "vcpu.arch.cr0",
            "vcpu.arch.cr3", "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.arch.mmu", "vcpu.arch.root_mmu.cpu_role",
            "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.pgd", "vcpu.arch.guest_mmu.cpu_role",
            "vcpu.arch.guest_mmu.root_role.guest_mode", "vcpu.arch.guest_mmu.pgd", "vcpu.arch.pdptrs_status",
            "vmx.nested.pre_vmenter_cr3", "vcpu.arch.nested_run_pending", "vcpu.arch.tsc_offset",
            "vcpu.arch.exception", "vcpu.requests", "kvm_run.exit_reason"),
}


def _vmx_group(field: str) -> str:
    if field in EXIT_INFO:
        return "exit information"
    if field.startswith("guest_"):
        return "guest state"
    if field.startswith("host_"):
        return "host state"
    return "controls"


# --- focus: the few state paths a question is about ---------------------------------

FOCUS_EXAMPLE = 'focus=["svm.current_vmcb", "vcpu.gif", "vmcb0*.save.cr3"]'


def focus_patterns(focus) -> tuple:
    """A focus must be a list of strings (paths or fnmatch patterns); else a TypeError naming `focus`."""
    if not isinstance(focus, (list, tuple)) or not all(isinstance(p, str) for p in focus):
        raise TypeError(f"focus: expected a list of state paths or fnmatch patterns, e.g. {FOCUS_EXAMPLE}; "
                        f"got {type(focus).__name__} {focus!r:.60}")
    return tuple(focus)


def check_focus(trace, focus) -> Optional[Tuple[str, ...]]:
    """The focus patterns as a tuple (None for no focus), or a TypeError/ValueError naming `focus`.
    Every pattern must match a state path of the trace: a typo would otherwise hide rows silently."""
    if focus is None:
        return None
    focus_patterns(focus)
    paths = list(trace.initial)
    for pattern in focus:
        if not fnmatch.filter(paths, pattern):
            close = difflib.get_close_matches(pattern, paths, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"focus: {pattern!r:.60} matches no state path of this {trace.isa} trace{hint} "
                             f"(e.g. {FOCUS_EXAMPLE})")
    return tuple(focus) or None             # an empty list focuses on nothing: show everything as usual


def focused(path: Optional[str], focus: Optional[Sequence[str]]) -> bool:
    return path is not None and any(fnmatch.fnmatchcase(path, p) for p in focus)


_PANEL_ROWS: Dict[tuple, tuple] = {}


def panel_rows(trace, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> List[Tuple[str, str]]:
    """(group, field) rows: with a focus, those with a cell the focus names; else the fields the trace
    writes in any column (same value or not), plus a few always shown; with show_all, every field."""
    focus = None if show_all or not focus else tuple(focus)
    key = (id(trace), show_all, focus)
    hit = _PANEL_ROWS.get(key)
    if hit and hit[0] is trace:
        return hit[1]
    if len(_PANEL_ROWS) > 32:
        _PANEL_ROWS.clear()
    rows = _panel_rows(trace, show_all, focus)
    _PANEL_ROWS[key] = (trace, rows)
    return rows


def _panel_rows(trace, show_all, focus):
    cfg = PANELS[trace.isa]
    written = {path for s in trace.steps for path in s.written}
    rows = []
    for group, field in _candidate_rows(trace):
        paths = _cell_paths(trace.isa, group, field)
        if focus:
            keep = any(focused(p, focus) for p in paths)
        else:
            keep = (show_all or field in cfg["always"] or f"{group}.{field}" in cfg["always"]
                    or bool(written & set(paths)))
        if keep:
            rows.append((group, field))
    return rows


def vcpu_rows(trace, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> List[str]:
    """The vCPU table's paths; a focus keeps those it names and adds any focused path no table shows
    (e.g. hsave.save.cr3), so every path a question is about is on screen."""
    rows = [p for p in VCPU_ROWS[trace.isa] if p in trace.initial]
    if not focus:
        return rows
    shown = set(rows) | {p for g, f in _candidate_rows(trace) for p in _cell_paths(trace.isa, g, f)}
    extra = [p for p in trace.initial if p not in shown and focused(p, focus)]
    return (rows if show_all else [p for p in rows if focused(p, focus)]) + extra


_ROWS: Dict[str, tuple] = {}


def _all_rows(isa: str, keys: frozenset) -> Tuple[Tuple[str, str], ...]:
    rows = []
    if isa == "svm":
        for group, cached in PANELS["svm"]["groups"]:
            fields = sorted({k.split(".", 2)[2] for k in keys if k.startswith(f"vmcb12.{group}.")}
                            | {k.split(".", 2)[2] for k in keys if k.startswith(f"vmcb01.{group}.")})
            rows += [(group, f) for f in fields]
    else:
        fields = sorted({k.split(".", 1)[1] for k in keys if k.startswith(("vmcs12.", "vmcs01."))
                         and k.count(".") == 1})
        order = [g for g, _ in PANELS["vmx"]["groups"]]
        rows = sorted(((_vmx_group(f), f) for f in fields), key=lambda r: (order.index(r[0]), r[1]))
    return tuple(rows)


def _candidate_rows(trace):
    if trace.isa not in _ROWS:
        _ROWS[trace.isa] = _all_rows(trace.isa, frozenset(trace.initial))
    return _ROWS[trace.isa]


def _cell_paths(isa: str, group: str, field: str) -> List[Optional[str]]:
    out = []
    for _, pattern in PANELS[isa]["columns"]:
        if isa == "svm":
            cached = dict(PANELS["svm"]["groups"])[group]
            out.append(pattern.format(g=group, c=cached, f=field))
        else:
            out.append(pattern.format(f=field))
    return out


class Marks(NamedTuple):
    """What step i did to each path: wrote it, changed it (path -> old value), read it."""
    written: frozenset
    changed: Mapping
    read: frozenset


def marks(trace, i: int) -> Marks:
    if i < 0:
        return Marks(frozenset(), {}, frozenset())
    s = trace.steps[i]
    return Marks(frozenset(s.written), {p: old for p, old, _ in s.diff}, frozenset(s.read))


def _cell(state, path, m: Marks, current_col) -> str:
    if path is None or path not in state:
        return f'<td class="{"nv-current-col" if current_col else ""}"></td>'
    classes, glyph, title = [], "", path
    if path in m.changed:                 # a real change: its own glyph and the old value on hover
        classes.append("nv-w nv-c")
        glyph = WRITE_GLYPH + CHANGE_GLYPH + " "
        title = f"{path}: was {show_value(m.changed[path])}"
    elif path in m.written:               # written with the value it already had
        classes.append("nv-w")
        glyph = WRITE_GLYPH + " "
    elif path in m.read:
        classes.append("nv-r")
        glyph = READ_GLYPH + " "
    if current_col:
        classes.append("nv-current-col")
    return (f'<td class="{" ".join(classes)}" data-path="{esc(path)}" title="{esc(title)}">'
            f'{glyph}{esc(show_value(state[path]))}</td>')


SEGMENT_FIELD = re.compile(r"^(guest_)?(es|cs|ss|ds|fs|gs|ldtr|tr|gdtr|idtr)[._]")


def _title(isa: str, group: str, field: str) -> str:
    """Segment and descriptor-table rows go in a group of their own, folded."""
    if SEGMENT_FIELD.match(field):
        return PANELS[isa]["folded"][0]
    return group


def vmcb_panel(trace, i: int, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> str:
    """The VMCBs (or VMCSs) side by side after step i, this step's writes, changes and reads marked."""
    cfg = PANELS[trace.isa]
    state = trace.state_at(i)
    m = marks(trace, i)
    pointer_path, pointer_name = cfg["pointer"]
    current = state[pointer_path]
    heads = []
    for label, _ in cfg["columns"]:
        is_cur = label == current
        ptr = f' <span class="nv-ptr">{POINTER_GLYPH} {pointer_name}</span>' if is_cur else ""
        heads.append(f'<th class="{"nv-current" if is_cur else ""}">{esc(label)}{ptr}</th>')
    out = ['<div class="nv-panels">']
    rows_by_title = {}
    for group, field in panel_rows(trace, show_all, focus):
        rows_by_title.setdefault(_title(trace.isa, group, field), (group, []))[1].append(field)
    for title, (group, rows) in rows_by_title.items():
        body = []
        for field in rows:
            cells = [_cell(state, p, m, label == current)
                     for (label, _), p in zip(cfg["columns"], _cell_paths(trace.isa, group, field))]
            body.append(f"<tr><th>{esc(field)}</th>{''.join(cells)}</tr>")
        folded = title in cfg["folded"]
        out.append(f'<details{"" if folded else " open"}><summary>{esc(title)}</summary><table class="nv-tbl">'
                   f'<tr><th></th>{"".join(heads)}</tr>{"".join(body)}</table></details>')
    out.append("</div>")
    return "".join(out)


def vcpu_table(trace, i: int, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> str:
    state, m = trace.state_at(i), marks(trace, i)
    rows = [f"<tr><th>{esc(p)}</th>{_cell(state, p, m, False)}</tr>" for p in vcpu_rows(trace, show_all, focus)]
    if not rows:                          # a focus on VMCB fields only: no empty vCPU table
        return ""
    return f'<details open><summary>vCPU</summary><table class="nv-tbl">{"".join(rows)}</table></details>'


SHOW_ALL_HINT = "tick 'show every field' for all"


def focus_note(trace, show_all: bool, focus: Optional[Sequence[str]], hint: str = SHOW_ALL_HINT) -> str:
    """One line saying rows are hidden, so a learner knows where the rest went."""
    if not focus or show_all:
        return ""
    n = len(panel_rows(trace, False, focus)) + len(vcpu_rows(trace, False, focus))
    return f'<div class="nv-focus">focused on {n} field{"s" if n != 1 else ""}; {esc(hint, quote=False)}</div>'


def step_card(trace, i: int) -> str:
    n = len(trace.steps)
    if i < 0:
        return (f'<div class="nv-card"><h3>Before the first step</h3><div class="nv-meta">'
                f'{esc(trace.isa.upper())} {esc(trace.variant)} on scenario {esc(trace.scenario.name)}: '
                f'{n} steps, outcome {esc(trace.outcome)}</div></div>')
    s = trace.steps[i]
    phase_title = PHASES[s.phase][0]
    notes = "".join(f'<div class="nv-note">→ {esc(note)}</div>' for note in s.notes)
    end = ""
    if i == n - 1:
        end = (f'<div class="nv-note"><b>Outcome: {esc(trace.outcome)}'
               f'{" (" + esc(trace.failure) + ")" if trace.failure else ""}</b></div>')
    label = f' <span class="nv-fail">→ {esc(s.label)}</span>' if s.label else ""
    url, _, _ = s.source.partition(" (")
    manual = f' · {esc(s.manual)}' if s.manual else ""
    return (f'<div class="nv-card nv-wide" data-step="{i}" data-step-id="{esc(s.id)}">'
            f'<h3>Step {i + 1}/{n}: {esc(s.title)}{label}</h3>'
            f'<div class="nv-meta"><span class="nv-phase">{esc(s.phase)} {esc(phase_title)}</span> · '
            f'<a href="{esc(url)}" target="_blank" rel="noopener"><code>{esc(s.function)}()</code></a> '
            f'in {esc(s.step.file)} @ {nm.KERNEL_COMMIT[:12]}{manual} · id <code>{esc(s.id)}</code></div>'
            f'<div class="nv-note"><i>Why here:</i> {esc(s.reason)}</div>{notes}{end}</div>')


LEGEND = (f'<div class="nv-legend"><span class="nv-w">{WRITE_GLYPH} written by this step (same value)</span> '
          f'<span class="nv-w nv-c">{WRITE_GLYPH}{CHANGE_GLYPH} changed by this step</span> (hover: the old value) '
          f'<span class="nv-r">{READ_GLYPH} read by this step</span> '
          f'<span class="nv-ptr">{POINTER_GLYPH}</span> the current VMCB/VMCS</div>')


# --- the timeline (matplotlib, once per trace) -----------------------------------

TIMELINE_ROWS = {
    "svm": (("CR3", "vcpu.arch.cr3"), ("MMU", "vcpu.arch.mmu"), ("guest mode", "vcpu.guest_mode"),
            ("GIF", "vcpu.gif"), ("current", "svm.current_vmcb")),
    "vmx": (("CR3", "vcpu.arch.cr3"), ("MMU", "vcpu.arch.mmu"), ("guest mode", "vcpu.guest_mode"),
            ("current", "vmx.current_vmcs")),
}
PALETTE = [OKABE_ITO[c] for c in ("sky", "orange", "green", "purple", "yellow", "blue", "vermillion", "grey")]


def _cr3_label(trace, value) -> str:
    s0 = trace.initial
    names = []
    if value == s0["vcpu.arch.cr3"]:
        names.append("L1 CR3")
    l2 = s0.get("vmcb12.save.cr3", s0.get("vmcs12.guest_cr3"))
    if value == l2:
        names.append("L2 CR3")
    return f"{' = '.join(names) or 'CR3'} {value:#x}"


def _value_label(trace, path, value) -> str:
    if path == "vcpu.arch.cr3":
        return _cr3_label(trace, value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_TIMELINES: Dict[int, tuple] = {}


def timeline_svg(trace) -> Tuple[str, float, float, float, float]:
    """(svg, width_pt, height_pt, x0_pt, x1_pt): the rows drawn over the step axis, made once per trace."""
    hit = _TIMELINES.get(id(trace))
    if hit and hit[0] is trace:
        return hit[1]
    if len(_TIMELINES) > 16:
        _TIMELINES.clear()
    result = _draw_timeline(trace)
    _TIMELINES[id(trace)] = (trace, result)
    return result


def _segments(states, path):
    """(start, length, value) runs of equal values along the steps."""
    runs, start = [], 0
    for k in range(1, len(states) + 1):
        if k < len(states) and states[k][path] == states[start][path]:
            continue
        runs.append((start, k - start, states[start][path]))
        start = k
    return runs


def _draw_timeline(trace):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from io import StringIO

    rows = TIMELINE_ROWS[trace.isa]
    n = len(trace.steps)
    states = [trace.initial] + [s.state for s in trace.steps]
    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(rows) + 0.7), dpi=72)
    try:
        for r, (title, path) in enumerate(rows):
            y = len(rows) - 1 - r
            colors = {}
            for start, length, value in _segments(states, path):
                colors.setdefault(value, PALETTE[len(colors) % len(PALETTE)])
            for value, color in colors.items():
                spans = [(start - 0.5, length) for start, length, v in _segments(states, path) if v == value]
                ax.broken_barh(spans, (y - 0.35, 0.7), facecolors=color, edgecolors="white")
            for start, length, value in _segments(states, path):
                if length >= 2 or start == 0:
                    ax.text(start - 0.35, y, _value_label(trace, path, value), va="center", fontsize=8,
                            color="black", clip_on=True)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([t for t, _ in reversed(rows)], fontsize=9)
        ax.set_xlim(-0.5, n + 0.5)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel("step (0 = before the first step)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.subplots_adjust(left=0.1, right=0.99, top=0.97, bottom=0.62 / (0.42 * len(rows) + 0.7))
        buf = StringIO()
        fig.savefig(buf, format="svg")
        w_in, h_in = fig.get_size_inches()
        box = ax.get_position()
        width, height = w_in * 72, h_in * 72
        return buf.getvalue(), width, height, box.x0 * width, box.x1 * width
    finally:
        plt.close(fig)


def _symbol(svg: str, symbol_id: str) -> str:
    """Turn a whole <svg> document into a <symbol> another SVG can <use>."""
    body = re.sub(r"^.*?<svg\b[^>]*>", "", svg, count=1, flags=re.S)
    body = re.sub(r"</svg>\s*$", "", body.strip())
    view = re.search(r'viewBox="([^"]+)"', svg)
    return f'<symbol id="{symbol_id}" viewBox="{view.group(1) if view else ""}">{body}</symbol>'


def _uid(*parts) -> str:
    return "nv" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:10]


def timeline_id(trace) -> str:
    return _uid("tl", trace.isa, trace.variant, trace.scenario.name, id(trace))


def timeline_marker(trace, i: int) -> str:
    svg, w, h, x0, x1 = timeline_svg(trace)
    n = len(trace.steps)
    x = x0 + (i + 1.5) / (n + 1) * (x1 - x0)
    return (f'<svg class="nv-tl" viewBox="0 0 {w:.1f} {h:.1f}" width="{w:.0f}" height="{h:.0f}">'
            f'<use href="#{timeline_id(trace)}" width="{w:.1f}" height="{h:.1f}"/>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{h - 22:.1f}" stroke="{BROKEN}" stroke-width="2.5"/>'
            f'<text x="{x + 3:.1f}" y="12" font-size="10" fill="{BROKEN}">▼ step {i + 1}</text></svg>')


# --- the flow diagram (graphviz, once per flow) ------------------------------------

def _node(seq: str, idx: int) -> str:
    return f"{seq}@{idx}"


class DotMissing(RuntimeError):
    pass


INSTALL_DOT = ("The flow diagram needs Graphviz's <code>dot</code> program: "
               "<code>sudo apt-get install graphviz</code> (Debian/Ubuntu), <code>brew install graphviz</code> "
               "(macOS) or <code>conda install -c conda-forge graphviz</code>. Everything else works without it.")


_LAYOUTS: Dict[str, tuple] = {}


def flow_layout(flow, keep: Optional[frozenset] = None):
    """Lay the flow out once: (svg, node boxes, group transform, width, height, groups), cached per
    flow and per set of sequences drawn (`keep`: the kernel functions a run entered; None: all)."""
    key = (diagram_id(flow), keep)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _layout(flow, keep)
    return _LAYOUTS[key]


def entered_sequences(trace) -> frozenset:
    """The sequences (kernel functions) a run entered: the diagram draws only these."""
    return frozenset(seq for s in trace.steps for seq, _ in s.pos)


def _layout(flow, keep: Optional[frozenset] = None):
    import graphviz

    g = graphviz.Digraph(graph_attr={"rankdir": "TB", "fontname": "Helvetica", "fontsize": "11",
                                     "nodesep": "0.15", "ranksep": "0.18", "compound": "true", "newrank": "true"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white",
                                    "fontname": "Helvetica", "fontsize": "9", "height": "0.22", "margin": "0.05,0.02"},
                         edge_attr={"arrowsize": "0.5"})
    first: Dict[str, str] = {}
    sequences = {k: v for k, v in flow.sequences.items() if keep is None or k in keep}
    for seq, entries in sequences.items():
        with g.subgraph(name=f"cluster_{seq}") as c:
            c.attr(label=f"{seq}()" if not seq.startswith(("early", "late", "unified", "fail", "rsm"))
                   else seq, color=OKABE_ITO["grey"], fontname="Helvetica")
            prev = None
            for idx, entry in enumerate(entries):
                node = _node(seq, idx)
                first.setdefault(seq, node)
                label = ("call " + entry[5:] + "()") if entry.startswith("call:") else entry.split(".", 1)[1]
                c.node(node, label, fillcolor=OKABE_ITO["yellow"] + "55" if entry.startswith("call:") else "white")
                if prev:
                    c.edge(prev, node)
                prev = node
    for seq, entries in sequences.items():
        for idx, entry in enumerate(entries):
            if entry.startswith("call:") and entry[5:] in first:
                g.edge(_node(seq, idx), first[entry[5:]], style="dotted", color=OKABE_ITO["blue"])
    for key, target in flow.on.items():
        sid, _, label = key.rpartition(":")
        target = target.removeprefix("unwind:")
        if target.startswith("end:") or target not in first or label == "done":
            continue
        for seq, entries in sequences.items():
            for idx, entry in enumerate(entries):
                if entry == sid:
                    g.edge(_node(seq, idx), first[target], xlabel=label, style="dashed", color=BROKEN,
                           fontcolor=BROKEN, fontsize="8")
    try:
        svg = g.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as exc:
        raise DotMissing(INSTALL_DOT) from exc
    boxes = {}
    for m in re.finditer(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>(.*?)</g>', svg, re.S):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", " ".join(
            re.findall(r'\s(?:points|d)="([^"]+)"', m.group(2))))]
        xs, ys = nums[0::2], nums[1::2]
        boxes[html.unescape(m.group(1))] = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    transform = re.search(r'<g id="graph0" class="graph" transform="([^"]+)"', svg).group(1)
    view = [float(v) for v in re.search(r'viewBox="([^"]+)"', svg).group(1).split()]
    groups = []
    for m in re.finditer(r'<g id="(?:node|edge|clust)\d+" class="(?:node|edge|cluster)">.*?</g>', svg, re.S):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", " ".join(
            re.findall(r'\s(?:points|d)="([^"]+)"', m.group(0))))]
        if nums:
            xs, ys = nums[0::2], nums[1::2]
            groups.append(((min(xs), min(ys), max(xs), max(ys)), m.group(0)))
    return svg, boxes, transform, view[2], view[3], tuple(groups)


def diagram_id(flow) -> str:
    return _uid("flow", flow.isa, flow.name, sorted(flow.sequences.items()), sorted(flow.on.items()))


def diagram_marker(trace, flow, i: int, window: Optional[Tuple[float, float]] = (760.0, 430.0)) -> str:
    """The flow diagram with step i outlined; with a window, only the part around the step is drawn."""
    try:
        svg, boxes, transform, w, h, groups = flow_layout(flow, entered_sequences(trace))
    except DotMissing as exc:
        return f'<div class="nv-banner">{exc}</div>'
    box = boxes.get(_node(*trace.steps[i].pos[-1])) if i >= 0 else None
    tx, ty = (float(v) for v in re.search(r"translate\(([-\d.]+)[ ,]([-\d.]+)\)", transform).groups())
    mark, view = "", (0.0, 0.0, w, h)
    if box:
        x, y, bw, bh = box
        mark = (f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="{bw + 10:.1f}" height="{bh + 10:.1f}" '
                f'rx="6" fill="none" stroke="{BROKEN}" stroke-width="4"/>')
        if window:
            ww, wh = min(window[0], w), min(window[1], h)
            cx, cy = x + tx + bw / 2, y + ty + bh / 2
            view = (min(max(cx - ww / 2, 0), w - ww), min(max(cy - wh / 2, 0), h - wh), ww, wh)
    vx, vy, vw, vh = view
    gx0, gy0, gx1, gy1 = vx - tx, vy - ty, vx + vw - tx, vy + vh - ty        # the window in graph units
    shown = "".join(markup for (x0, y0, x1, y1), markup in groups
                    if x1 >= gx0 and x0 <= gx1 and y1 >= gy0 and y0 <= gy1)
    return (f'<svg class="nv-flow" viewBox="{vx:.1f} {vy:.1f} {vw:.1f} {vh:.1f}" width="{vw:.0f}" height="{vh:.0f}" '
            f'font-family="Helvetica,sans-serif"><g transform="{transform}">{shown}{mark}</g></svg>')


def defs(trace, flow) -> str:
    """The drawing every frame <use>s: the timeline (the flow diagram is cut per frame)."""
    symbol = _symbol(timeline_svg(trace)[0], timeline_id(trace))
    return f'<svg width="0" height="0" style="position:absolute">{symbol}</svg>'


def frame(trace, flow, i: int, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> str:
    """Everything one step shows.  A focus with no VMCB row leaves the vCPU table the whole row."""
    panel = vmcb_panel(trace, i, show_all, focus)
    state = (f'<div class="nv-scroll">{panel}</div>' if "<tr><th>" in panel else "") + \
        f'<div class="nv-scroll">{vcpu_table(trace, i, show_all, focus)}</div>'
    return (f'<div class="nv-frame">{step_card(trace, i)}'
            f'<div class="nv-wide">{focus_note(trace, show_all, focus)}{LEGEND}</div>'
            f'<div class="nv-state">{state}</div>'
            f'<div class="nv-timeline nv-wide">'
            f'<b>CR3, MMU, guest mode{", GIF" if trace.isa == "svm" else ""} and the current '
            f'{"VMCB" if trace.isa == "svm" else "VMCS"} over the steps</b><br>{timeline_marker(trace, i)}</div>'
            f'<div class="nv-diagram nv-wide"><b>Where this step sits in the flow ({esc(flow.name)})</b>: '
            f'one box per kernel function; dotted blue: a call, dashed red: where a failure goes'
            f'<br>{diagram_marker(trace, flow, i)}</div>'
            f'</div>')


def broken_list(trace, rules) -> str:
    """The ordering rules and invariants a run breaks, as a list."""
    inv = trace.invariant_violations()
    if not rules and not inv:
        return f'<div class="nv-broken" style="color:{OKABE_ITO["green"]}">✓ no ordering rule and no invariant broken</div>'
    items = [f'<li><span class="nv-x">✗ {esc(v.id)}</span> <code>{esc(v.after)}</code> runs before '
             f'<code>{esc(v.before)}</code>: {esc(v.reason)}. <i>Symptom:</i> {esc(v.symptom)}</li>' for v in rules]
    items += [f'<li><span class="nv-x">✗ {esc(v.invariant)}</span> after step {v.step_index + 1} '
              f'(<code>{esc(v.step_id)}</code>): {esc(v.text)}</li>' for v in inv]
    return f'<ul class="nv-broken">{"".join(items)}</ul>'
