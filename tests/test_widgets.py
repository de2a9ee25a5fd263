"""Widget logic, from Python: clicks, values, highlights, bad input, no figure left open."""

import re

import matplotlib.pyplot as plt
import pytest

import nsvm_model as nm
from widgets import FlowDiagram, SideBySide, Stepper, Timeline, VmcbPanel, VmrunExplorer, render


@pytest.fixture(scope="module")
def ex():
    return VmrunExplorer(nm.Scenario.svm())


def cells(html, cls):
    return set(re.findall(rf'<td class="[^"]*\b{cls}\b[^"]*" data-path="([^"]+)"', html))


def test_buttons_slider_and_jump_move_every_panel(ex):
    ex.step = 0
    ex.stepper.next.click()
    assert ex.step == 1 and ex.stepper.slider.value == 1 and ex.stepper.view.stack.selected_index == 1
    ex.stepper.last.click()
    assert ex.step == len(ex.trace.steps) - 1
    ex.stepper.prev.click()
    assert ex.step == len(ex.trace.steps) - 2
    ex.stepper.first.click()
    ex.stepper.prev.click()                       # stays at the first step
    assert ex.step == 0
    ex.stepper.slider.value = 7
    assert ex.step == 7 and ex.stepper.jump.value == 7
    ex.stepper.jump.value = 3
    assert ex.step == 3 and ex.stepper.view.stack.selected_index == 3


def test_step_card_names_the_kernel_function_and_cites_the_commit(ex):
    for i, s in enumerate(ex.trace.steps):
        html = ex.stepper.view.frame_html(i)
        assert f'data-step-id="{s.id}"' in html and f"{s.function}()" in html
        assert nm.KERNEL_COMMIT in html and s.phase in html


def test_highlighted_fields_are_the_steps_writes(ex):
    t = ex.trace
    for i, s in enumerate(t.steps):
        html = ex.stepper.view.frame_html(i)
        shown = set(re.findall(r'data-path="([^"]+)"', html))
        assert cells(html, "nv-w") == set(s.written) & shown, s.id           # written, same value or not
        assert cells(html, "nv-c") == set(s.changed) & shown, s.id           # the value changed
        assert cells(html, "nv-r") <= set(s.read) - set(s.written)
        for path, old, _ in s.diff:                                         # a change says what it was
            if path in shown:
                assert f'data-path="{path}" title="{render.esc(path)}: was {render.esc(render.show_value(old))}"' \
                    in html, path


def test_a_write_of_the_same_value_has_its_own_mark(ex):
    t = ex.trace
    i = t.index_of("svm.vmrun.save_l1_state")
    html = ex.stepper.view.frame_html(i)
    same = set(t.steps[i].written) - set(t.steps[i].changed)
    assert same and same <= cells(html, "nv-w") and not same & cells(html, "nv-c")
    for path in same:
        assert re.search(rf'data-path="{re.escape(path)}" title="[^"]*">✎ ', html), path
    assert "✎ written by this step (same value)" in render.LEGEND and "Δ changed by this step" in render.LEGEND


def test_current_vmcb_pointer_moves(ex):
    t = ex.trace
    i = t.index_of("svm.enter.switch_vmcb02")
    before, after = ex.stepper.view.frame_html(i - 1), ex.stepper.view.frame_html(i)
    assert re.search(r'<th class="nv-current">vmcb01 <span class="nv-ptr">◀ svm->vmcb', before)
    assert re.search(r'<th class="nv-current">vmcb02 <span class="nv-ptr">◀ svm->vmcb', after)


