"""Focus, start and the two write marks: a question's explorer shows its few fields, at its step,
and a cell says honestly whether the step changed it or wrote the value it already had.

The stage's data holds every row, each flagged `default` (shown normally) and `focus` (shown
under the lesson's focus); the page picks the rows from those flags.  So "the rows shown under a
focus" are the table rows with focus=True and the vCPU entries with focus=True."""

from fnmatch import fnmatchcase
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

import nsvm_model as nm
from nsvm_model.text import show_value
from widgets import SideBySide, VmrunExplorer, explore, render, stage_data
from widgets.explorer import flow_of

FOCUS = ["svm.current_vmcb", "vcpu.gif", "vcpu.arch.cr3", "vmcb0*.save.cr3", "vmcb12.control.exit_code"]


@pytest.fixture(scope="module")
def svm():
    return nm.run(nm.Scenario.svm())


@pytest.fixture(scope="module")
def vmx():
    return nm.run(nm.Scenario.vmx())


@pytest.fixture(scope="module")
def plain(svm):
    return VmrunExplorer(svm, whatif=False)


@pytest.fixture(scope="module")
def focused(svm):
    return VmrunExplorer(svm, whatif=False, focus=FOCUS, start="svm.enter.switch_vmcb02")


def table_rows(d):
    return [r for g in d["table"]["groups"] for r in g["rows"]]


def paths_of(d, row):
    return [d["paths"][p] for p in row["cells"] if p >= 0]


def focus_rows(d):
    """The rows the page shows under the focus, each as the paths it shows."""
    return ([paths_of(d, r) for r in table_rows(d) if r["focus"]]
            + [[d["paths"][v["path"]]] for v in d["vcpu"] if v["focus"]])


def default_rows(d):
    """The rows the page shows with no focus."""
    return [paths_of(d, r) for r in table_rows(d) if r["default"]] + [[d["paths"][v["path"]]] for v in d["vcpu"]]


def every_row(d):
    """The rows the page shows with "every field" ticked."""
    return [paths_of(d, r) for r in table_rows(d)] + [[d["paths"][v["path"]]] for v in d["vcpu"]]


# --- focus ------------------------------------------------------------------------------------------

def test_focus_limits_rows_to_the_named_fields(plain, focused):
    few, many = focus_rows(focused.stage.data), default_rows(plain.stage.data)
    assert 0 < len(few) < len(many) // 4
    for paths in few:                     # each row shows at least one focused path
        assert any(fnmatchcase(p, pat) for p in paths for pat in FOCUS), paths
    shown = {p for r in few for p in r}
    assert {"svm.current_vmcb", "vcpu.gif", "vcpu.arch.cr3", "vmcb01.save.cr3", "vmcb02.save.cr3",
            "vmcb12.control.exit_code"} <= shown
    assert focused.stage.data["focused"] is True and plain.stage.data["focused"] is False
    assert focus_rows(plain.stage.data) == []
    groups = [g["title"] for g in focused.stage.data["table"]["groups"] if any(r["focus"] for r in g["rows"])]
    assert groups == ["control", "save"]  # the segment group has no focused row: the page drops it


def test_show_every_field_expands_and_goes_back(svm, plain):
    ex = VmrunExplorer(svm, whatif=False, focus=FOCUS)
    data = ex.stage.data
    few = len(focus_rows(data))
    ex.stage.show_all = True                      # the page then shows every row the data holds
    assert ex.stage.data is data
    assert len(every_row(data)) >= len(default_rows(plain.stage.data)) > few
    assert len([r for r in table_rows(data)]) == len(render.panel_rows(svm, show_all=True))
    ex.stage.show_all = False
    assert ex.stage.data is data and len(focus_rows(ex.stage.data)) == few


def test_focus_and_step_survive_a_whatif_run(svm):
    ex = VmrunExplorer(svm, focus=FOCUS, start=10)
    before = sorted(focus_rows(ex.stage.data))
    ex.whatif.preset.value = "asid_zero"
    assert ex.trace.scenario.name == "asid_zero" and ex.focus == tuple(FOCUS)
    assert ex.step == ex.stage.step == min(10, len(ex.trace.steps) - 1)
    assert ex.stage.data["scenario"] == "asid_zero" and ex.stage.data["focused"] is True
    assert sorted(focus_rows(ex.stage.data)) == before


def test_focus_on_a_path_no_table_shows_adds_it(svm):
    d = stage_data(svm, flow_of(svm), ("hsave.save.cr3",))
    assert focus_rows(d) == [["hsave.save.cr3"]]
    assert [d["paths"][v["path"]] for v in d["vcpu"]][-1] == "hsave.save.cr3"     # and under "every field"
    assert "hsave.save.cr3" not in {p for r in every_row(stage_data(svm, flow_of(svm))) for p in r}
    ex = VmrunExplorer(svm, whatif=False, focus=["hsave.save.cr3"])
    assert focus_rows(ex.stage.data) == [["hsave.save.cr3"]]


