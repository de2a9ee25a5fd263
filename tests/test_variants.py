"""Each variant shows its documented symptom when run, and breaks exactly its rules."""

import pytest

import nsvm_model as nm
from nsvm_model.svm import defs

EXPECTED_RULES = {
    "upstream": [], "pre-gif-fix": [], "v6.6-order": ["R14"], "old-vmexit-abort": [],
    "v6-unified": ["R3", "R15", "R18", "R21", "R22"], "sean-v2-proposal": ["R3"],
    "smm-nocheck": ["R29"], "smm-check": [], "map-gp": [], "map-skip": [],
}


def test_variants_are_listed():
    assert nm.variants("svm")[0] == "upstream"
    assert set(nm.variants("svm")) == set(EXPECTED_RULES)
    for name in nm.variants("svm"):
        flow = nm.machine_for("svm").flows[name]
        assert flow.description and flow.source and flow.exposes in nm.Scenario.presets("svm")


@pytest.mark.parametrize("name", sorted(EXPECTED_RULES))
def test_exact_rules_broken(name):
    assert [v.id for v in nm.check_order(name)] == EXPECTED_RULES[name]


@pytest.mark.parametrize("isa", ["svm", "vmx"])
def test_upstream_breaks_no_rule_and_no_invariant(isa):
    assert nm.check_order("upstream", isa=isa) == []
    for preset in nm.Scenario.presets(isa):
        assert nm.run(nm.Scenario.preset(isa, preset)).invariant_violations() == []


def run(preset, variant):
    return nm.run(nm.Scenario.preset("svm", preset), variant)


def test_pre_gif_fix_leaves_gif_set_after_an_early_vmexit_invalid():
    sc = nm.Scenario.preset("svm", "asid_zero").with_fields(
        {"vmcb12.control.event_inj": defs.SVM_EVTINJ_VALID | 0x20})
    old, new = nm.run(sc, "pre-gif-fix"), nm.run(sc, "upstream")
    assert old.outcome == new.outcome == "vmexit_invalid"
    assert old.final["vcpu.gif"] == 1 and new.final["vcpu.gif"] == 0
    assert old.final["vmcb12.control.event_inj"] == defs.SVM_EVTINJ_VALID | 0x20
    assert new.final["vmcb12.control.event_inj"] == 0
    assert [v.invariant for v in old.invariant_violations()] == ["I7"]


def test_v66_order_builds_the_nested_role_without_guest_mode():
    t = run("default", "v6.6-order")
    assert t.final["vcpu.arch.guest_mmu.root_role.guest_mode"] == 0
    assert any("WARN" in n for s in t.steps for n in s.notes)
    assert [v.invariant for v in t.invariant_violations()] == ["I3"]


def test_old_vmexit_abort_stays_in_l2():
    t = run("vmcb12_unmapped_at_exit", "old-vmexit-abort")
    assert t.final["vcpu.guest_mode"] is True and t.final["svm.current_vmcb"] == "vmcb02"
    assert t.final["vcpu.arch.exception"] == "#GP(0)"
    assert [v.invariant for v in t.invariant_violations()] == ["I9"]
    assert run("vmcb12_unmapped_at_exit", "upstream").outcome == "shutdown"


def test_v6_unified_loads_cr3_with_l1_paging_state():
    t = run("pae_shadow", "v6-unified")
    cr3 = t.steps[t.index_of("svm.enter.load_cr3.pdptrs")]
    assert cr3.before["vcpu.arch.efer"] == t.initial["vcpu.arch.efer"]      # still L1's EFER
    assert t.final["vcpu.arch.pdptrs_status"] == "-"                        # PDPTRs never loaded
    assert t.final["vcpu.arch.gva_walk.cpu_role"] == "4-level"              # L1's role, L2 is PAE
    assert {"I4", "I5"} <= {v.invariant for v in t.invariant_violations()}


def test_v6_unified_points_vmcb01_at_the_merged_bitmap():
    sc = nm.Scenario.svm().with_fields({"vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", "MSR_PROT"},
                                        "l2.exit": "VMMCALL"})
    t = nm.run(sc, "v6-unified")
    assert t.state_at(t.index_of("svm.vmrun.insn_retired"))["vmcb01.control.msrpm_base_pa"] == "__pa(svm->nested.msrpm)"
    assert t.final["vmcb01.control.msrpm_base_pa"] == "__pa(svm->nested.msrpm)"     # leaks back to L1
    assert "I6" in {v.invariant for v in t.invariant_violations()}


