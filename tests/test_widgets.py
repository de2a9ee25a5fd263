"""Widget logic, from Python: the stage's data says what the trace says, the step is one value in
Python and in the page, what-if runs swap in whole, bad input keeps the last good trace, no
plotting library is needed.  The page (stage.js) only draws this data, so the data is what is checked."""

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings, strategies as st

import nsvm_model as nm
from nsvm_model.phases import PHASES
from nsvm_model.text import show_value
from widgets import SideBySide, Stage, VmrunExplorer, render, stage_data
from widgets.explorer import flow_of
from widgets.stage import StepOutOfRange

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ex():
    return VmrunExplorer(nm.Scenario.svm())


def replay(d):
    """What the page shows: the value string of every path before the first step (index 0) and
    after each step, from `initial` and the diffs alone (a path no state holds shows blank)."""
    values = [d["initial"][p] if p < len(d["initial"]) else "" for p in range(len(d["paths"]))]
    out = [list(values)]
    for s in d["steps"]:
        for p, value in s["diff"]:
            values[p] = value
        out.append(list(values))
    return out


# --- the step: one value, in Python and in the page ------------------------------------------------

def test_the_step_moves_the_stage_and_a_step_taken_in_the_page_moves_python(ex):
    n = len(ex.trace.steps)
    for k in (1, n - 1, n - 2, 7, 0):
        ex.step = k
        assert ex.stage.step == k
    for k in (3, n - 1, 0):                       # what the page's buttons, slider and keys send
        ex.stage.step = k
        assert ex.step == k


# --- the step card -----------------------------------------------------------------------------------

def test_step_card_names_the_kernel_function_its_file_and_the_pinned_commit(ex):
    d, t = ex.stage.data, ex.trace
    assert d["commit"] == nm.KERNEL_COMMIT[:12] and len(nm.KERNEL_COMMIT) == 40
    assert [c["id"] for c in d["steps"]] == list(t.step_ids)
    for s, c in zip(t.steps, d["steps"]):
        assert c["function"] == s.function and c["chain"][-1] == f"{s.function}()", s.id
        assert c["file"] == s.step.file and c["file"].startswith("arch/x86/kvm/"), s.id
        assert c["url"].startswith("https://github.com/") and c["url"].endswith(f"/blob/{nm.KERNEL_COMMIT}/{c['file']}")
        assert c["phase"] == s.phase and c["phase_title"] == PHASES[s.phase][0]
        assert (c["title"], c["reason"], c["manual"], c["label"], c["notes"]) == \
            (s.title, s.reason, s.manual, s.label, list(s.notes)), s.id
        for seq, _ in s.pos:                      # every kernel function the step sits in is named
            if seq != "main":
                assert render.sequence_label(seq) in c["chain"], (s.id, seq)
    called = [c for c in d["steps"] if len(c["chain"]) > 1]
    assert called and all(c["chain"][0] != c["chain"][-1] for c in called)


def test_the_header_facts_come_from_the_trace(ex):
    d, t = ex.stage.data, ex.trace
    assert (d["isa"], d["variant"], d["flow"], d["scenario"], d["description"], d["outcome"], d["failure"]) == \
        ("svm", str(t.variant), flow_of(t).name, t.scenario.name, t.scenario.description, str(t.outcome), t.failure)
    assert d["back_to_l1"] is False
    rt = nm.run(nm.Scenario.preset("svm", "round_trip"))
    assert rt.outcome == "l2_runs" and stage_data(rt, flow_of(rt))["back_to_l1"] is True


# --- the marks: written, changed (with the old value), read ------------------------------------------------

def test_marked_fields_are_the_steps_writes_changes_and_reads(ex):
    t, d = ex.trace, ex.stage.data
    paths = d["paths"]
    for s, c in zip(t.steps, d["steps"]):
        assert {paths[p] for p in c["written"]} == set(s.written), s.id      # written, same value or not
        assert {paths[int(p)] for p in c["was"]} == set(s.changed), s.id     # the value changed
        assert {paths[p] for p in c["read"]} == set(s.read), s.id
        for path, old, new in s.diff:                                       # a change says what it was
            assert c["was"][str(paths.index(path))] == show_value(old), path
            assert [paths.index(path), show_value(new)] in c["diff"], path
        assert len(c["diff"]) == len(s.diff)


