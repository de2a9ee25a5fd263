"""The explorer under what-if runs that shrink the trace, fail, or get odd input: it stays whole."""

import functools
import html
from types import SimpleNamespace

import pytest
import traitlets
from hypothesis import event, given, settings, strategies as st

import nsvm_model as nm
from widgets import Stage, VmrunExplorer, explorer as X, render, stage_data
from widgets.stage import StepNotAnInteger, StepOutOfRange


@pytest.fixture(scope="module")
def ex():
    return VmrunExplorer(nm.Scenario.svm())


def snapshot(ex):
    """Everything a learner sees or the panel remembers, to compare before and after a failed run."""
    s, w = ex.stage, ex.whatif
    return dict(trace=id(ex.trace), step=ex.step, stage_step=s.step, data=id(s.data), steps=len(s.data["steps"]),
                show_all=s.show_all, presenter=s.presenter, focus=ex.focus,
                broken=w.broken.value, scenario=id(w.scenario), flow=id(w._flow),
                preset=w.preset.value, variant=w.variant.value)


def assert_consistent(ex, step=None):
    """The stage shows the explorer's trace, at a step that trace has."""
    n, d = len(ex.trace.steps), ex.stage.data
    assert 0 <= ex.step < n and (step is None or ex.step == step)
    assert ex.step == ex.stage.step
    assert [c["id"] for c in d["steps"]] == list(ex.trace.step_ids)
    assert (d["outcome"], d["variant"], d["scenario"]) == \
        (str(ex.trace.outcome), str(ex.trace.variant), ex.trace.scenario.name)
    assert d["focused"] == bool(ex.focus)
    with pytest.raises(StepOutOfRange, match=rf"\(0 to {n - 1}\)"):     # the stage checks against this trace
        ex.stage.step = n


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
    assert ex.stage.step == 34


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


def test_loading_a_shorter_trace_clamps_the_step():
    ex = VmrunExplorer(nm.run(nm.Scenario.svm()), whatif=False)
    ex.step = 30
    short = nm.run(nm.Scenario.preset("svm", "cpl3"))
    ex.load(short)
    assert ex.trace is short and ex.step == ex.stage.step == 0 and len(ex.stage.data["steps"]) == 1
    ex.load(nm.run(nm.Scenario.svm()))
    assert ex.step == 0
    ex.step = 30
    ex.show(short, ex.render(short))
    assert ex.step == ex.stage.step == 0 and ex.stage.data["scenario"] == "cpl3"


# --- a failed run keeps everything ---------------------------------------------------------------------

def boom(*a, **k):
    raise RuntimeError("<script>x</script> " + "y" * 1000)


@pytest.mark.parametrize("target, where", [(nm, "run"), (nm, "check_order"), (X, "stage_data"),
                                           (render, "broken_list")], ids=["run", "check_order", "data", "broken"])
def test_any_failure_keeps_the_last_good_trace(ex, monkeypatch, target, where):
    ex.step = 7
    ex.stage.show_all = True
    before = snapshot(ex)
    monkeypatch.setattr(target, where, boom)
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "3"
    ex.whatif.apply.click()
    status = ex.whatif.status.value
    assert "nv-error" in status and "RuntimeError" in status and "<script>" not in status
    assert len(status) < 450                      # the message is cut, not the whole exception
    assert snapshot(ex) == before
    ex.stage.show_all = False


@pytest.mark.parametrize("dropdown, value", [("preset", "cpl3"), ("variant", "v6-unified")])
def test_a_failed_dropdown_change_puts_the_dropdown_back_without_another_run(ex, monkeypatch, dropdown, value):
    ex.step = 20
    before = snapshot(ex)
    calls = []
    monkeypatch.setattr(nm, "run", lambda *a: calls.append(a) or boom())
    getattr(ex.whatif, dropdown).value = value
    assert len(calls) == 1 and "nv-error" in ex.whatif.status.value
    assert snapshot(ex) == before


# --- escaping: Python makes the what-if HTML; the stage gets raw text and stage.js escapes it ---------------

def test_bad_input_is_escaped_in_the_status_line(ex):
    ex.whatif.field.value, ex.whatif.value.value = "<img src=x onerror=alert(1)>", "1"
    ex.whatif.apply.click()
    assert "nv-error" in ex.whatif.status.value and "<img" not in ex.whatif.status.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in ex.whatif.status.value
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "<b>bold</b>"
    ex.whatif.apply.click()
    assert "nv-error" in ex.whatif.status.value and "<b>bold" not in ex.whatif.status.value


