"""The fact sheet's nSVM scenarios (nsvm-flow.md section 8), each with its final state."""

import pytest

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.svm import defs
from nsvm_model.svm.scenarios import L1_VMRUN_RIP, NPT_ROOT, PAE_PDPT, L1_CR3

AFTER_VMRUN = L1_VMRUN_RIP + 3


def preset(name):
    return nm.run(nm.Scenario.preset("svm", name))


def test_1_valid_with_nested_npt():
    t = preset("default")
    f = t.final
    assert t.outcome == "l2_runs" and t.failure is None
    assert f["vcpu.guest_mode"] is True and f["svm.current_vmcb"] == "vmcb02"
    assert f["vcpu.arch.mmu"] == "guest_mmu"
    assert f["vcpu.arch.guest_mmu.root_role.guest_mode"] == 1
    assert f["vcpu.arch.guest_mmu.root.pgd"] == NPT_ROOT
    assert f["vcpu.arch.ngpa_walk.cpu_role"] == "4-level"          # from vmcb01's CR4/EFER
    assert f["vcpu.arch.cr3"] == L1_CR3                            # vmcb_ident: L2 CR3 = L1's
    assert f["vcpu.gif"] == 1 and f["svm.gif_location"] == "vmcb02.control.int_ctl"
    assert f["vcpu.arch.nested_run_pending"] == 0                  # cleared by the first run
    assert t.state_at(t.index_of("svm.vmrun.insn_retired"))["vcpu.arch.nested_run_pending"] == 1
    assert f["vmcb01.save.rip"] == AFTER_VMRUN
    assert f["vcpu.rip"] == nm.Scenario.svm().get("vmcb12.save.rip")
    # no kvm_mmu_new_pgd(L2 CR3) with nested NPT
    assert "vcpu.arch.root_mmu.root.pgd" not in t.steps[t.index_of("svm.enter.load_cr3.new_pgd")].changed


def test_1_msr_prot_points_vmcb02_at_merged_bitmap():
    sc = nm.Scenario.svm().with_fields(
        {"vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", "MSR_PROT"}})
    f = nm.run(sc).final
    assert f["vmcb02.control.msrpm_base_pa"] == "__pa(svm->nested.msrpm)"
    assert f["vmcb01.control.msrpm_base_pa"] == "__pa(svm->msrpm)"
    assert f["nested.force_msr_bitmap_recalc"] is False and f["nested.msrpm"]


def test_2_no_nested_npt_uses_root_mmu_and_new_pgd():
    t = preset("shadow_paging")
    f = t.final
    assert t.outcome == "l2_runs"
    assert f["vcpu.arch.mmu"] == "root_mmu"
    assert f["vcpu.arch.root_mmu.root_role.guest_mode"] == 1
    assert "vcpu.arch.root_mmu.root.pgd" in t.steps[t.index_of("svm.enter.load_cr3.new_pgd")].reads \
        or f["vcpu.arch.root_mmu.root.pgd"] == f["vcpu.arch.cr3"]


def test_2_pae_l2_loads_pdptrs_eagerly():
    f = preset("pae_shadow").final
    assert f["vcpu.arch.pdptrs_status"] == "loaded"
    assert len(f["vcpu.arch.pdptrs"]) == 4 and all(p & 1 for p in f["vcpu.arch.pdptrs"])
    assert f["vcpu.arch.gva_walk.cpu_role"] == "pae"
    assert f["vcpu.arch.root_mmu.root.pgd"] == PAE_PDPT


EARLY = ["asid_zero", "no_vmrun_intercept", "efer_svme_clear", "cr0_nw_without_cd",
         "long_mode_without_pae", "cs_l_and_d", "eventinj_nmi_as_exception", "ncr3_illegal",
         "vnmi_without_nmi_intercept"]
EARLY_CHECK = {"asid_zero": "C2", "no_vmrun_intercept": "C1", "efer_svme_clear": "S1",
               "cr0_nw_without_cd": "S2", "long_mode_without_pae": "S4a", "cs_l_and_d": "S4d",
               "eventinj_nmi_as_exception": "C7", "ncr3_illegal": "C3",
               "vnmi_without_nmi_intercept": "C6"}


