"""The explorer: a stage per trace (stage.py draws it in the page from the trace's data) and
the panels that need a kernel (what-if).  They show what the model computed; nothing here
decides anything about KVM.

Stepping is client-side: the slider, Play, the buttons and the keys move the stage with no
kernel, in JupyterLab and in an exported page alike.  The step trait is synced with the
kernel, so ``ex.step = 5`` moves the stage from Python and a step taken in the page is
seen by Python.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Optional, Sequence, Union

import ipywidgets as W
import traitlets

import nsvm_model as nm
from nsvm_model.engine.scenario import Scenario
from nsvm_model.engine.trace import Flow, Trace

from . import render
from .stage import Stage, StepIndex, stage_data
from .stage import check_step as stage_check_step
from .style import CSS

KERNEL_NOTE = ("Stepping (buttons, slider, Play, ←/→/Home/End once the stage has focus) works in an "
               "exported page too; this what-if panel needs a running kernel.")


def as_trace(source, variant="upstream") -> Trace:
    if isinstance(source, Trace):
        return source
    if isinstance(source, Scenario):
        return nm.run(source, variant)
    raise TypeError(f"expected a Scenario or a Trace, got {type(source).__name__}")


def flow_of(trace: Trace) -> Flow:
    return trace.flow or nm.machine_for(trace.isa).flow(trace.variant)


def check_step(value: int, trace: Optional[Trace]) -> int:
    """Refuse a step outside the trace before any linked panel moves."""
    return stage_check_step(value, len(trace.steps)) if trace is not None else value


def start_index(trace: Trace, start: Union[int, str, None]) -> int:
    """The step to open at: an index, or a step id of this trace (its first run); else an error naming `start`."""
    if start is None:
        return 0
    if isinstance(start, str):
        if start in trace.step_ids:
            return trace.index_of(start)
        close = difflib.get_close_matches(start, trace.step_ids, n=3) or list(trace.step_ids[:3])
        raise ValueError(f"start: {start!r:.60} is not a step of this trace; e.g. {', '.join(close)}")
    if isinstance(start, bool) or not isinstance(start, int):
        raise TypeError(f"start: expected a step index or a step id, got {type(start).__name__} {start!r:.40}")
    if not 0 <= start < len(trace.steps):
        raise ValueError(f"start: {start} is outside this trace (0 to {len(trace.steps) - 1})")
    return start


def error_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one escaped, bounded status line (the message may quote what the learner typed)."""
    try:
        text = str(exc)
    except Exception:                     # an exception whose str() fails still gets a line
        text = ""
    if not isinstance(exc, (ValueError, TypeError)):   # not bad input: a model or widget bug, say which
        text = f"internal error ({type(exc).__name__}): {text}"
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f'<div class="nv-error">✗ {render.esc(text)} (the last good trace stays)</div>'


