"""The explorer under what-if runs that shrink the trace, fail, or get odd input: it stays whole."""

import re
import functools

import pytest
import traitlets
from hypothesis import event, given, settings, strategies as st

import nsvm_model as nm
from widgets import FrameView, Stepper, VmcbPanel, VmrunExplorer, explorer as X, render


@pytest.fixture(scope="module")
def ex():
    return VmrunExplorer(nm.Scenario.svm())


def snapshot(ex):
    """Everything a learner sees or the panel remembers, to compare before and after a failed run."""
    s, w = ex.stepper, ex.whatif
    return dict(trace=id(ex.trace), step=ex.step, stepper_step=s.step, view_step=s.view.step,
                slider=(s.slider.value, s.slider.max), play=(s.play.value, s.play.max),
                index=s.view.stack.selected_index, frames=s.view.stack.children, jump=(s.jump.options, s.jump.value),
                header=ex.header.value, broken=w.broken.value, scenario=id(w.scenario), flow=id(w._flow),
                preset=w.preset.value, variant=w.variant.value)


def assert_consistent(ex, step=None):
    s, n = ex.stepper, len(ex.trace.steps)
    assert s.slider.max == s.play.max == n - 1
    assert 0 <= ex.step < n and (step is None or ex.step == step)
    assert ex.step == s.step == s.view.step == s.slider.value == s.play.value == s.jump.value
    assert s.view.stack.selected_index == ex.step and len(s.view.stack.children) == n == len(s.jump.options)
    assert re.search(rf"<b>{re.escape(render.esc(ex.trace.outcome))}</b>[^<]* in {n} steps", ex.header.value)


# --- D1: a what-if run with fewer steps than the current step ---------------------------------------

def test_preset_with_fewer_steps_from_a_late_step():
    ex = VmrunExplorer(nm.Scenario.svm())
    ex.step = 30
    ex.whatif.preset.value = "cpl3"
    assert len(ex.trace.steps) == 1 and ex.trace.scenario.name == "cpl3"
    assert_consistent(ex, step=0)
    assert "✓ ran" in ex.whatif.status.value and ex.whatif.scenario is ex.trace.scenario
    ex.whatif.preset.value = "default"            # and back to a long trace: the step stays where it was
    assert_consistent(ex, step=0)
    ex.step = 34


def test_field_with_fewer_steps_from_a_late_step(ex):
    ex.whatif.preset.value = "default"
    ex.step = 30
    ex.whatif.field.value, ex.whatif.value.value = "l1.cpl", "3"
    ex.whatif.apply.click()
    assert ex.trace.outcome != "l2_runs" and len(ex.trace.steps) < 30
    assert_consistent(ex, step=len(ex.trace.steps) - 1)
    ex.whatif.value.value = "0"
    ex.whatif.apply.click()
    assert ex.trace.outcome == "l2_runs"
    assert_consistent(ex)


def test_variant_with_fewer_steps_from_a_late_step():
    ex = VmrunExplorer(nm.Scenario.preset("svm", "vmcb12_unmapped_at_exit"))
    ex.step = 50
    ex.whatif.variant.value = "old-vmexit-abort"
    assert len(ex.trace.steps) < 50 and ex.trace.variant == "old-vmexit-abort"
    assert_consistent(ex, step=len(ex.trace.steps) - 1)


def test_move_with_fewer_steps_from_a_late_step_then_back_to_upstream(monkeypatch):
    ex = VmrunExplorer(nm.Scenario.svm())
    ex.step = len(ex.trace.steps) - 1
    ex.whatif.move_step.value, ex.whatif.where.value = "svm.l2.vcpu_run", "before"
    ex.whatif.anchor.value = "svm.enter.copy_common_state"
    ex.whatif.move.click()
    assert "moved" in ex.trace.variant and len(ex.trace.steps) < 20
    assert_consistent(ex, step=len(ex.trace.steps) - 1)
    runs = []
    real_run = nm.run
    monkeypatch.setattr(nm, "run", lambda *a: runs.append(a) or real_run(*a))
    ex.whatif.reset.click()                      # one run, and the variant list says upstream
    assert len(runs) == 1 and ex.trace.variant == "upstream" and ex.whatif.variant.value == "upstream"
    assert ex.whatif._flow is None
    assert_consistent(ex)


def test_a_frame_view_alone_loads_a_shorter_trace():
    view = VmcbPanel(nm.run(nm.Scenario.svm()))
    view.step = 30
    view.load(nm.run(nm.Scenario.preset("svm", "cpl3")))
    assert view.step == 0 and view.stack.selected_index == 0 and len(view.stack.children) == 1


# --- a failed run keeps everything ---------------------------------------------------------------------

def boom(*a, **k):
    raise RuntimeError("<script>x</script> " + "y" * 1000)


@pytest.mark.parametrize("where", ["run", "check_order", "frame"])
def test_any_failure_keeps_the_last_good_trace(ex, monkeypatch, where):
    ex.step = 7
    before = snapshot(ex)
    target = render if where == "frame" else nm
    monkeypatch.setattr(target, where, boom)
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "3"
    ex.whatif.apply.click()
    status = ex.whatif.status.value
    assert "nv-error" in status and "RuntimeError" in status and "<script>" not in status
    assert len(status) < 450                      # the message is cut, not the whole exception
    assert snapshot(ex) == before


