"""Focus, start and the two write marks: a question's explorer shows its few fields, at its step,
and a cell says honestly whether the step changed it or wrote the value it already had."""

import re
from fnmatch import fnmatchcase
from types import SimpleNamespace

import pytest

import nsvm_model as nm
from widgets import VmcbPanel, VmrunExplorer, explore, render

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


def rows(html):
    """The paths of each table row that shows state."""
    return [re.findall(r'data-path="([^"]+)"', r) for r in re.findall(r"<tr>.*?</tr>", html) if "data-path" in r]


def cells(html, cls):
    return set(re.findall(rf'<td class="[^"]*\b{cls}\b[^"]*" data-path="([^"]+)"', html))


# --- focus ------------------------------------------------------------------------------------------

def test_focus_limits_rows_to_the_named_fields(plain, focused):
    few, many = rows(focused.stepper.view.frame_html()), rows(plain.stepper.view.frame_html())
    assert 0 < len(few) < len(many) // 4
    for paths in few:                     # each row shows at least one focused path
        assert any(fnmatchcase(p, pat) for p in paths for pat in FOCUS), paths
    shown = {p for r in few for p in r}
    assert {"svm.current_vmcb", "vcpu.gif", "vcpu.arch.cr3", "vmcb01.save.cr3", "vmcb02.save.cr3",
            "vmcb12.control.exit_code"} <= shown
    html = focused.stepper.view.frame_html()
    assert f"focused on {len(few)} fields; tick 'show every field' for all" in html
    assert "focused on" not in plain.stepper.view.frame_html()
    assert re.findall(r"<summary>([^<]+)</summary>", html) == ["control", "save", "vCPU"]   # no empty group


def test_show_every_field_expands_and_goes_back(svm, plain):
    ex = VmrunExplorer(svm, whatif=False, focus=FOCUS)
    few = len(rows(ex.stepper.view.frame_html()))
    ex.all_fields.value = True
    html = ex.stepper.view.frame_html()
    assert len(rows(html)) >= len(rows(plain.stepper.view.frame_html())) > few and "focused on" not in html
    ex.all_fields.value = False
    assert len(rows(ex.stepper.view.frame_html())) == few


def test_focus_and_step_survive_a_whatif_run(svm):
    ex = VmrunExplorer(svm, focus=FOCUS, start=10)
    before = {tuple(r) for r in rows(ex.stepper.view.frame_html())}
    ex.whatif.preset.value = "asid_zero"
    assert ex.trace.scenario.name == "asid_zero" and ex.focus == tuple(FOCUS)
    assert ex.step == min(10, len(ex.trace.steps) - 1)
    assert {tuple(r) for r in rows(ex.stepper.view.frame_html())} == before
    assert "focused on" in ex.stepper.view.frame_html()


def test_focus_on_a_path_no_table_shows_adds_it(svm):
    panel = VmcbPanel(svm, focus=["hsave.save.cr3"])
    html = panel.frame_html()
    assert rows(html) == [["hsave.save.cr3"]] and "show_all=True" in html


def test_vmcs_panel_focus(vmx):
    panel = VmcbPanel(vmx, focus=["vmcs0*.guest_cr3", "vmx.current_vmcs"])
    assert sorted(tuple(r) for r in rows(panel.frame_html())) == [
        ("vmcs01.guest_cr3", "vmcs02.guest_cr3", "vmcs12.guest_cr3"), ("vmx.current_vmcs",)]


@pytest.mark.parametrize("bad, error", [
    ("vcpu.gif", TypeError), (["vcpu.gif", 3], TypeError), ({"vcpu.gif"}, TypeError),
    (["vcpu.giff"], ValueError), (["vmcs12.*"], ValueError)])
def test_a_bad_focus_names_focus_and_gives_an_example(svm, bad, error):
    with pytest.raises(error, match=r"^focus: .*e\.g\. focus=\[") as info:
        VmrunExplorer(svm, whatif=False, focus=bad)
    if bad == ["vcpu.giff"]:
        assert "did you mean vcpu.gif" in str(info.value)
    with pytest.raises(error, match="^focus: "):
        VmcbPanel(svm, focus=bad)


