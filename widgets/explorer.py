"""ipywidgets views over traces.  They show what the model computed; nothing here decides
anything about KVM.

Stepping is client-side: every step's frame is rendered once into a Stack, and the
Play button, the slider and the Stack are tied with jslink, so stepping is instant
and keeps working in an exported page with no kernel.  The step trait is also
linked in the kernel, so ``ex.step = 5`` moves every panel from Python.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Optional, Sequence, Union

import ipywidgets as W
import traitlets

import nsvm_model as nm
from nsvm_model.engine.scenario import Scenario
from nsvm_model.engine.trace import Flow, Trace

from . import render
from .style import CSS

KERNEL_NOTE = ("Stepping (slider, Play, ←/→ on the focused slider) works in an exported page too; "
               "the buttons, the jump list and the what-if panel need a running kernel.")


def as_trace(source, variant="upstream") -> Trace:
    if isinstance(source, Trace):
        return source
    if isinstance(source, Scenario):
        return nm.run(source, variant)
    raise TypeError(f"expected a Scenario or a Trace, got {type(source).__name__}")


def flow_of(trace: Trace) -> Flow:
    return trace.flow or nm.machine_for(trace.isa).flow(trace.variant)


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


def check_step(value: int, trace: Optional[Trace]) -> int:
    """Refuse a step outside the trace before any linked panel moves (the Stack would refuse it half-way)."""
    if trace is not None and not 0 <= value < len(trace.steps):
        raise StepOutOfRange(f"step: {value} is outside this trace (0 to {len(trace.steps) - 1})")
    return value


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


class FrameView(W.VBox):
    """One HTML frame per step in a Stack; `step` selects the frame."""

    step = StepIndex(0)

    def __init__(self, trace: Trace, draw: Callable[[Trace, int], str], with_defs: bool = True, **kw):
        self._draw = draw
        self._with_defs = with_defs
        self.trace = None
        self.defs = W.HTML()
        self.stack = W.Stack()
        super().__init__([self.defs, self.stack], **kw)
        self.load(trace)
        traitlets.link((self, "step"), (self.stack, "selected_index"))

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return check_step(proposal["value"], self.trace)

    def render(self, trace: Trace) -> tuple:
        """Every frame of a trace as HTML; touches nothing shown, so a failure here changes nothing."""
        if not trace.steps:
            raise ValueError("the run has no step to show")
        defs = CSS + (render.defs(trace, flow_of(trace)) if self._with_defs else "")
        return defs, [self._draw(trace, i) for i in range(len(trace.steps))]

    def show(self, trace: Trace, rendered: tuple) -> None:
        """Swap in frames made by render().  The step is clamped first, while it is valid in both the old
        and the new trace: replacing the Stack's children under a too-large index would reset it to None."""
        step = min(self.step, len(trace.steps) - 1)
        self.step = step                  # still valid in the old trace; the Stack follows through the link
        self.trace = trace
        self.defs.value = rendered[0]
        self.stack.children = [W.HTML(html) for html in rendered[1]]
        self.stack.selected_index = step

    def load(self, trace: Trace) -> None:
        self.show(trace, self.render(trace))

    def frame_html(self, i: Optional[int] = None) -> str:
        return self.stack.children[self.step if i is None else i].value