def test_a_write_of_the_same_value_has_its_own_mark(ex):
    t, d = ex.trace, ex.stage.data
    i = t.index_of("svm.vmrun.save_l1_state")
    same = {d["paths"].index(p) for p in set(t.steps[i].written) - set(t.steps[i].changed)}
    c = d["steps"][i]
    assert len(same) >= 4 and same <= set(c["written"])
    assert not {str(p) for p in same} & set(c["was"])      # written, not changed: no "was"
    assert not {p for p, _ in c["diff"]} & same


# --- the pointer column ----------------------------------------------------------------------------------

@pytest.mark.parametrize("isa, switch, pointer, name, before, after", [
    ("svm", "svm.enter.switch_vmcb02", "svm.current_vmcb", "svm->vmcb", "vmcb01", "vmcb02"),
    ("vmx", "vmx.enter.switch_vmcs02", "vmx.current_vmcs", "vmx->loaded_vmcs", "vmcs01", "vmcs02")])
def test_the_current_structure_pointer_moves(isa, switch, pointer, name, before, after):
    t = nm.run(nm.Scenario.preset(isa, "default"))
    d = stage_data(t, flow_of(t))
    i = t.index_of(switch)
    p = d["table"]["pointer"]
    assert d["paths"][p] == pointer and d["table"]["pointer_name"] == name
    values = replay(d)                            # values[k + 1]: after step k
    assert values[i][p] == before and values[i + 1][p] == after
    assert before in d["table"]["columns"] and after in d["table"]["columns"]
    assert all(v[p] in d["table"]["columns"] for v in values)     # the page marks one column


# --- the data is the trace: replayed diffs, marks, table, timeline, diagram ----------------------------------

PRESETS = [(isa, name) for isa in ("svm", "vmx") for name in sorted(nm.Scenario.presets(isa))]
VALUES = ["0", "1", "3", "0x1000", "0x1d01", "0xffffffff"]


@functools.lru_cache(maxsize=None)
def run(isa, name, variant, edit=None):
    scenario = nm.Scenario.preset(isa, name)
    if edit:
        scenario = scenario.with_fields(dict([edit]))
    return nm.run(scenario, variant)


@st.composite
def traces(draw):
    """A preset of either ISA under any variant, sometimes with one field set to another value."""
    isa, name = draw(st.sampled_from(PRESETS), label="preset")
    variant = draw(st.sampled_from(nm.variants(isa)), label="variant")
    edit = None
    if draw(st.booleans(), label="edit"):
        field = draw(st.sampled_from(sorted(nm.Scenario.preset(isa, name).fields)), label="field")
        edit = (field, draw(st.sampled_from(VALUES), label="value"))
    try:
        trace = run(isa, name, variant, edit)
    except ValueError:                            # a value the field refuses: not a run
        assume(False)
    assume(trace.steps)
    return trace


@settings(max_examples=60, deadline=None)
@given(trace=traces())
def test_replaying_initial_and_diffs_gives_every_value_of_every_step(trace):
    d = stage_data(trace, flow_of(trace))
    paths = d["paths"]
    assert len(set(paths)) == len(paths) and paths[:len(d["initial"])] == list(trace.initial)
    values = replay(d)
    assert len(values) == len(trace.steps) + 1
    for k, shown in enumerate(values):
        state = trace.state_at(k - 1)
        assert shown == [show_value(state[p]) if p in state else "" for p in paths], k
    for i, (s, c) in enumerate(zip(trace.steps, d["steps"])):
        assert c["id"] == s.id
        assert {paths[int(p)]: old for p, old in c["was"].items()} == {p: show_value(o) for p, o, _ in s.diff}
        assert all(values[i][int(p)] == old for p, old in c["was"].items())     # "was" is the value before
        assert c["written"] == sorted(c["written"]) and {paths[p] for p in c["written"]} == set(s.written)
        assert {paths[p] for p in c["read"]} == set(s.read)