# --- start ------------------------------------------------------------------------------------------

def test_start_by_id_and_by_index(svm, focused):
    i = svm.index_of("svm.enter.switch_vmcb02")
    assert focused.step == i and focused.stepper.view.stack.selected_index == i
    assert f'data-step-id="svm.enter.switch_vmcb02"' in focused.stepper.view.frame_html()
    ex = VmrunExplorer(svm, whatif=False, start=5)
    assert ex.step == ex.stepper.slider.value == ex.stepper.jump.value == 5


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
    assert ex.whatif is None and ex.step == q.step_index and ex.focus == ("vmcb01.save.*",)
    assert all(any(p.startswith("vmcb01.save.") for p in r) for r in rows(ex.stepper.view.frame_html()))
    with pytest.raises(TypeError, match="^question: .*step_index, focus"):
        explore(SimpleNamespace(trace=svm))


# --- the two marks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["svm", "vmx"])
def test_change_marks_are_the_changed_paths_for_every_step(request, which):
    t = request.getfixturevalue(which)
    ex = VmrunExplorer(t, whatif=False)
    for i, s in enumerate(t.steps):
        html = ex.stepper.view.frame_html(i)
        shown = set(re.findall(r'data-path="([^"]+)"', html))
        assert cells(html, "nv-c") == set(s.changed) & shown, s.id
        assert cells(html, "nv-w") == set(s.written) & shown, s.id
        marked = set(re.findall(r'<td [^>]*data-path="([^"]+)"[^>]*>✎Δ ', html))   # the glyph, not colour alone
        assert marked == cells(html, "nv-c"), s.id


def test_saving_l1_state_marks_every_saved_field(plain, svm):
    i = svm.index_of("svm.vmrun.save_l1_state")
    html = plain.stepper.view.frame_html(i)
    saved = {p for p in cells(html, "nv-w") if p.startswith("vmcb01.save.")}
    assert len(saved) >= 5
    assert cells(html, "nv-c") == set(svm.steps[i].changed)              # only RIP really changes here


def test_side_by_side_takes_one_focus_for_both_sides_and_opens_where_asked():
    from widgets import SideBySide
    sb = SideBySide(nm.Scenario.preset("svm", "teaching"), nm.Scenario.preset("vmx", "teaching"),
                    focus=["svm.current_vmcb", "vmx.current_vmcs", "vcpu.arch.cr3"],
                    start="svm.enter.switch_vmcb02")
    assert sb.svm.trace.steps[sb.svm.step].id == "svm.enter.switch_vmcb02"
    assert sb.vmx.trace.steps[sb.vmx.step].phase == "P7"            # the VMX side follows to its switch
    for side, mine, other in ((sb.svm, "svm.current_vmcb", "vmx.current_vmcs"),
                              (sb.vmx, "vmx.current_vmcs", "svm.current_vmcb")):
        shown = set(re.findall(r'data-path="([^"]+)"', side.view.frame_html()))
        assert mine in shown and other not in shown and "vcpu.arch.cr3" in shown
        assert shown <= {mine, "vcpu.arch.cr3"}
    with pytest.raises(ValueError, match="focus: 'nope'"):
        SideBySide(nm.Scenario.svm(), nm.Scenario.vmx(), focus=["nope"])


def test_a_focus_without_vmcb_rows_leaves_no_empty_panel():
    ex = VmrunExplorer(nm.Scenario.preset("svm", "teaching"), focus=["vcpu.arch.cr3", "vcpu.gif"], whatif=False)
    html = ex.stepper.view.frame_html()
    assert html.count('class="nv-scroll"') == 1 and "vcpu.arch.cr3" in html


def test_the_flow_diagram_draws_only_the_functions_the_run_entered():
    t = nm.run(nm.Scenario.preset("svm", "teaching"))
    html = render.diagram_marker(t, t.flow or nm.machine_for("svm").flows["upstream"], 20, window=None)
    assert "svm_leave_smm" not in html and "rsm_failed" not in html
    assert "enter_svm_guest_mode" in html