def test_v6_unified_fails_through_one_path():
    t = run("asid_zero", "v6-unified")
    assert (t.outcome, t.failure) == ("vmexit_invalid", "unified")
    assert "svm.exit.leave_guest_mode" in t.step_ids and t.final["vcpu.gif"] == 0


def test_sean_v2_checks_after_the_switch_and_switches_back():
    t = run("asid_zero", "sean-v2-proposal")
    ids = t.step_ids
    assert ids.index("svm.enter.switch_vmcb02") < ids.index("svm.vmrun.check_controls")
    assert "svm.exit.switch_vmcb01" in ids and t.final["svm.current_vmcb"] == "vmcb01"
    assert t.outcome == "vmexit_invalid" and t.invariant_violations() == []


def test_smm_nocheck_reenters_l2_with_an_invalid_vmcb12():
    bad = run("smi_in_l2_asid_zero", "smm-nocheck")
    assert bad.outcome == "l2_runs" and bad.final["vcpu.guest_mode"] is True
    assert bad.final["nested.ctl.asid"] == 0
    assert [v.invariant for v in bad.invariant_violations()] == ["I10"]
    good = run("smi_in_l2_asid_zero", "smm-check")
    assert good.outcome == "shutdown" and good.invariant_violations() == []
    assert run("smi_in_l2", "smm-check").outcome == "l2_runs"


def test_mapping_variants():
    assert run("rax_unbacked", "upstream").outcome == "userspace_exit"
    gp = run("rax_unbacked", "map-gp")
    assert gp.outcome == "l1_gp" and gp.final["vcpu.rip"] == gp.initial["vcpu.rip"]
    skip = run("rax_unbacked", "map-skip")
    assert skip.outcome == "vmrun_skipped" and skip.final["vcpu.rip"] == skip.initial["vcpu.rip"] + 3


def test_moving_load_cr3_before_prepare_save_breaks_r18():
    flow = nm.move("call:nested_svm_load_cr3", before="call:nested_vmcb02_prepare_save", isa="svm")
    found = {v.id: v for v in nm.check_order(flow)}
    assert "R18" in found
    assert "is_pae_paging()" in found["R18"].reason and "CR0/CR4/EFER" in found["R18"].reason
    assert found["R18"].before == "svm.enter.prepare_save.regs"


def test_moving_enter_guest_mode_after_the_nested_mmu_breaks_r14():
    flow = nm.move("svm.enter.enter_guest_mode", after="svm.enter.init_mmu_context")
    assert [v.id for v in nm.check_order(flow)] == ["R14"]


def test_a_list_of_step_ids_is_an_ordering():
    from nsvm_model.engine.rules import linear_order
    ids = linear_order(nm.machine_for("svm").flows["upstream"])
    assert nm.check_order(ids) == []
    i, j = ids.index("svm.vmrun.merge_msrpm"), ids.index("svm.enter.switch_vmcb02")
    ids.insert(j, ids.pop(i))
    assert "R21" in [v.id for v in nm.check_order(ids)]
    with pytest.raises(ValueError, match="did you mean"):
        nm.check_order(["svm.vmrun.check_permission"])


def test_vmx_rules_catch_a_moved_load_cr3():
    flow = nm.move("call:nested_vmx_load_cr3", before="vmx.prep.set_cr0_cr4")
    assert flow.isa == "vmx"
    assert "D8" in [v.id for v in nm.check_order(flow)]


def test_text_comparison_fits_a_mail():
    r = nm.review("v6-unified")
    text = r.text()
    assert max(len(line) for line in text.splitlines()) <= 72
    for rule in ("R3", "R15", "R18", "R21", "R22"):
        assert f"{rule}:" in text
    assert "vcpu.arch.pdptrs_status: loaded -> -" in text
    assert r.state_diff()["vcpu.arch.gva_walk.cpu_role"] == ("pae", "4-level")


def test_diagram_marks_broken_rules():
    svg = nm.review("v6-unified").svg()
    assert svg.startswith("<?xml") and "R18" in svg and "#D55E00" in svg.upper()


def test_explain_and_unknown_names():
    assert "is_pae_paging()" in nm.explain("R18")
    assert "D8" in nm.explain("D8")
    with pytest.raises(ValueError, match="unknown rule"):
        nm.explain("R99")
    with pytest.raises(ValueError, match="unknown variant"):
        nm.check_order("v7-unified")