@settings(max_examples=40, deadline=None)
@given(trace=traces())
def test_the_table_timeline_and_diagram_data_agree_with_the_trace(trace):
    d = stage_data(trace, flow_of(trace))
    assert json.loads(json.dumps(d)) == d         # what the page receives is exactly this
    isa, paths = trace.isa, d["paths"]
    cfg = render.PANELS[isa]
    table = d["table"]
    assert table["columns"] == [label for label, _ in cfg["columns"]]
    rows = [(g["title"], r) for g in table["groups"] for r in g["rows"]]
    assert sorted((title, r["field"]) for title, r in rows) == sorted(
        (render.group_title(isa, g, f), f) for g, f in render.panel_rows(trace, show_all=True))
    assert {(title, r["field"]) for title, r in rows if r["default"]} == {
        (render.group_title(isa, g, f), f) for g, f in render.panel_rows(trace)}
    assert [g["title"] for g in table["groups"] if g["folded"]] == [t for t in cfg["folded"]
                                                                  if any(g["title"] == t for g in table["groups"])]
    written = {p for s in trace.steps for p in s.written}
    prefixes = [pattern.split(".", 1)[0] + "." for _, pattern in cfg["columns"]]
    for title, r in rows:
        assert len(r["cells"]) == len(cfg["columns"]) and any(p >= 0 for p in r["cells"]), r
        for c, p in enumerate(r["cells"]):
            if p >= 0:                            # each cell is the row's field in its column's structure
                assert paths[p].startswith(prefixes[c]) and paths[p].endswith("." + r["field"]), (paths[p], c)
                assert paths[p] in trace.initial
        if any(p >= 0 and paths[p] in written for p in r["cells"]):
            assert r["default"], r                # a field the run writes is on show
        assert r["focus"] is False                # no focus asked for
    assert [paths[v["path"]] for v in d["vcpu"]] == [p for p in render.VCPU_ROWS[isa] if p in trace.initial]
    assert d["focused"] is False and not any(v["focus"] for v in d["vcpu"])

    states = [trace.initial] + [s.state for s in trace.steps]
    tl = d["timeline"]
    assert tl["states"] == len(states) and [r["title"] for r in tl["rows"]] == [t for t, _ in render.TIMELINE_ROWS[isa]]
    for (title, path), row in zip(render.TIMELINE_ROWS[isa], tl["rows"]):
        at, colour_of, last = 0, {}, object()
        for start, length, label, colour in row["runs"]:
            assert start == at and length > 0, (title, row["runs"])
            run_values = [states[k][path] for k in range(start, start + length)]
            assert all(v == run_values[0] for v in run_values) and run_values[0] != last, title
            assert label == render.value_label(trace, path, run_values[0])
            assert colour_of.setdefault(repr(run_values[0]), colour) == colour     # one colour per value
            at, last = start + length, run_values[0]
        assert at == len(states) and len(set(colour_of.values())) == len(colour_of), title

    diagram = d["diagram"]
    assert diagram["svg"].startswith("<svg") and "<!--" not in diagram["svg"]
    assert all(c["node"] in diagram["boxes"] for c in d["steps"])    # the page can outline every step
    assert all(len(b) == 4 for b in diagram["boxes"].values()) and len(diagram["shift"]) == len(diagram["size"]) == 2


# --- what-if ---------------------------------------------------------------------------------------------

def test_bad_input_keeps_the_last_good_trace():
    ex = VmrunExplorer(nm.Scenario.svm())
    good, data = ex.trace, ex.stage.data
    ex.whatif.field.value = "vmcb12.control.asid"
    ex.whatif.value.value = "0x100000000"
    ex.whatif.apply.click()
    assert ex.trace is good and ex.stage.data is data
    assert "32 bits" in ex.whatif.status.value and "nv-error" in ex.whatif.status.value
    ex.whatif.field.value = "vmcb12.control.asidd"
    ex.whatif.apply.click()
    assert ex.trace is good and ex.stage.data is data and "did you mean" in ex.whatif.status.value
    ex.whatif.value.value = "0"
    ex.whatif.field.value = "vmcb12.control.asid"
    ex.whatif.apply.click()
    assert ex.trace.outcome == "vmexit_invalid" and ex.step <= len(ex.trace.steps) - 1
    assert ex.stage.data["outcome"] == "vmexit_invalid" and len(ex.stage.data["steps"]) == len(ex.trace.steps)