def test_vmcs_panel_focus(vmx):
    d = stage_data(vmx, flow_of(vmx), ("vmcs0*.guest_cr3", "vmx.current_vmcs"))
    assert sorted(tuple(r) for r in focus_rows(d)) == [
        ("vmcs01.guest_cr3", "vmcs02.guest_cr3", "vmcs12.guest_cr3"), ("vmx.current_vmcs",)]


@pytest.mark.parametrize("bad, error", [
    ("vcpu.gif", TypeError), (["vcpu.gif", 3], TypeError), ({"vcpu.gif"}, TypeError),
    (["vcpu.giff"], ValueError), (["vmcs12.*"], ValueError)])
def test_a_bad_focus_names_focus_and_gives_an_example(svm, vmx, bad, error):
    with pytest.raises(error, match=r"^focus: .*e\.g\. focus=\[") as info:
        VmrunExplorer(svm, whatif=False, focus=bad)
    if bad == ["vcpu.giff"]:
        assert "did you mean vcpu.gif" in str(info.value)
    if bad != ["vmcs12.*"]:               # that one is a VMX path: fine for a side by side
        with pytest.raises(error, match="^focus: "):
            SideBySide(svm, vmx, focus=bad)


@pytest.mark.parametrize("bad", ["vcpu.gif", ["vcpu.gif", 3], ["vcpu.giff"]])
def test_stage_data_alone_refuses_a_bad_focus(svm, bad):
    with pytest.raises((TypeError, ValueError), match="^focus: "):
        stage_data(svm, flow_of(svm), bad)


PRESETS = [(isa, name) for isa in ("svm", "vmx") for name in sorted(nm.Scenario.presets(isa))]


@st.composite
def focus_lists(draw, paths):
    """Patterns that each match some path: a path itself, a prefix and *, or a character as ?."""
    out = []
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4), label="paths"):
        kind = draw(st.sampled_from(["exact", "prefix", "any-char"]))
        if kind == "prefix":
            out.append(path[:draw(st.integers(1, len(path)))] + "*")
        elif kind == "any-char":
            k = draw(st.integers(0, len(path) - 1))
            out.append(path[:k] + "?" + path[k + 1:])
        else:
            out.append(path)
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_under_any_focus_the_shown_rows_are_exactly_the_focused_paths(data):
    isa, name = data.draw(st.sampled_from(PRESETS), label="preset")
    trace = nm.run(nm.Scenario.preset(isa, name))
    focus = data.draw(focus_lists(sorted(trace.initial)), label="focus")
    checked = render.check_focus(trace, focus)
    assert checked == tuple(focus)
    d = stage_data(trace, flow_of(trace), checked)
    hit = lambda p: any(fnmatchcase(p, pat) for pat in focus)
    assert d["focused"] is True
    for r in table_rows(d):               # a row with a focused cell is shown under the focus
        if any(hit(p) for p in paths_of(d, r)):
            assert r["focus"], r["field"]     # (the converse: test_a_focused_row_shows_a_focused_cell)
    cells = {p for r in table_rows(d) for p in paths_of(d, r)}
    for v in d["vcpu"]:
        path = d["paths"][v["path"]]
        assert v["focus"] == hit(path) and path not in cells, path      # no path twice on screen
    shown = {p for r in focus_rows(d) for p in r}
    assert {p for p in trace.initial if hit(p)} <= shown              # every path the focus names is on screen


def test_a_focused_row_shows_a_focused_cell(svm):
    d = stage_data(svm, flow_of(svm), render.check_focus(svm, ["nested.save.*"]))
    for r in table_rows(d):
        if r["focus"]:
            assert any(fnmatchcase(p, "nested.save.*") for p in paths_of(d, r)), (r["field"], paths_of(d, r))


# --- start ------------------------------------------------------------------------------------------

def test_start_by_id_and_by_index(svm, focused):
    i = svm.index_of("svm.enter.switch_vmcb02")
    assert focused.step == focused.stage.step == i
    assert focused.stage.data["steps"][focused.stage.step]["id"] == "svm.enter.switch_vmcb02"
    ex = VmrunExplorer(svm, whatif=False, start=5)
    assert ex.step == ex.stage.step == 5
    assert VmrunExplorer(svm, whatif=False).stage.step == 0


@pytest.mark.parametrize("bad, error, text", [
    ("svm.enter.switch_vmcb2", ValueError, "svm.enter.switch_vmcb02"), ("nope", ValueError, "e.g."),
    (10 ** 6, ValueError, "outside this trace"), (-1, ValueError, "outside this trace"),
    (2.0, TypeError, "step index or a step id"), (True, TypeError, "step index or a step id")])