@pytest.mark.parametrize("name", EARLY)
def test_3_to_12_early_vmexit_invalid(name):
    sc = nm.Scenario.preset("svm", name)
    t = nm.run(sc)
    f, i = t.final, t.initial
    assert (t.outcome, t.failure) == ("vmexit_invalid", "early")
    assert any(n.startswith(EARLY_CHECK[name] + " fails") for s in t.steps for n in s.notes)
    assert f["vmcb12.control.exit_code"] == defs.SVM_EXIT_ERR
    assert f["vmcb12.control.exit_info_1"] == f["vmcb12.control.exit_info_2"] == 0
    assert f["vmcb12.control.event_inj"] == f["vmcb12.control.event_inj_err"] == 0
    assert f["vcpu.gif"] == 0 and f["svm.gif_location"] == "vmcb01.control.int_ctl"
    assert f["vcpu.rip"] == AFTER_VMRUN
    assert f["vcpu.guest_mode"] is False and f["svm.current_vmcb"] == "vmcb01"
    for path in i:
        if path.startswith(("vmcb01.save.", "vcpu.arch.root_mmu", "vmcb12.save.")) or path in (
                "vcpu.arch.cr3", "vcpu.arch.mmu"):
            assert f[path] == i[path], path
    # nothing L2-related ran
    assert "svm.enter.switch_vmcb02" not in t.step_ids


def test_11_np_without_npt_cpuid_is_sanitized():
    t = preset("np_without_npt_cpuid")
    assert t.outcome == "l2_runs"
    assert t.final["nested.ctl.misc_ctl"] & defs.SVM_MISC_ENABLE_NP == 0
    assert t.final["vcpu.arch.mmu"] == "root_mmu"


def test_13_unbacked_msrpm_is_a_late_failure():
    t = preset("msrpm_unbacked")
    f, i = t.final, t.initial
    assert (t.outcome, t.failure) == ("vmexit_invalid", "late")
    assert f["vmcb12.control.exit_code"] == defs.SVM_EXIT_ERR
    assert f["vmcb12.control.event_inj"] == 0
    assert f["vmcb12.control.exit_int_info"] == i["vmcb12.control.exit_int_info"]
    assert f["vmcb12.save.rip"] == i["vmcb12.save.rip"]       # L2 state as loaded
    assert f["vcpu.gif"] == 0 and f["vcpu.guest_mode"] is False
    assert f["vcpu.arch.mmu"] == "root_mmu" and f["vcpu.arch.cr3"] == i["vcpu.arch.cr3"]
    assert f["vcpu.arch.tsc_offset"] == i["vcpu.arch.tsc_offset"]
    assert f["vcpu.rip"] == AFTER_VMRUN
    # GIF had been set before the merge failed, and the #VMEXIT cleared it
    gif_set = t.index_of("svm.enter.set_gif")
    assert t.steps[gif_set].state["vcpu.gif"] == 1


def test_14_bad_pdpte_without_nested_npt_is_late_and_cr3_unchanged():
    t = preset("pae_bad_pdpte")
    assert (t.outcome, t.failure) == ("vmexit_invalid", "late")
    fail = t.index_of("svm.enter.load_cr3.pdptrs")
    assert t.steps[fail].label == "bad_pdpte"
    assert t.steps[fail].state["vcpu.arch.cr3"] == t.initial["vcpu.arch.cr3"]
    assert "svm.enter.set_gif" not in t.step_ids
    # vmcb12 gets the L2 save area as loaded, with CR3 still L1's
    assert t.final["vmcb12.save.cr3"] == t.initial["vcpu.arch.cr3"]


def test_15_bad_pdpte_with_nested_npt_runs():
    t = preset("pae_bad_pdpte_npt")
    assert t.outcome == "l2_runs"
    assert t.final["vcpu.arch.pdptrs_status"] == "marked for reload"


@pytest.mark.parametrize("name,outcome,exception", [
    ("rax_minus_one", "l1_gp", "#GP(0)"), ("in_smm", "l1_ud", "#UD"),
    ("hsave_zero", "l1_gp", "#GP(0)"), ("cpl3", "l1_gp", "#GP(0)"), ("svme_off", "l1_ud", "#UD")])
def test_16_18_faults_leave_rip_at_vmrun(name, outcome, exception):
    t = preset(name)
    assert t.outcome == outcome
    assert t.final["vcpu.arch.exception"] == exception
    assert t.final["vcpu.rip"] == L1_VMRUN_RIP
    changed = {p for s in t.steps for p in s.changed if not p.startswith("svm.local.")}
    assert changed == {"vcpu.arch.exception"}