def test_variant_switch_lists_broken_rules_and_invariants():
    ex = VmrunExplorer(nm.Scenario.preset("svm", "pae_shadow"))
    assert "no ordering rule" in ex.whatif.broken.value
    ex.whatif.variant.value = "v6-unified"
    html = ex.whatif.broken.value
    for rule in ("R3", "R15", "R18", "R21", "R22", "I4", "I5"):
        assert f"✗ {rule}" in html
    assert ex.stage.data["variant"] == "v6-unified"
    ex.whatif.reset.click()
    assert ex.trace.variant == "upstream" and "no ordering rule" in ex.whatif.broken.value
    assert ex.stage.data["variant"] == "upstream"


def test_moving_a_step_reruns_with_the_edited_order():
    ex = VmrunExplorer(nm.Scenario.svm())
    ex.whatif.move_step.value = "svm.enter.enter_guest_mode"
    ex.whatif.where.value = "after"
    ex.whatif.anchor.value = "svm.enter.init_mmu_context"
    ex.whatif.move.click()
    assert "✗ R14" in ex.whatif.broken.value and "✗ I3" in ex.whatif.broken.value
    ids = [c["id"] for c in ex.stage.data["steps"]]
    assert ids == list(ex.trace.step_ids)
    assert ids.index("svm.enter.init_mmu_context") < ids.index("svm.enter.enter_guest_mode")
    assert ex.stage.data["flow"] == flow_of(ex.trace).name and "moved" in ex.stage.data["variant"]


def test_render_changes_nothing_and_show_swaps_in():
    ex = VmrunExplorer(nm.Scenario.svm(), whatif=False)
    ex.step = 20
    other = nm.run(nm.Scenario.preset("svm", "round_trip"))
    trace, data = ex.trace, ex.stage.data
    new = ex.render(other)
    assert ex.trace is trace and ex.stage.data is data and ex.step == ex.stage.step == 20
    assert new["scenario"] == "round_trip" and [c["id"] for c in new["steps"]] == list(other.step_ids)
    ex.show(other, new)
    assert ex.trace is other and ex.stage.data is new and ex.step == ex.stage.step == 20
    ex.load(trace)
    assert ex.trace is trace and ex.stage.data == data and ex.step == 20


# --- switches, parts alone ------------------------------------------------------------------------------

def test_presenter_and_every_field_are_stage_switches_that_change_no_data():
    ex = VmrunExplorer(nm.Scenario.svm(), whatif=False, presenter=True)
    assert ex.stage.presenter is True and ex.stage.show_all is False
    ex.step = 9
    data = ex.stage.data
    ex.stage.presenter = False
    ex.stage.show_all = True
    assert ex.stage.data is data and ex.step == 9
    ex.stage.show_all = False
    assert ex.stage.data is data
    assert VmrunExplorer(nm.Scenario.svm(), whatif=False).stage.presenter is False


def test_stage_alone_and_explorer_from_a_trace():
    t = nm.run(nm.Scenario.vmx())
    stage = Stage(data=stage_data(t, flow_of(t)))
    assert {"data", "step", "show_all", "presenter"} <= set(stage.trait_names(sync=True))   # the page sees them
    stage.step = 4
    assert stage.step == 4
    with pytest.raises(StepOutOfRange):
        stage.step = len(t.steps)
    assert stage.step == 4
    ex = VmrunExplorer(t)
    assert ex.trace is t and ex.stage.data["isa"] == "vmx" and ex.children == (ex.stage, ex.whatif)
    assert VmrunExplorer(t, whatif=False).children[1:] == ()
    with pytest.raises(TypeError):
        VmrunExplorer("svm")


# --- side by side ----------------------------------------------------------------------------------------

def test_side_by_side_follows_the_phase():
    sb = SideBySide(nm.Scenario.svm(), nm.Scenario.vmx())
    svm, vmx = sb.traces["svm"], sb.traces["vmx"]
    assert sb.svm.data["isa"] == "svm" and sb.vmx.data["isa"] == "vmx"
    sb.svm.step = svm.index_of("svm.enter.load_cr3.set_cr3")
    assert vmx.steps[sb.vmx.step].phase == "P12" and sb.vmx.data["steps"][sb.vmx.step]["phase"] == "P12"
    sb.vmx.step = vmx.index_of("vmx.enter.enter_guest_mode")
    assert svm.steps[sb.svm.step].id == "svm.enter.enter_guest_mode"
    assert "P8" in sb.phase.value