def test_a_bad_start_names_start(svm, bad, error, text):
    with pytest.raises(error, match=r"^start: ") as info:
        VmrunExplorer(svm, whatif=False, start=bad)
    assert text in str(info.value)


# --- explore(question) --------------------------------------------------------------------------------

def test_explore_opens_a_question_at_its_step_and_fields(svm):
    q = SimpleNamespace(trace=svm, step_index=svm.index_of("svm.vmrun.save_l1_state"), focus=["vmcb01.save.*"])
    ex = explore(q)
    assert ex.whatif is None and ex.step == ex.stage.step == q.step_index and ex.focus == ("vmcb01.save.*",)
    rows = focus_rows(ex.stage.data)
    assert rows and all(any(p.startswith("vmcb01.save.") for p in r) for r in rows)
    assert ex.stage.data["steps"][ex.step]["id"] == "svm.vmrun.save_l1_state"
    with pytest.raises(TypeError, match="^question: .*step_index, focus"):
        explore(SimpleNamespace(trace=svm))


# --- the two marks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["svm", "vmx"])
def test_change_marks_are_the_changed_paths_for_every_step(request, which):
    t = request.getfixturevalue(which)
    d = VmrunExplorer(t, whatif=False).stage.data
    paths = d["paths"]
    for s, c in zip(t.steps, d["steps"], strict=True):
        changed = {paths[int(p)] for p in c["was"]}
        assert changed == set(s.changed) == {paths[p] for p, _ in c["diff"]}, s.id
        assert {paths[p] for p in c["written"]} == set(s.written), s.id
        assert changed <= {paths[p] for p in c["written"]}, s.id     # a change is a write too (✎Δ, not Δ alone)
        assert c["was"] == {str(paths.index(p)): show_value(old) for p, old, _ in s.diff}, s.id


def test_saving_l1_state_marks_every_saved_field(plain, svm):
    i = svm.index_of("svm.vmrun.save_l1_state")
    d = plain.stage.data
    c = d["steps"][i]
    saved = {d["paths"][p] for p in c["written"] if d["paths"][p].startswith("vmcb01.save.")}
    assert len(saved) >= 5
    changed = {d["paths"][int(p)] for p in c["was"]}
    assert changed == set(svm.steps[i].changed) == {"vmcb01.save.rip"}     # only RIP really changes here
    shown = {p for r in default_rows(d) for p in r}
    assert saved | changed <= shown                                         # and the page shows them


def test_side_by_side_takes_one_focus_for_both_sides_and_opens_where_asked():
    sb = SideBySide(nm.Scenario.preset("svm", "teaching"), nm.Scenario.preset("vmx", "teaching"),
                    focus=["svm.current_vmcb", "vmx.current_vmcs", "vcpu.arch.cr3"],
                    start="svm.enter.switch_vmcb02")
    assert sb.traces["svm"].steps[sb.svm.step].id == "svm.enter.switch_vmcb02"
    assert sb.traces["vmx"].steps[sb.vmx.step].phase == "P7"       # the VMX side follows to its switch
    for side, mine, other in ((sb.svm, "svm.current_vmcb", "vmx.current_vmcs"),
                              (sb.vmx, "vmx.current_vmcs", "svm.current_vmcb")):
        shown = {p for r in focus_rows(side.data) for p in r}
        assert mine in shown and other not in shown and "vcpu.arch.cr3" in shown
        assert shown <= {mine, "vcpu.arch.cr3"} and side.data["focused"] is True
    with pytest.raises(ValueError, match="focus: 'nope'"):
        SideBySide(nm.Scenario.svm(), nm.Scenario.vmx(), focus=["nope"])


def test_a_focus_without_vmcb_rows_leaves_no_empty_panel():
    ex = VmrunExplorer(nm.Scenario.preset("svm", "teaching"), focus=["vcpu.arch.cr3", "vcpu.gif"], whatif=False)
    d = ex.stage.data
    assert not any(r["focus"] for r in table_rows(d))          # no table row, so the page draws no table
    assert sorted(focus_rows(d)) == [["vcpu.arch.cr3"], ["vcpu.gif"]]


def test_the_flow_diagram_draws_only_the_functions_the_run_entered():
    t = nm.run(nm.Scenario.preset("svm", "teaching"))
    svg = stage_data(t, t.flow or nm.machine_for("svm").flows["upstream"])["diagram"]["svg"]
    assert "svm_leave_smm" not in svg and "rsm_failed" not in svg
    assert "enter_svm_guest_mode" in svg
    whole = render.flow_layout(t.flow or nm.machine_for("svm").flows["upstream"])["svg"]
    assert "svm_leave_smm" in whole                            # the flow has it; this run did not enter it