class WhatIf(W.VBox):
    """Preset, any field, a variant or a moved step: run again and list what breaks."""

    def __init__(self, explorer: "VmrunExplorer"):
        self.explorer = explorer
        isa = explorer.trace.isa
        self.isa = isa
        self.scenario = explorer.trace.scenario
        self._flow = None                 # a moved ordering; kept across preset and field runs, not variants
        self._quiet = False               # set while the panel puts a dropdown back: that is no request to run
        self.preset = W.Dropdown(options=list(Scenario.presets(isa)), description="preset",
                                 value=self.scenario.name if self.scenario.name in Scenario.presets(isa) else None)
        self.field = W.Combobox(options=sorted(Scenario.preset(isa, "default").fields), placeholder="field path",
                                description="field", ensure_option=False, layout=W.Layout(width="420px"))
        self.value = W.Text(placeholder="0x1d01, 4096 or EFER_SVME|EFER_LME", description="value",
                            layout=W.Layout(width="360px"))
        self.apply = W.Button(description="Set field and run", button_style="primary")
        self.variant = W.Dropdown(options=nm.variants(isa), description="variant",
                                  value=explorer.trace.variant if explorer.trace.variant in nm.variants(isa)
                                  else "upstream")
        steps = nm.steps(isa)
        calls = sorted({e for f in nm.machine_for(isa).flows.values() for seq in f.sequences.values()
                        for e in seq if e.startswith("call:")})
        movable = sorted(steps) + calls
        self.move_step = W.Dropdown(options=movable, description="move", layout=W.Layout(width="420px"))
        self.where = W.Dropdown(options=["before", "after"], value="before", layout=W.Layout(width="90px"))
        self.anchor = W.Dropdown(options=movable, description="", layout=W.Layout(width="420px"))
        self.move = W.Button(description="Move and run")
        self.reset = W.Button(description="Back to upstream")
        self.status = W.HTML()
        self.broken = W.HTML()
        self.apply.on_click(lambda _: self._run(field=True))
        self.move.on_click(lambda _: self._run(move=True))
        self.reset.on_click(lambda _: self._run(variant="upstream"))
        self.preset.observe(self._on_preset, "value")
        self.variant.observe(self._on_variant, "value")
        super().__init__([
            W.HTML(f"{CSS}<b>What if?</b> Change the scenario or the order, the trace runs again."
                   f'<div class="nv-legend">{KERNEL_NOTE}</div>'),
            W.HBox([self.preset, self.variant, self.reset]),
            W.HBox([self.field, self.value, self.apply]),
            W.HBox([self.move_step, self.where, self.anchor, self.move]),
            self.status, self.broken])
        self.show_broken(explorer.trace)

    def _on_preset(self, change):
        if not self._quiet and change["new"] is not None:
            self._run(preset=change["new"], undo=(self.preset, change["old"]))

    def _on_variant(self, change):
        if not self._quiet:
            self._run(variant=change["new"], undo=(self.variant, change["old"]))

    def _plan(self, preset=None, field=False, move=False, variant=None):
        """(scenario, flow, moved flow to keep) for the request; reads the panel, changes nothing."""
        scenario = Scenario.preset(self.isa, preset) if preset else self.scenario
        if field:
            if not self.field.value or not self.field.value.strip():
                raise ValueError("field: choose a field path (start typing, e.g. vmcb12.control.asid)")
            scenario = scenario.with_fields({self.field.value.strip(): self.value.value.strip()})
        flow = nm.machine_for(self.isa).flow(variant or self.variant.value)
        if move:
            moved = flow.moved(self.move_step.value, **{self.where.value: self.anchor.value})
        else:
            moved = None if variant else self._flow     # another variant drops the moved ordering
        return scenario, moved or flow, moved

    def _run(self, preset=None, field=False, move=False, variant=None, undo=None):
        """Compute the whole new run first, then swap it in at once; on any failure keep the last good
        trace and every panel as they were, and say why in the status line."""
        try:
            scenario, flow, moved = self._plan(preset, field, move, variant)
            trace = nm.run(scenario, flow)
            broken = render.broken_list(trace, nm.check_order(flow, scenario=scenario))
            rendered = self.explorer.render(trace)
        except Exception as exc:          # a notebook callback must not raise: show it, whatever it is
            self.status.value = error_line(exc)
            self._put_back(undo)
            return
        self.explorer.show(trace, rendered)
        self.scenario, self._flow = scenario, moved
        self.broken.value = broken
        if variant and self.variant.value != variant:   # "Back to upstream": show it without another run
            self._put_back((self.variant, variant))
        self.status.value = (f'<div>✓ ran <code>{render.esc(flow.name)}</code> on '
                             f'<code>{render.esc(scenario.name)}</code>: {len(trace.steps)} steps, outcome '
                             f'<b>{render.esc(str(trace.outcome))}</b></div>')

    def _put_back(self, undo):
        """Set a dropdown without running (after a failed run, or to show what ran)."""
        if undo is None:
            return
        widget, value = undo
        self._quiet = True
        try:
            widget.value = value
        finally:
            self._quiet = False

    def show_broken(self, trace, flow=None):
        rules = nm.check_order(flow or flow_of(trace), scenario=trace.scenario)
        self.broken.value = render.broken_list(trace, rules)


class VmrunExplorer(W.VBox):
    """The whole explorer: the stage (controls, card, focused state, position, flow diagram),
    drawn in the page from the trace's data, and the what-if panel."""

    step = StepIndex(0)

    def __init__(self, source, variant: str = "upstream", whatif: bool = True, presenter: bool = False,
                 focus: Optional[Sequence[str]] = None, start: Union[int, str, None] = None):
        trace = as_trace(source, variant)
        self.focus = render.check_focus(trace, focus)      # kept for every what-if run
        first = start_index(trace, start)
        self.trace = None
        self.stage = Stage(presenter=bool(presenter))
        self.load(trace)
        traitlets.link((self, "step"), (self.stage, "step"))
        self.step = first
        self.whatif = WhatIf(self) if whatif else None
        super().__init__([self.stage] + ([self.whatif] if self.whatif else []))
        self.add_class("nv-root")
        self.stage.observe(self._on_presenter, "presenter")
        self._on_presenter({"new": self.stage.presenter})

    def _on_presenter(self, change) -> None:
        """The stage's presenter box enlarges the what-if panel too (that needs the kernel)."""
        if change["new"]:
            self.add_class("nv-presenter")
        else:
            self.remove_class("nv-presenter")

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return check_step(proposal["value"], self.trace)

    def render(self, trace: Trace) -> dict:
        """Everything the stage draws for a trace, made without changing what it shows now."""
        return stage_data(trace, flow_of(trace), self.focus)

    def show(self, trace: Trace, data: dict) -> None:
        """Swap in another trace (a what-if run); the step stays where it was if it still exists.
        It is clamped first, while it is valid in both the old and the new trace."""
        step = min(self.stage.step, len(trace.steps) - 1)
        self.stage.step = step
        self.trace = trace
        self.stage.data = data

    def load(self, trace: Trace) -> None:
        self.show(trace, self.render(trace))