@pytest.mark.parametrize("side", ["svm", "vmx"])
def test_stepping_either_side_moves_the_other_to_its_aligned_partner(side):
    sb = SideBySide(nm.Scenario.svm(), nm.Scenario.vmx())
    me, other = (sb.svm, sb.vmx) if side == "svm" else (sb.vmx, sb.svm)
    trace = sb.traces[side]
    n = len(trace.steps)
    for i in range(n):
        if me.step == i:                          # a step that does not change fires nothing
            me.step = (i + 1) % n
        before = other.step
        me.step = i
        partner = sb.alignment.partner(side, i)
        assert other.step == (before if partner is None else partner), (side, i)
        phase = trace.steps[i].phase
        assert f"{phase} {render.esc(sb.alignment.row(phase).title)}" in sb.phase.value, (side, i)


def test_side_by_side_shows_each_sides_failure():
    sb = SideBySide(nm.Scenario.preset("svm", "asid_zero"), nm.Scenario.preset("vmx", "vpid_zero"))
    sb.svm.step = sb.traces["svm"].index_of("svm.vmrun.check_controls")
    assert sb.phase.value.count("fails here") == 2 and "VMfailValid 7" in sb.phase.value


# --- no figure, no dot -----------------------------------------------------------------------------------

def test_an_explorer_needs_no_matplotlib():
    """The stage is drawn in the page: building one imports no plotting library (a browser
    Python such as Pyodide has none)."""
    code = ("import sys, nsvm_model as nm; from widgets import VmrunExplorer; "
            "VmrunExplorer(nm.Scenario.preset('svm', 'round_trip')); print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_missing_dot_is_explained_and_the_rest_works(monkeypatch):
    import graphviz

    def no_dot(*a, **k):
        raise graphviz.ExecutableNotFound(["dot"])
    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    flow = nm.Flow("no-dot", "svm", nm.machine_for("svm").flows["upstream"].sequences,
                   nm.machine_for("svm").flows["upstream"].on)
    t = nm.run(nm.Scenario.svm(), flow)
    d = stage_data(t, flow)
    assert "apt-get install graphviz" in d["diagram"]["missing"] and "svg" not in d["diagram"]
    assert [c["id"] for c in d["steps"]] == list(t.step_ids) and d["timeline"]["rows"] and d["table"]["groups"]
    ex = VmrunExplorer(t, whatif=False)
    ex.step = 3
    assert "missing" in ex.stage.data["diagram"] and ex.stage.step == 3


def test_without_dot_every_named_flow_uses_its_shipped_layout(monkeypatch):
    """A browser Python has no dot: each variant's whole flow, laid out when the package was built,
    stands in, and it has a box for every step a run takes."""
    import graphviz

    def no_dot(*a, **k):
        raise graphviz.ExecutableNotFound(["dot"])
    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    monkeypatch.setattr(render, "_LAYOUTS", {})
    for isa in ("svm", "vmx"):
        for variant in nm.variants(isa):
            flow = nm.machine_for(isa).flows[variant]
            for preset in ("default", "teaching"):
                t = nm.run(nm.Scenario.preset(isa, preset), flow)
                d = stage_data(t, flow)["diagram"]
                assert "svg" in d, (isa, variant)
                assert {s.pos and render.node_name(*s.pos[-1]) for s in t.steps} <= set(d["boxes"]), (isa, variant)


def test_the_shipped_layouts_are_current():
    """widgets/layouts/flows.json.gz is what dot lays out now (run `make layouts` after changing a flow)."""
    if not shutil.which("dot"):
        if os.environ.get("CI") == "true":
            pytest.fail("dot is missing: .ci/run must install graphviz")
        pytest.skip("no dot to compare with")
    shipped = render.shipped_layouts()
    now = json.loads(json.dumps(render.all_named_layouts()))
    assert sorted(shipped) == sorted(now), "run `make layouts`: a named flow was added, removed or changed"
    assert shipped == now, "run `make layouts`: a layout changed"
