"""Upstream breaks no invariant; a wrong order does, and the invariant names it."""

import pytest

import nsvm_model as nm

UPSTREAM = nm.machine_for("svm").flows["upstream"]


@pytest.mark.parametrize("name", list(nm.Scenario.presets("svm")))
def test_upstream_breaks_no_invariant(name):
    assert nm.run(nm.Scenario.preset("svm", name)).invariant_violations() == []


def test_load_cr3_before_prepare_save_breaks_the_mmu_invariants():
    flow = UPSTREAM.moved("call:nested_svm_load_cr3", before="call:nested_vmcb02_prepare_save")
    t = nm.run(nm.Scenario.preset("svm", "pae_shadow"), flow)
    broken = {v.invariant for v in t.invariant_violations()}
    assert {"I4", "I5"} <= broken
    assert t.final["vcpu.arch.gva_walk.cpu_role"] == "4-level"   # L1's mode, while L2 is PAE
    assert t.final["vcpu.arch.pdptrs_status"] == "-"


def test_merge_before_the_switch_repoints_vmcb01():
    flow = UPSTREAM.moved("svm.vmrun.merge_msrpm", before="svm.enter.switch_vmcb02")
    sc = nm.Scenario.svm().with_fields(
        {"vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", "MSR_PROT"}})
    t = nm.run(sc, flow)
    assert t.final["vmcb01.control.msrpm_base_pa"] == "__pa(svm->nested.msrpm)"
    assert "I6" in {v.invariant for v in t.invariant_violations()}


def test_guest_mode_after_mmu_init_builds_a_role_without_the_guest_bit():
    flow = UPSTREAM.moved("svm.enter.enter_guest_mode", after="svm.enter.init_mmu_context")
    t = nm.run(nm.Scenario.svm(), flow)
    assert t.final["vcpu.arch.guest_mmu.root_role.guest_mode"] == 0
    assert "I3" in {v.invariant for v in t.invariant_violations()}


def test_dropping_the_early_gif_clear_breaks_the_gif_invariant():
    seqs = dict(UPSTREAM.sequences)
    seqs["early_vmexit_invalid"] = tuple(s for s in seqs["early_vmexit_invalid"]
                                         if s != "svm.vmrun.early_clear_gif")
    flow = nm.Flow("no-gif-clear", "svm", seqs, UPSTREAM.on)
    t = nm.run(nm.Scenario.preset("svm", "asid_zero"), flow)
    assert t.final["vcpu.gif"] == 1
    assert [v.invariant for v in t.invariant_violations()] == ["I7"]


def test_moved_rejects_unknown_steps():
    with pytest.raises(ValueError, match="not in flow"):
        UPSTREAM.moved("svm.nope", before="svm.enter.set_gif")
    with pytest.raises(ValueError, match="exactly one"):
        UPSTREAM.moved("svm.enter.set_gif")