class SideBySide(W.VBox):
    """An nSVM and an nVMX stage kept at the same phase (nm.align).

    `focus` is one list of patterns for both sides: each side keeps the ones that match its
    state (e.g. "svm.current_vmcb" and "vmx.current_vmcs"), and every pattern must match on
    some side.  `start` opens the SVM side at a step (id or index); the VMX side follows.
    The two sides sit next to each other when there is room, one above the other when not.
    Following the other side needs the kernel; each side steps alone in an exported page.
    """

    def __init__(self, svm_source, vmx_source, focus=None, start=None):
        svm, vmx = as_trace(svm_source), as_trace(vmx_source)
        self.alignment = nm.align(svm, vmx)
        self.traces = {"svm": svm, "vmx": vmx}
        per_side = split_focus(self.traces, focus)
        self.stages = {isa: Stage(data=stage_data(t, flow_of(t), per_side[isa]),
                                  layout=W.Layout(flex="1 1 520px", min_width="0", max_width="100%"))
                       for isa, t in self.traces.items()}
        self.svm, self.vmx = self.stages["svm"], self.stages["vmx"]
        self.phase = W.HTML()
        self._syncing = False
        self.svm.observe(lambda c: self._follow("svm", c["new"]), "step")
        self.vmx.observe(lambda c: self._follow("vmx", c["new"]), "step")
        row = W.HBox([self.svm, self.vmx], layout=W.Layout(flex_flow="row wrap"))
        super().__init__([self.phase, row])
        self.add_class("nv-root")
        first = start_index(svm, start)
        self._follow("svm", first)
        self.svm.step = first

    def _follow(self, isa: str, index: int) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            other = self.vmx if isa == "svm" else self.svm
            partner = self.alignment.partner(isa, index)
            if partner is not None:
                other.step = partner
            phase = self.traces[isa].steps[index].phase
            row = self.alignment.row(phase)
            mark = lambda failed: " <b class='nv-error'>✗ fails here</b>" if failed else ""
            self.phase.value = (f'{CSS}<div class="nv-banner"><span class="nv-phase">{render.esc(phase)} '
                                f'{render.esc(row.title)}</span>'
                                f'<br>nSVM: {render.esc(row.svm_failure_mode)}{mark(row.svm_failed_here)}'
                                f'<br>nVMX: {render.esc(row.vmx_failure_mode)}{mark(row.vmx_failed_here)}</div>')
        finally:
            self._syncing = False


def split_focus(traces: dict, focus) -> dict:
    """Each side's share of one focus list (None: no focus); a pattern no side has is an error."""
    if focus is None:
        return {isa: None for isa in traces}
    focus = render.focus_patterns(focus)
    shares = {isa: [p for p in focus if fnmatch.filter(list(t.initial), p)] for isa, t in traces.items()}
    unmatched = [p for p in focus if not any(p in share for share in shares.values())]
    if unmatched:
        raise ValueError(f"focus: {unmatched[0]!r:.60} matches no state path of either trace "
                         f"(e.g. 'svm.current_vmcb', 'vmx.current_vmcs', 'vcpu.arch.cr3')")
    return {isa: tuple(share) or None for isa, share in shares.items()}


def explore(question, **kw) -> VmrunExplorer:
    """An explorer opened on an exercise question: its trace, at the step that decides the answer,
    focused on the fields it asks about (no what-if panel unless whatif=True is passed)."""
    missing = [a for a in ("trace", "step_index", "focus") if not hasattr(question, a)]
    if missing:
        raise TypeError(f"question: expected an exercise question with trace, step_index and focus; "
                        f"{type(question).__name__} has no {', '.join(missing)}")
    kw.setdefault("whatif", False)
    return VmrunExplorer(question.trace, focus=question.focus, start=question.step_index, **kw)
