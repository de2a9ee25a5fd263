"""The stage: one trace drawn in the browser from its data.

Python turns a trace into plain data once (`stage_data`): every state path with its value
before the first step, each step's card text, its diff and the paths it wrote and read,
which rows a lesson focuses on, the timeline's runs of equal values and the flow
diagram laid out by Graphviz.  The front end (stage.js) only draws that data: stepping
applies diffs in the page, so it is instant, keeps working in an exported page with no
kernel, and nothing the page shows is decided there.
"""

from __future__ import annotations

import pathlib
from typing import Dict, List, Optional, Sequence

import anywidget
import traitlets

import nsvm_model as nm
from nsvm_model.phases import PHASES
from nsvm_model.text import show_value

from . import render

HERE = pathlib.Path(__file__).parent


class StepOutOfRange(traitlets.TraitError, ValueError):
    """A step the trace does not have: a TraitError for traitlets, a ValueError for the contract."""


class StepNotAnInteger(traitlets.TraitError, TypeError):
    """A step that is not an int: a TraitError for traitlets, a TypeError for the contract."""


class StepIndex(traitlets.Int):
    """An Int trait that refuses bool and text with a TypeError naming `step`."""

    def validate(self, obj, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise StepNotAnInteger(f"step: expected an integer step index, got {type(value).__name__} {value!r:.40}")
        return super().validate(obj, value)


def check_step(value: int, steps: int) -> int:
    """Refuse a step outside the trace before anything moves."""
    if not 0 <= value < steps:
        raise StepOutOfRange(f"step: {value} is outside this trace (0 to {steps - 1})")
    return value


class Stage(anywidget.AnyWidget):
    """Controls, step card, focused state and position of one trace, drawn client-side."""

    _esm = HERE / "stage.js"
    _css = HERE / "stage.css"
    data = traitlets.Dict().tag(sync=True)
    step = StepIndex(0).tag(sync=True)             # 0-based index; every count shown is 1-based
    show_all = traitlets.Bool(False).tag(sync=True)
    presenter = traitlets.Bool(False).tag(sync=True)

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return check_step(proposal["value"], len(self.data.get("steps", ())) or 1)


# --- the data ---------------------------------------------------------------------------

def stage_data(trace, flow, focus: Optional[Sequence[str]] = None) -> dict:
    """Everything the front end draws for a trace, as JSON-ready data."""
    if not trace.steps:
        raise ValueError("the run has no step to show")
    focus = render.check_focus(trace, focus)
    paths = list(trace.initial)
    index = {p: i for i, p in enumerate(paths)}

    def at(path):                        # a path first written by a step is added on the fly
        if path not in index:
            index[path] = len(paths)
            paths.append(path)
        return index[path]

    steps = [_step_data(trace, s, at) for s in trace.steps]
    return {
        "isa": trace.isa, "variant": str(trace.variant), "flow": flow.name,
        "scenario": trace.scenario.name, "description": trace.scenario.description,
        "outcome": str(trace.outcome), "failure": trace.failure, "back_to_l1": _back_to_l1(trace),
        "commit": nm.KERNEL_COMMIT[:12],
        "paths": paths, "initial": [show_value(trace.initial[p]) for p in paths[:len(trace.initial)]],
        "steps": steps,
        "table": _table(trace, focus, at), "vcpu": _vcpu(trace, focus, at),
        "focused": bool(focus), "timeline": _timeline(trace), "diagram": _diagram(trace, flow),
    }


def _back_to_l1(trace) -> bool:
    """l2_runs says the entry succeeded; a run that also follows L2's exit ends back in L1."""
    return (trace.outcome == "l2_runs" and not trace.final.get("vcpu.guest_mode", True)
            and any(s.state.get("vcpu.guest_mode") for s in trace.steps))


def _chain(s) -> List[str]:
    """The kernel functions the step sits in, outermost first: the callees the flow entered
    (its "main" sequence is the entry point itself, named by its own steps), then the step's."""
    chain = [render.sequence_label(seq) for seq, _ in s.pos if seq != "main"]
    if not chain or f"{s.function}()" != chain[-1]:
        chain.append(f"{s.function}()")
    return chain


def _step_data(trace, s, at) -> dict:
    url, _, _ = s.source.partition(" (")
    seq, idx = s.pos[-1]
    return {
        "id": s.id, "title": s.title, "label": s.label, "function": s.function, "file": s.step.file,
        "url": url, "manual": s.manual, "phase": s.phase, "phase_title": PHASES[s.phase][0],
        "reason": s.reason, "notes": list(s.notes), "chain": _chain(s),
        "diff": [[at(p), show_value(new)] for p, _, new in s.diff],
        "was": {str(at(p)): show_value(old) for p, old, _ in s.diff},
        "written": sorted(at(p) for p in s.written), "read": sorted(at(p) for p in s.read),
        "node": render.node_name(seq, idx),
    }


def _table(trace, focus, at) -> dict:
    """The VMCB/VMCS table: columns, the pointer, and every candidate row with whether it shows
    by default (written somewhere or always shown) and under the lesson's focus."""
    cfg = render.PANELS[trace.isa]
    default = set(render.panel_rows(trace))
    focused = set(render.panel_rows(trace, False, focus)) if focus else set()
    groups: Dict[str, dict] = {}
    for group, field in render.panel_rows(trace, show_all=True):
        title = render.group_title(trace.isa, group, field)
        g = groups.setdefault(title, {"title": title, "folded": title in cfg["folded"], "rows": []})
        cells = [-1 if p is None or p not in trace.initial else at(p)
                 for p in render.cell_paths(trace.isa, group, field)]
        g["rows"].append({"field": field, "cells": cells, "default": (group, field) in default,
                          "focus": (group, field) in focused})
    pointer_path, pointer_name = cfg["pointer"]
    return {"columns": [label for label, _ in cfg["columns"]], "pointer": at(pointer_path),
            "pointer_name": pointer_name, "groups": list(groups.values())}


def _vcpu(trace, focus, at) -> list:
    every = render.vcpu_rows(trace, show_all=True, focus=focus)
    focused = set(render.vcpu_rows(trace, False, focus)) if focus else set()
    return [{"path": at(p), "focus": p in focused} for p in every]


def _timeline(trace) -> dict:
    """Runs of equal values of CR3, the MMU, guest mode, GIF and the current VMCB, over the
    states 0 (before the first step) to n."""
    states = [trace.initial] + [s.state for s in trace.steps]
    rows = []
    for title, path in render.TIMELINE_ROWS[trace.isa]:
        colours: Dict[object, int] = {}
        runs = []
        for start, length, value in render.segments(states, path):
            colours.setdefault(value, len(colours))
            runs.append([start, length, render.value_label(trace, path, value), colours[value]])
        rows.append({"title": title, "runs": runs})
    return {"states": len(states), "rows": rows}


def _diagram(trace, flow) -> dict:
    """The flow laid out once (only the kernel functions this run entered, or the whole flow as
    shipped when there is no dot), with each node's box, so the page outlines the current step
    without another layout."""
    try:
        return render.flow_layout(flow, render.entered_sequences(trace))
    except render.DotMissing as exc:
        return {"missing": str(exc)}