def test_bad_input_keeps_the_last_good_trace():
    ex = VmrunExplorer(nm.Scenario.svm())
    good = ex.trace
    ex.whatif.field.value = "vmcb12.control.asid"
    ex.whatif.value.value = "0x100000000"
    ex.whatif.apply.click()
    assert ex.trace is good and "32 bits" in ex.whatif.status.value and "nv-error" in ex.whatif.status.value
    ex.whatif.field.value = "vmcb12.control.asidd"
    ex.whatif.apply.click()
    assert ex.trace is good and "did you mean" in ex.whatif.status.value
    ex.whatif.value.value = "0"
    ex.whatif.field.value = "vmcb12.control.asid"
    ex.whatif.apply.click()
    assert ex.trace.outcome == "vmexit_invalid" and ex.step <= len(ex.trace.steps) - 1


def test_variant_switch_lists_broken_rules_and_invariants():
    ex = VmrunExplorer(nm.Scenario.preset("svm", "pae_shadow"))
    assert "no ordering rule" in ex.whatif.broken.value
    ex.whatif.variant.value = "v6-unified"
    html = ex.whatif.broken.value
    for rule in ("R3", "R15", "R18", "R21", "R22", "I4", "I5"):
        assert f"✗ {rule}" in html
    ex.whatif.reset.click()
    assert ex.trace.variant == "upstream" and "no ordering rule" in ex.whatif.broken.value


def test_moving_a_step_reruns_with_the_edited_order():
    ex = VmrunExplorer(nm.Scenario.svm())
    ex.whatif.move_step.value = "svm.enter.enter_guest_mode"
    ex.whatif.where.value = "after"
    ex.whatif.anchor.value = "svm.enter.init_mmu_context"
    ex.whatif.move.click()
    assert "✗ R14" in ex.whatif.broken.value and "✗ I3" in ex.whatif.broken.value


def test_presenter_mode_toggles_a_class():
    ex = VmrunExplorer(nm.Scenario.svm(), whatif=False)
    ex.presenter.value = True
    assert "nv-presenter" in ex._dom_classes
    ex.presenter.value = False
    assert "nv-presenter" not in ex._dom_classes


def test_parts_alone_and_explorer_from_a_trace():
    t = nm.run(nm.Scenario.vmx())
    for part in (VmcbPanel(t), Timeline(t), FlowDiagram(t)):
        part.step = 4
        assert part.stack.selected_index == 4
    assert VmrunExplorer(t).trace is t
    assert Stepper(t).slider.max == len(t.steps) - 1
    with pytest.raises(TypeError):
        VmrunExplorer("svm")


def test_side_by_side_follows_the_phase():
    sb = SideBySide(nm.Scenario.svm(), nm.Scenario.vmx())
    i = sb.svm.trace.index_of("svm.enter.load_cr3.set_cr3")
    sb.svm.step = i
    assert sb.vmx.trace.steps[sb.vmx.step].phase == "P12"
    sb.vmx.step = sb.vmx.trace.index_of("vmx.enter.enter_guest_mode")
    assert sb.svm.trace.steps[sb.svm.step].id == "svm.enter.enter_guest_mode"
    assert "P8" in sb.phase.value


def test_side_by_side_shows_each_sides_failure():
    sb = SideBySide(nm.Scenario.preset("svm", "asid_zero"), nm.Scenario.preset("vmx", "vpid_zero"))
    sb.svm.step = sb.svm.trace.index_of("svm.vmrun.check_controls")
    assert sb.phase.value.count("fails here") == 2 and "VMfailValid 7" in sb.phase.value


def test_no_figure_is_left_open():
    plt.close("all")
    VmrunExplorer(nm.Scenario.preset("svm", "round_trip"))
    assert plt.get_fignums() == []


def test_missing_dot_is_explained_and_the_rest_works(monkeypatch):
    import graphviz
    def no_dot(*a, **k):
        raise graphviz.ExecutableNotFound(["dot"])
    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    flow = nm.Flow("no-dot", "svm", nm.machine_for("svm").flows["upstream"].sequences,
                   nm.machine_for("svm").flows["upstream"].on)
    t = nm.run(nm.Scenario.svm(), flow)
    html = render.frame(t, flow, 3)
    assert "apt-get install graphviz" in html and 'data-step-id="' in html