def test_17_unbacked_rax_exits_to_userspace():
    t = preset("rax_unbacked")
    assert t.outcome == "userspace_exit"
    assert t.final["kvm_run.exit_reason"] == "KVM_EXIT_INTERNAL_ERROR"
    assert t.final["vcpu.rip"] == L1_VMRUN_RIP


def test_19_unmappable_vmcb12_at_exit_shuts_down_after_switching_back():
    t = preset("vmcb12_unmapped_at_exit")
    assert t.outcome == "shutdown"
    f = t.final
    assert f["kvm_run.exit_reason"] == "KVM_EXIT_SHUTDOWN"
    assert f["vcpu.guest_mode"] is False and f["svm.current_vmcb"] == "vmcb01"
    assert f["vcpu.rip"] == AFTER_VMRUN


def test_21_single_step_invalid_vmrun_gets_no_db():
    t = preset("single_step_invalid")
    assert t.outcome == "vmexit_invalid"
    assert t.final["vcpu.arch.exception"] == "none"


def test_24_round_trip_back_to_l1():
    t = preset("round_trip")
    f = t.final
    assert t.outcome == "l2_runs"
    assert f["vmcb12.control.exit_code"] == defs.SVM_EXIT_VMMCALL
    assert f["vcpu.gif"] == 0 and f["svm.gif_location"] == "vmcb01.control.int_ctl"
    assert f["svm.current_vmcb"] == "vmcb01" and f["vcpu.guest_mode"] is False
    assert f["nested.vmcb12_gpa"] == 0 and f["nested.ctl.nested_cr3"] == 0
    assert f["vcpu.arch.exception"] == "none"
    assert f["vcpu.rip"] == AFTER_VMRUN and f["vcpu.arch.mmu"] == "root_mmu"
    assert f["vcpu.arch.root_mmu.root_role.guest_mode"] == 0
    assert f["vmcb12.save.rip"] == nm.Scenario.svm().get("vmcb12.save.rip")


def test_single_stepped_successful_vmrun_queues_db_on_exit():
    sc = nm.Scenario.preset("svm", "round_trip").with_fields(
        {"l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_TF})
    assert nm.run(sc).final["vcpu.arch.exception"] == "#DB"


def test_gif_lives_in_guest_gif_without_vgif():
    t = nm.run(nm.Scenario.preset("svm", "asid_zero").with_fields({"cpu.vgif": False}))
    assert t.final["svm.gif_location"] == "svm.guest_gif" and t.final["vcpu.gif"] == 0


def test_shadow_host_saves_l1_cr3_into_vmcb01():
    sc = nm.Scenario.svm().with_fields({"cpu.npt": False, "vmcb12.save.cr3": 0x700000})
    t = nm.run(sc)
    assert t.outcome == "l2_runs"
    assert t.final["vmcb01.save.cr3"] == L1_CR3
    assert t.final["vcpu.arch.mmu"] == "root_mmu"       # no NPT offered to L1: NP sanitized
    assert t.final["vcpu.arch.root_mmu.root.pgd"] == 0x700000


def test_rsm_enters_l2_without_reading_pdptes_and_requests_the_nested_state_pages():
    """svm_leave_smm() calls enter_svm_guest_mode(from_vmrun = false): no load_pdptrs() now,
    KVM_REQ_GET_NESTED_STATE_PAGES instead (nested_svm_load_cr3() with reload_pdptrs false)."""
    sc = nm.Scenario.preset("svm", "pae_shadow").with_fields({"l2.exit": "SMI"})
    t = nm.run(sc)
    assert t.outcome == "l2_runs"
    rsm = [s for s in t.steps if s.id.startswith("svm.rsm.")]
    assert [s.id for s in rsm][:2] == ["svm.rsm.load_cr3.check_legal", "svm.rsm.load_cr3.pdptrs"]
    assert not any(s.id == "svm.rsm.load_cr3.pdptrs" and "vcpu.arch.pdptrs" in s.written for s in rsm)
    assert "KVM_REQ_GET_NESTED_STATE_PAGES" in t.final["vcpu.requests"]
    first_load = t.steps[t.index_of("svm.enter.load_cr3.pdptrs")]
    assert "vcpu.arch.pdptrs" in first_load.written            # the VMRUN itself did read them


def test_rsm_maps_vmcb12_in_svm_leave_smm_before_restoring_vmcb01():
    t = nm.run(nm.Scenario.preset("svm", "smi_in_l2"))
    m, r = t.index_of("svm.smm.map_vmcb12"), t.index_of("svm.smm.restore_vmcb01")
    assert m < r and t.steps[m].function == "svm_leave_smm"