class Stepper(W.VBox):
    """First/Previous/Next/Last, a slider, Play with a speed control, a jump list, and the frames."""

    step = StepIndex(0)

    def __init__(self, trace: Trace, draw: Callable[[Trace, int], str] = None, **kw):
        draw = draw or (lambda t, i: render.frame(t, flow_of(t), i))
        self._loading = False
        self.view = FrameView(trace, draw)
        b = lambda text, tip: W.Button(description=text, tooltip=tip, layout=W.Layout(width="auto", min_width="92px"))
        self.first, self.prev = b("|◀ First", "first step"), b("◀ Previous", "previous step")
        self.next, self.last = b("Next ▶", "next step"), b("Last ▶|", "last step")
        # no readout: the slider's value is the 0-based frame index (it is jslinked to the
        # Stack); the card and the jump list give the step number, counted from 1
        self.slider = W.IntSlider(min=0, description="step", continuous_update=True, readout=False,
                                  layout=W.Layout(width="420px", min_width="300px"))
        self.play = W.Play(min=0, interval=700, description="Play", tooltip="play the steps")
        self.speed = W.IntSlider(value=700, min=100, max=2000, step=100, description="ms/step",
                                 layout=W.Layout(width="260px"))
        self.jump = W.Dropdown(description="jump to", layout=W.Layout(width="520px", max_width="100%"))
        self.note = W.HTML(f'<div class="nv-legend">{KERNEL_NOTE}</div>')
        W.jslink((self.play, "value"), (self.slider, "value"))
        W.jslink((self.slider, "value"), (self.view.stack, "selected_index"))
        W.jslink((self.speed, "value"), (self.play, "interval"))
        traitlets.link((self, "step"), (self.slider, "value"))
        traitlets.link((self, "step"), (self.play, "value"))     # so a saved page starts where the kernel was
        traitlets.link((self, "step"), (self.view, "step"))
        self.first.on_click(lambda _: self._go(0))
        self.prev.on_click(lambda _: self._go(self.step - 1))
        self.next.on_click(lambda _: self._go(self.step + 1))
        self.last.on_click(lambda _: self._go(len(self.view.trace.steps) - 1))
        self.jump.observe(self._on_jump, "value")
        self.observe(self._on_step, "step")
        wrap = W.Layout(flex_flow="row wrap")
        controls = W.HBox([self.first, self.prev, self.next, self.last, self.play, self.slider], layout=wrap)
        super().__init__([controls, W.HBox([self.jump, self.speed], layout=wrap), self.note, self.view], **kw)
        self._fit_controls(trace, 0)

    @property
    def trace(self) -> Trace:
        return self.view.trace

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return check_step(proposal["value"], self.trace)

    def render(self, trace: Trace) -> tuple:
        return self.view.render(trace)

    def show(self, trace: Trace, rendered: tuple) -> None:
        """Swap in another trace (a what-if run); the step stays where it was if it still exists."""
        step = min(self.step, len(trace.steps) - 1)
        self._loading = True
        try:
            self.step = step                  # valid in both traces, so no linked panel is ever out of range
            self.view.show(trace, rendered)
            self._fit_controls(trace, step)
        finally:
            self._loading = False

    def load(self, trace: Trace) -> None:
        self.show(trace, self.render(trace))

    def _fit_controls(self, trace: Trace, step: int) -> None:
        self.slider.max = self.play.max = len(trace.steps) - 1
        self.jump.options = [(f"{i + 1}. {s.id} · {s.function}()", i) for i, s in enumerate(trace.steps)]
        self.jump.value = step

    def _go(self, i: int) -> None:
        self.step = max(0, min(i, len(self.trace.steps) - 1))

    def _on_jump(self, change) -> None:
        # new options reset the list to its first entry: that is not the learner jumping
        if change["new"] is not None and not self._loading:
            self.step = change["new"]

    def _on_step(self, change) -> None:
        if self.jump.value != change["new"]:
            self.jump.value = change["new"]


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
            W.HTML("<b>What if?</b> Change the scenario or the order, the trace runs again."),
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


def header_html(trace: Trace) -> str:
    # l2_runs says the entry succeeded; a run that also follows L2's exit ends back in L1
    left = (trace.outcome == "l2_runs" and not trace.final.get("vcpu.guest_mode", True)
            and any(s.state.get("vcpu.guest_mode") for s in trace.steps))
    back = " (L2 ran, then its exit took the vCPU back to L1)" if left else ""
    return (f'{CSS}<div class="nv-banner"><b>{render.esc(trace.isa.upper())} · {render.esc(str(trace.variant))} · '
            f'scenario {render.esc(trace.scenario.name)}</b>: {render.esc(trace.scenario.description)}'
            f' → <b>{render.esc(str(trace.outcome))}</b>{back} in {len(trace.steps)} steps</div>')