@pytest.mark.parametrize("dropdown, value", [("preset", "cpl3"), ("variant", "v6-unified")])
def test_a_failed_dropdown_change_puts_the_dropdown_back_without_another_run(ex, monkeypatch, dropdown, value):
    ex.step = 20
    before = snapshot(ex)
    calls = []
    monkeypatch.setattr(nm, "run", lambda *a: calls.append(a) or boom())
    getattr(ex.whatif, dropdown).value = value
    assert len(calls) == 1 and "nv-error" in ex.whatif.status.value
    assert snapshot(ex) == before


def test_bad_input_is_escaped_in_the_status_line(ex):
    ex.whatif.field.value, ex.whatif.value.value = "<img src=x onerror=alert(1)>", "1"
    ex.whatif.apply.click()
    assert "nv-error" in ex.whatif.status.value and "<img" not in ex.whatif.status.value
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "<b>bold</b>"
    ex.whatif.apply.click()
    assert "nv-error" in ex.whatif.status.value and "<b>bold" not in ex.whatif.status.value


def test_scenario_names_are_escaped_everywhere():
    sc = nm.Scenario.svm().with_fields({}, name="<img src=x>", description="<script>d</script>")
    ex = VmrunExplorer(sc)
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "2"
    ex.whatif.apply.click()
    assert "✓ ran" in ex.whatif.status.value
    for html in (ex.header.value, ex.whatif.status.value, ex.stepper.view.frame_html()):
        assert "<img" not in html and "<script>d" not in html


# --- D12: a step outside the trace -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, 10 ** 6, "len"])
def test_a_step_outside_the_trace_raises_before_anything_moves(ex, bad):
    ex.step = 5
    bad = len(ex.trace.steps) if bad == "len" else bad
    before = snapshot(ex)
    for owner in (ex, ex.stepper, ex.stepper.view):
        with pytest.raises(ValueError, match=r"outside this trace \(0 to \d+\)") as info:
            owner.step = bad
        assert isinstance(info.value, traitlets.TraitError)
        assert snapshot(ex) == before


@pytest.mark.parametrize("bad", ["3", True, 2.0, None])
def test_a_step_that_is_not_an_integer_is_a_type_error(ex, bad):
    ex.step = 5
    before = snapshot(ex)
    for owner in (ex, ex.stepper, ex.stepper.view):
        with pytest.raises(TypeError, match="step: expected an integer"):
            owner.step = bad
        assert snapshot(ex) == before


def test_parts_alone_refuse_a_step_outside_the_trace():
    t = nm.run(nm.Scenario.preset("svm", "hsave_zero"))
    for part in (Stepper(t), FrameView(t, lambda t, i: str(i))):
        with pytest.raises(X.StepOutOfRange, match=f"step: 9 is outside this trace \\(0 to {len(t.steps) - 1}\\)"):
            part.step = 9
        assert part.step == 0


# --- the what-if panel under random requests ------------------------------------------------------------

SVM = nm.Scenario.svm()
VALUES = st.one_of(st.sampled_from(["0", "1", "3", "0x1d01", "4096", "-1", "0x100000000", "EFER_SVME|EFER_LME",
                                    "", "yes", "{VMMCALL}", "0x" + "f" * 40]), st.text(max_size=12))


@st.composite
def requests(draw, options):
    kind = draw(st.sampled_from(["preset", "field", "variant", "move", "reset"]))
    if kind == "preset":
        return kind, draw(st.sampled_from(sorted(nm.Scenario.presets("svm"))))
    if kind == "field":
        path = draw(st.one_of(st.sampled_from(sorted(SVM.fields)), st.text(max_size=10)))
        return kind, (path, draw(VALUES))
    if kind == "variant":
        return kind, draw(st.sampled_from(nm.variants("svm")))
    if kind == "move":
        return kind, (draw(st.sampled_from(options)), draw(st.sampled_from(["before", "after"])),
                      draw(st.sampled_from(options)))
    return kind, None


def send(w, kind, arg):
    if kind in ("preset", "variant"):
        getattr(w, kind).value = arg
    elif kind == "field":
        w.field.value, w.value.value = arg
        w.apply.click()
    elif kind == "move":
        w.move_step.value, w.where.value, w.anchor.value = arg
        w.move.click()
    else:
        w.reset.click()


@functools.lru_cache(maxsize=None)
def prop_explorer():
    """One explorer for every example (not a fixture: Hypothesis would print its huge repr)."""
    return VmrunExplorer(SVM)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_whatif_never_raises_and_never_leaves_a_half_loaded_explorer(data):
    ex = prop_explorer()                          # each example starts where the last one left it
    ex.step = data.draw(st.integers(0, 99), label="step") % len(ex.trace.steps)   # drawn apart from that state
    kind, arg = data.draw(requests(list(ex.whatif.move_step.options)), label="request")   # fixed options
    before = snapshot(ex)
    ex.whatif.status.value = ""
    send(ex.whatif, kind, arg)
    status = ex.whatif.status.value
    event(f"{kind}: {'ran' if '✓ ran' in status else 'refused' if status else 'no run'}")
    if "✓ ran" in status:
        assert_consistent(ex, step=min(before["step"], len(ex.trace.steps) - 1))
        assert ex.whatif.scenario is ex.trace.scenario
    else:                                         # refused, or nothing to do (the same dropdown value)
        assert status == "" or "nv-error" in status
        assert snapshot(ex) == before