def test_scenario_names_reach_the_stage_raw_and_the_status_escaped():
    sc = nm.Scenario.svm().with_fields({}, name="<img src=x>", description="<script>d</script>")
    ex = VmrunExplorer(sc)
    d = ex.stage.data                             # the page escapes; escaping here would show &lt; twice
    assert d["scenario"] == "<img src=x>" and d["description"] == "<script>d</script>"
    ex.whatif.field.value, ex.whatif.value.value = "vmcb12.control.asid", "2"
    ex.whatif.apply.click()
    assert "✓ ran" in ex.whatif.status.value and ex.stage.data["scenario"] == "<img src=x>"
    for text in (ex.whatif.status.value, ex.whatif.broken.value):
        assert "<img" not in text and "<script>d" not in text
    assert "&lt;img src=x&gt;" in ex.whatif.status.value


def test_broken_rules_are_escaped():
    t = nm.run(nm.Scenario.svm())
    rule = SimpleNamespace(id="<R1>", after="<a>", before="<b>", reason="<i>why</i>", symptom="<script>s</script>")
    out = render.broken_list(t, [rule])
    assert "✗ &lt;R1&gt;" in out and "<script>" not in out and "<i>why" not in out and "&lt;b&gt;" in out
    assert "✓ no ordering rule" in render.broken_list(t, [])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), kind=st.sampled_from([ValueError, TypeError, RuntimeError, KeyError]))
def test_an_error_line_is_one_escaped_bounded_line(text, kind):
    line = X.error_line(kind(text), limit=120)
    prefix, suffix = '<div class="nv-error">✗ ', " (the last good trace stays)</div>"
    assert line.startswith(prefix) and line.endswith(suffix)
    inner = line[len(prefix):-len(suffix)]
    assert "<" not in inner and ">" not in inner and '"' not in inner    # nothing the learner typed is markup
    said = html.unescape(inner)
    message = str(kind(text))
    if kind in (ValueError, TypeError):
        expected = message
    else:                                         # not bad input: a bug, and it says which
        expected = f"internal error ({kind.__name__}): {message}"
    assert said == (expected if len(expected) <= 120 else expected[:119] + "…")


def test_an_exception_whose_text_fails_still_gets_a_line():
    class Bad(Exception):
        def __str__(self):
            raise RuntimeError("no text")
    assert X.error_line(Bad()) == '<div class="nv-error">✗ internal error (Bad):  (the last good trace stays)</div>'


# --- D12: a step outside the trace -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, 10 ** 6, "len"])
def test_a_step_outside_the_trace_raises_before_anything_moves(ex, bad):
    ex.step = 5
    bad = len(ex.trace.steps) if bad == "len" else bad
    before = snapshot(ex)
    for owner in (ex, ex.stage):
        with pytest.raises(ValueError, match=rf"^step: {bad} is outside this trace \(0 to \d+\)") as info:
            owner.step = bad
        assert isinstance(info.value, traitlets.TraitError) and isinstance(info.value, StepOutOfRange)
        assert snapshot(ex) == before


@pytest.mark.parametrize("bad", ["3", True, 2.0, None])
def test_a_step_that_is_not_an_integer_is_a_type_error(ex, bad):
    ex.step = 5
    before = snapshot(ex)
    for owner in (ex, ex.stage):
        with pytest.raises(TypeError, match="^step: expected an integer") as info:
            owner.step = bad
        assert isinstance(info.value, traitlets.TraitError) and isinstance(info.value, StepNotAnInteger)
        assert snapshot(ex) == before


def test_a_stage_alone_refuses_a_step_outside_the_trace():
    t = nm.run(nm.Scenario.preset("svm", "hsave_zero"))
    stage = Stage(data=stage_data(t, X.flow_of(t)))
    with pytest.raises(StepOutOfRange, match=f"^step: 9 is outside this trace \\(0 to {len(t.steps) - 1}\\)"):
        stage.step = 9
    assert stage.step == 0
    stage.step = len(t.steps) - 1
    assert stage.step == len(t.steps) - 1


@functools.lru_cache(maxsize=None)
def step_explorer():
    return VmrunExplorer(nm.Scenario.preset("svm", "asid_zero"), whatif=False)


@settings(max_examples=100, deadline=None)
@given(k=st.integers(-100, 100), through_stage=st.booleans())
def test_any_integer_step_is_taken_iff_the_trace_has_it(k, through_stage):
    ex = step_explorer()
    n = len(ex.trace.steps)
    ex.step = 0 if k else 1
    owner = ex.stage if through_stage else ex
    if 0 <= k < n:
        owner.step = k
        assert ex.step == ex.stage.step == k
    else:
        with pytest.raises(StepOutOfRange):
            owner.step = k
        assert ex.step == ex.stage.step == (0 if k else 1)


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
    return VmrunExplorer(SVM, focus=["vcpu.gif", "vmcb0*.save.cr3"])


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
        assert ex.whatif.scenario is ex.trace.scenario and ex.focus == before["focus"]
    else:                                         # refused, or nothing to do (the same dropdown value)
        assert status == "" or "nv-error" in status
        assert snapshot(ex) == before