class VmrunExplorer(W.VBox):
    """The whole explorer in one widget: stepper, step card, VMCB panel, timeline, flow, what-if."""

    step = StepIndex(0)

    def __init__(self, source, variant: str = "upstream", whatif: bool = True, presenter: bool = False,
                 focus: Optional[Sequence[str]] = None, start: Union[int, str, None] = None):
        trace = as_trace(source, variant)
        self.focus = render.check_focus(trace, focus)      # kept for every what-if run
        first = start_index(trace, start)
        self.all_fields = W.Checkbox(value=False, description="show every field")
        self.stepper = Stepper(trace, lambda t, i: render.frame(t, flow_of(t), i, self.all_fields.value,
                                                                 self.focus))
        traitlets.link((self, "step"), (self.stepper, "step"))
        self.presenter = W.ToggleButton(value=presenter, description="Presenter mode",
                                        tooltip="larger text and diagrams for a projector")
        self.presenter.observe(self._on_presenter, "value")
        self.all_fields.observe(lambda c: self.load(self.trace), "value")
        self.header = W.HTML(header_html(trace))
        self.whatif = WhatIf(self) if whatif else None
        parts = [self.header, W.HBox([self.presenter, self.all_fields]), self.stepper]
        if self.whatif:
            parts.append(self.whatif)
        super().__init__(parts)
        self.add_class("nv-root")
        self._on_presenter({"new": presenter})
        self.step = first

    @property
    def trace(self) -> Trace:
        return self.stepper.trace

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return check_step(proposal["value"], self.trace)

    def render(self, trace: Trace) -> tuple:
        """Everything the explorer shows for a trace, made without changing what it shows now."""
        return self.stepper.render(trace), header_html(trace)

    def show(self, trace: Trace, rendered: tuple) -> None:
        frames, header = rendered
        self.stepper.show(trace, frames)
        self.header.value = header

    def load(self, trace: Trace) -> None:
        self.show(trace, self.render(trace))

    def _on_presenter(self, change):
        if change["new"]:
            self.add_class("nv-presenter")
        else:
            self.remove_class("nv-presenter")


def VmcbPanel(trace: Trace, show_all: bool = False, focus: Optional[Sequence[str]] = None) -> FrameView:
    """The VMCBs/VMCSs and the vCPU alone, one frame per step; a focus shows only the rows it names."""
    focus = render.check_focus(trace, focus)
    hint = "VmcbPanel(..., show_all=True) shows all"
    return FrameView(trace, lambda t, i: render.focus_note(t, show_all, focus, hint) + render.LEGEND
                     + render.vmcb_panel(t, i, show_all, focus) + render.vcpu_table(t, i, show_all, focus),
                     with_defs=False)


def Timeline(trace: Trace) -> FrameView:
    """CR3, MMU, guest mode, GIF and the current VMCB over the steps, the step marked."""
    return FrameView(trace, lambda t, i: render.timeline_marker(t, i))


def FlowDiagram(trace: Trace) -> FrameView:
    """The flow laid out once with Graphviz, the current step outlined."""
    return FrameView(trace, lambda t, i: render.diagram_marker(t, flow_of(t), i))


class SideBySide(W.VBox):
    """An nSVM and an nVMX stepper kept at the same phase (nm.align).

    `focus` is one list of patterns for both sides: each side keeps the ones that match its
    state (e.g. "svm.current_vmcb" and "vmx.current_vmcs"), and every pattern must match on
    some side.  `start` opens the SVM side at a step (id or index); the VMX side follows.
    The two sides sit next to each other when there is room, one above the other when not.
    """

    def __init__(self, svm_source, vmx_source, focus=None, start=None):
        svm, vmx = as_trace(svm_source), as_trace(vmx_source)
        self.alignment = nm.align(svm, vmx)
        sides = {"svm": svm, "vmx": vmx}
        per_side = split_focus(sides, focus)

        def drawer(isa):
            f = per_side[isa]
            return lambda t, i: (render.step_card(t, i) + render.vmcb_panel(t, i, False, f)
                                 + render.vcpu_table(t, i, False, f))
        self.svm, self.vmx = Stepper(svm, drawer("svm")), Stepper(vmx, drawer("vmx"))
        self.phase = W.HTML()
        self._syncing = False
        self.svm.observe(lambda c: self._follow("svm", c["new"]), "step")
        self.vmx.observe(lambda c: self._follow("vmx", c["new"]), "step")
        for side in (self.svm, self.vmx):
            side.layout = W.Layout(flex="1 1 560px", min_width="0", max_width="100%")
        row = W.HBox([self.svm, self.vmx], layout=W.Layout(flex_flow="row wrap"))
        super().__init__([W.HTML(CSS + render.LEGEND), self.phase, row])
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
            phase = (self.svm.trace if isa == "svm" else self.vmx.trace).steps[index].phase
            row = self.alignment.row(phase)
            mark = lambda failed: " <b class='nv-error'>✗ fails here</b>" if failed else ""
            self.phase.value = (f'<div class="nv-banner"><span class="nv-phase">{render.esc(phase)} '
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
