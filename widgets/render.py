"""What the views show of a trace: which rows (panels, focus), the timeline's runs, the flow
diagram's layout, the list of broken rules.  Views only: every value comes from the trace.

The flow is laid out by Graphviz once per flow and per set of entered functions; the
stage (stage.py, stage.js) draws the rest in the page.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import gzip
import hashlib
import html
import json
import pathlib
import re
from typing import Dict, List, Optional, Sequence, Tuple

from .style import BROKEN, OKABE_ITO

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
            "vcpu.arch.cr3", "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.arch.mmu", "vcpu.arch.gva_walk.cpu_role",
            "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.root.pgd", "vcpu.arch.ngpa_walk.cpu_role",
            "vcpu.arch.guest_mmu.root_role.guest_mode", "vcpu.arch.guest_mmu.root.pgd", "vcpu.arch.pdptrs_status",
            "vcpu.arch.nested_run_pending", "vcpu.arch.tsc_offset", "vcpu.arch.exception", "vcpu.requests",
            "kvm_run.exit_reason"),
    "vmx": ("vmx.current_vmcs", "vcpu.guest_mode", "vcpu.rip", "vcpu.arch.rflags", "vcpu.arch.cr0",
            "vcpu.arch.cr3", "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.arch.mmu", "vcpu.arch.gva_walk.cpu_role",
            "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.root.pgd", "vcpu.arch.ngpa_walk.cpu_role",
            "vcpu.arch.guest_mmu.root_role.guest_mode", "vcpu.arch.guest_mmu.root.pgd", "vcpu.arch.pdptrs_status",
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
        paths = cell_paths(trace.isa, group, field)
        if focus:                          # a focused cell the trace has, not a path no structure holds
            keep = any(focused(p, focus) and p in trace.initial for p in paths)
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
    shown = set(rows) | {p for g, f in _candidate_rows(trace) for p in cell_paths(trace.isa, g, f)}
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


def cell_paths(isa: str, group: str, field: str) -> List[Optional[str]]:
    out = []
    for _, pattern in PANELS[isa]["columns"]:
        if isa == "svm":
            cached = dict(PANELS["svm"]["groups"])[group]
            out.append(pattern.format(g=group, c=cached, f=field))
        else:
            out.append(pattern.format(f=field))
    return out


SEGMENT_FIELD = re.compile(r"^(guest_)?(es|cs|ss|ds|fs|gs|ldtr|tr|gdtr|idtr)[._]")


def group_title(isa: str, group: str, field: str) -> str:
    """Segment and descriptor-table rows go in a group of their own, folded."""
    if SEGMENT_FIELD.match(field):
        return PANELS[isa]["folded"][0]
    return group


# --- the timeline: a few values over the steps -------------------------------------

TIMELINE_ROWS = {
    "svm": (("CR3", "vcpu.arch.cr3"), ("MMU", "vcpu.arch.mmu"), ("guest mode", "vcpu.guest_mode"),
            ("GIF", "vcpu.gif"), ("current", "svm.current_vmcb")),
    "vmx": (("CR3", "vcpu.arch.cr3"), ("MMU", "vcpu.arch.mmu"), ("guest mode", "vcpu.guest_mode"),
            ("current", "vmx.current_vmcs")),
}


def _cr3_label(trace, value) -> str:
    s0 = trace.initial
    names = []
    if value == s0["vcpu.arch.cr3"]:
        names.append("L1 CR3")
    l2 = s0.get("vmcb12.save.cr3", s0.get("vmcs12.guest_cr3"))
    if value == l2:
        names.append("L2 CR3")
    return f"{' = '.join(names) or 'CR3'} {value:#x}"


def value_label(trace, path, value) -> str:
    if path == "vcpu.arch.cr3":
        return _cr3_label(trace, value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def segments(states, path):
    """(start, length, value) runs of equal values along the steps."""
    runs, start = [], 0
    for k in range(1, len(states) + 1):
        if k < len(states) and states[k][path] == states[start][path]:
            continue
        runs.append((start, k - start, states[start][path]))
        start = k
    return runs


def _uid(*parts) -> str:
    return "nv" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:10]


# --- the flow diagram (graphviz, once per flow) ------------------------------------

def node_name(seq: str, idx: int) -> str:
    return f"{seq}@{idx}"


class DotMissing(RuntimeError):
    pass


INSTALL_DOT = ("The flow diagram needs Graphviz's <code>dot</code> program: "
               "<code>sudo apt-get install graphviz</code> (Debian/Ubuntu), <code>brew install graphviz</code> "
               "(macOS) or <code>conda install -c conda-forge graphviz</code>. Everything else works without it.")


_LAYOUTS: Dict[tuple, dict] = {}
SHIPPED = pathlib.Path(__file__).parent / "layouts" / "flows.json.gz"


def flow_layout(flow, keep: Optional[frozenset] = None) -> dict:
    """The flow laid out once, cached per flow and per set of sequences drawn (`keep`: the kernel
    functions a run entered; None: all): {"svg", "boxes" (node -> x, y, w, h), "shift" (the graph's
    translation), "size"}.  Without Graphviz's dot (a browser Python), the whole flow's layout made
    when the package was built stands in; a flow no one shipped raises DotMissing."""
    key = (diagram_id(flow), keep)
    if key not in _LAYOUTS:
        try:
            _LAYOUTS[key] = _layout(flow, keep)
        except DotMissing:
            shipped = shipped_layouts().get(diagram_id(flow))
            if shipped is None:
                raise
            _LAYOUTS[key] = shipped
    return _LAYOUTS[key]


@functools.lru_cache(maxsize=1)
def shipped_layouts() -> Dict[str, dict]:
    """diagram_id -> layout of every named flow of both ISAs (make layouts writes the file)."""
    if not SHIPPED.exists():
        return {}
    with gzip.open(SHIPPED, "rt", encoding="utf-8") as f:
        return json.load(f)


def all_named_layouts() -> Dict[str, dict]:
    """The layouts to ship: every variant of every registered ISA, whole (needs dot)."""
    import nsvm_model as nm
    return {diagram_id(flow): _layout(flow) for isa in ("svm", "vmx")
            for flow in nm.machine_for(isa).flows.values()}


def write_shipped_layouts() -> None:
    """`make layouts`: lay out every named flow with dot and store them for a Python without it."""
    SHIPPED.parent.mkdir(exist_ok=True)
    with gzip.GzipFile(SHIPPED, "wb", mtime=0) as f:          # the same layouts give the same bytes
        f.write(json.dumps(all_named_layouts(), sort_keys=True, separators=(",", ":")).encode())


LABEL_PREFIXES = ("early", "late", "unified", "fail", "rsm", "l1_cr3", "kvm_internal", "vmentry_fail")


def sequence_label(seq: str) -> str:
    """A sequence as the kernel names it: a function gets (), a failure label stays a label,
    a variant of a function ("nested_svm_load_cr3(L1)") already carries its argument."""
    if "(" in seq or seq.startswith(LABEL_PREFIXES):
        return seq
    return f"{seq}()"


def entered_sequences(trace) -> frozenset:
    """The sequences (kernel functions) a run entered: the diagram draws only these."""
    return frozenset(seq for s in trace.steps for seq, _ in s.pos)


def _layout(flow, keep: Optional[frozenset] = None) -> dict:
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
            c.attr(label=sequence_label(seq), color=OKABE_ITO["grey"], fontname="Helvetica")
            prev = None
            for idx, entry in enumerate(entries):
                node = node_name(seq, idx)
                first.setdefault(seq, node)
                label = ("call " + entry[5:] + "()") if entry.startswith("call:") else entry.split(".", 1)[1]
                c.node(node, label, fillcolor=OKABE_ITO["yellow"] + "55" if entry.startswith("call:") else "white")
                if prev:
                    c.edge(prev, node)
                prev = node
    for seq, entries in sequences.items():
        for idx, entry in enumerate(entries):
            if entry.startswith("call:") and entry[5:] in first:
                g.edge(node_name(seq, idx), first[entry[5:]], style="dotted", color=OKABE_ITO["blue"])
    for key, target in flow.on.items():
        sid, _, label = key.rpartition(":")
        target = target.removeprefix("unwind:")
        if target.startswith("end:") or target not in first or label == "done":
            continue
        for seq, entries in sequences.items():
            for idx, entry in enumerate(entries):
                if entry == sid:
                    g.edge(node_name(seq, idx), first[target], xlabel=label, style="dashed", color=BROKEN,
                           fontcolor=BROKEN, fontsize="8")
    try:
        svg = g.pipe(format="svg", encoding="utf-8")
    except (graphviz.ExecutableNotFound, OSError) as exc:     # no dot, or no processes at all (Pyodide)
        raise DotMissing(INSTALL_DOT) from exc
    boxes = {}
    for m in re.finditer(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>(.*?)</g>', svg, re.S):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", " ".join(
            re.findall(r'\s(?:points|d)="([^"]+)"', m.group(2))))]
        xs, ys = nums[0::2], nums[1::2]
        boxes[html.unescape(m.group(1))] = [round(min(xs), 1), round(min(ys), 1),
                                            round(max(xs) - min(xs), 1), round(max(ys) - min(ys), 1)]
    transform = re.search(r'<g id="graph0" class="graph" transform="([^"]+)"', svg).group(1)
    shift = [float(v) for v in re.search(r"translate\(([-\d.]+)[ ,]([-\d.]+)\)", transform).groups()]
    view = [float(v) for v in re.search(r'viewBox="([^"]+)"', svg).group(1).split()]
    svg = re.sub(r"^.*?(?=<svg\b)", "", svg, count=1, flags=re.S)        # no XML prolog or doctype
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return {"svg": svg, "boxes": boxes, "shift": shift, "size": view[2:4]}


def diagram_id(flow) -> str:
    return _uid("flow", flow.isa, flow.name, sorted(flow.sequences.items()), sorted(flow.on.items()))


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
