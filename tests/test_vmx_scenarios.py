"""The fact sheet's nVMX scenarios (nvmx-flow.md section 9)."""

import pytest

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.vmx import caps, defs as d
from nsvm_model.vmx.scenarios import EPT_ROOT, L1_CR3, L1_HOST_RIP, L1_VMLAUNCH_RIP, PAE_PDPT

AFTER = L1_VMLAUNCH_RIP + 3


def preset(name):
    return nm.run(nm.Scenario.preset("vmx", name))


@pytest.mark.parametrize("name,outcome,exception", [("before_vmxon", "l1_ud", "#UD"),
                                                    ("cpl3", "l1_gp", "#GP(0)")])
def test_1_2_faults(name, outcome, exception):
    t = preset(name)
    assert t.outcome == outcome and t.final["vcpu.arch.exception"] == exception
    assert t.final["vcpu.rip"] == L1_VMLAUNCH_RIP
    assert t.final["vmx.current_vmcs"] == "vmcs01" and t.final["vcpu.arch.nested_run_pending"] == 0


@pytest.mark.parametrize("name", ["no_current_vmcs", "shadow_vmcs_header"])
def test_3_4_vmfail_invalid(name):
    t = preset(name)
    f = t.final
    assert t.outcome == "vmfail_invalid"
    assert f["vcpu.arch.rflags"] & d.X86_EFLAGS_CF and not f["vcpu.arch.rflags"] & d.X86_EFLAGS_ZF
    assert f["vmcs12.vm_instruction_error"] == 0 and f["vcpu.rip"] == AFTER


@pytest.mark.parametrize("name,error", [("mov_ss", 26), ("launch_launched", 4), ("resume_clear", 5),
                                        ("vpid_zero", 7), ("msr_load_count_too_big", 7),
                                        ("host_cr0_no_pe", 8), ("host_tr_zero", 8)])
def test_5_to_9_vmfail_valid(name, error):
    t = preset(name)
    f = t.final
    assert t.outcome == f"vmfail_valid:{error}"
    assert f["vcpu.arch.rflags"] & d.X86_EFLAGS_ZF and not f["vcpu.arch.rflags"] & d.X86_EFLAGS_CF
    assert f["vmcs12.vm_instruction_error"] == error and f["vcpu.rip"] == AFTER
    assert f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False
    assert "vmx.run.set_run_pending" not in t.step_ids
    changed = {p for s in t.steps for p in s.changed} - {"vmx.local.vm_instruction_error"}
    assert changed == {"vcpu.arch.rflags", "vmcs12.vm_instruction_error", "vcpu.rip"}


def _host_state_loaded(f):
    assert f["vcpu.rip"] == L1_HOST_RIP and f["vcpu.arch.rflags"] == x86.X86_EFLAGS_FIXED
    assert f["vcpu.arch.cr0"] == f["vmcs12.host_cr0"] and f["vcpu.arch.cr4"] == f["vmcs12.host_cr4"]
    assert f["vcpu.arch.cr3"] == f["vmcs12.host_cr3"] and f["vcpu.arch.dr7"] == x86.DR7_FIXED_1
    assert f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False
    assert f["vcpu.arch.mmu"] == "root_mmu" and f["vcpu.arch.nested_run_pending"] == 0


@pytest.mark.parametrize("name,qual", [("guest_pg_without_pe", 0), ("bad_link_pointer", 4)])
def test_10_11_guest_state_vmexit_before_guest_mode(name, qual):
    t = preset(name)
    f = t.final
    assert (t.outcome, t.failure) == ("vmexit:33", "early")
    assert f["vmcs12.vm_exit_reason"] == 0x80000021 and f["vmcs12.exit_qualification"] == qual
    _host_state_loaded(f)
    assert "vmx.enter.enter_guest_mode" not in t.step_ids
    assert f["vmcs12.launch_state"] == 0          # no prepare_vmcs12()


def test_12_illegal_guest_cr3_goes_through_the_guest_mode_label():
    t = preset("guest_cr3_illegal")
    assert (t.outcome, t.failure) == ("vmexit:33", "late")
    assert t.final["vmcs12.exit_qualification"] == 0
    assert "vmx.enter.enter_guest_mode" in t.step_ids and "vmx.fail.leave_guest_mode" in t.step_ids
    loaded = t.state_at(t.index_of("vmx.prep.set_efer"))
    assert loaded["vcpu.guest_mode"] is True            # L2's CR0/CR4/EFER were loaded, then overwritten
    _host_state_loaded(t.final)


def test_13_bad_pdpte_without_ept_is_qualification_2_and_with_ept_runs():
    t = preset("pae_bad_pdpte")
    assert t.outcome == "vmexit:33" and t.final["vmcs12.exit_qualification"] == d.ENTRY_FAIL_PDPTE
    _host_state_loaded(t.final)
    t = preset("pae_bad_pdpte_ept")
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.pdptrs_status"] == "marked for reload"


def test_14_msr_load_list_third_entry_fails_after_two_were_written():
    t = preset("msr_load_fs_base")
    f = t.final
    assert t.outcome == "vmexit:34" and f["vmcs12.exit_qualification"] == 3
    assert f["vmcs12.vm_exit_reason"] == 0x80000022
    assert f[f"vcpu.msr.{d.MSR_LSTAR:#x}"] == 0x1234 and f[f"vcpu.msr.{d.MSR_STAR:#x}"] == 0x5678
    _host_state_loaded(f)


def test_15_nested_ept_success():
    t = preset("nested_ept")
    f = t.final
    assert t.outcome == "l2_runs"
    assert f["vmx.current_vmcs"] == "vmcs02" and f["vcpu.guest_mode"] is True
    assert f["vcpu.arch.mmu"] == "guest_mmu" and f["vcpu.arch.guest_mmu.root.pgd"] == EPT_ROOT
    assert f["vcpu.arch.guest_mmu.root_role.guest_mode"] == 1
    assert f["vcpu.arch.cr3"] == f["vmcs12.guest_cr3"] and f["vmx.nested.pre_vmenter_cr3"] == L1_CR3
    assert f["vmcs12.launch_state"] == 0               # set only by a later VM exit
    ran = t.index_of("vmx.l2.vcpu_run")
    assert t.steps[ran].before["vcpu.arch.nested_run_pending"] == 1 and f["vcpu.arch.nested_run_pending"] == 0


def test_16_hlt_activity_halts_in_l2():
    t = preset("activity_hlt")
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.mp_state"] == "HALTED"
    assert t.final["vcpu.guest_mode"] is True and t.final["vcpu.arch.nested_run_pending"] == 0


def test_17_late_vmfail_restores_l1_from_before_vmlaunch():
    t = preset("late_vmfail")
    f = t.final
    assert (t.outcome, t.failure) == ("vmfail_valid:7", "late")
    assert f["vmcs12.vm_instruction_error"] == 7 and f["vcpu.arch.rflags"] & d.X86_EFLAGS_ZF
    assert f["vcpu.rip"] == AFTER                                  # past VMLAUNCH, not host_rip
    loaded = t.steps[t.index_of("vmx.l2.vcpu_run")].before
    assert loaded["vcpu.arch.cr3"] == 0x700000                      # L2's CR3 had been loaded
    assert f["vcpu.arch.cr3"] == f["vmx.nested.pre_vmenter_cr3"] == L1_CR3
    assert f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False
    assert f["vcpu.arch.mmu"] == "root_mmu" and f["vcpu.arch.root_mmu.root.pgd"] == L1_CR3
    assert f["vmcs12.vm_exit_reason"] == 0 and f["vmcs12.launch_state"] == 0


def test_18_hardware_rejected_guest_state_is_reflected_as_33():
    t = preset("guest_rflags_zero")
    assert (t.outcome, t.failure) == ("vmexit:33", "hardware")
    assert t.final["vmcs12.launch_state"] == 0
    _host_state_loaded(t.final)


def test_19_bad_exit_msr_list_aborts():
    t = preset("bad_exit_msr_list")
    assert t.outcome == "shutdown" and t.final["kvm_run.exit_reason"] == "KVM_EXIT_SHUTDOWN"


def test_20_single_step_vmfail_raises_db_but_not_a_vmexit():
    assert preset("single_step_vmfail").final["vcpu.arch.exception"] == "#DB"
    sc = nm.Scenario.preset("vmx", "guest_pg_without_pe").with_fields(
        {"l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_TF})
    assert nm.run(sc).final["vcpu.arch.exception"] == "none"


def test_round_trip_returns_to_host_rip_with_launch_state_set():
    t = preset("round_trip")
    f = t.final
    assert t.outcome == "l2_runs" and f["vmcs12.vm_exit_reason"] == d.EXIT_REASON_VMCALL
    assert f["vmcs12.launch_state"] == 1
    _host_state_loaded(f)


def test_internal_error_for_an_unbacked_apic_page():
    t = preset("apic_access_unbacked")
    assert t.outcome == "userspace_exit" and t.final["vmx.current_vmcs"] == "vmcs01"
    assert t.final["vcpu.rip"] == L1_VMLAUNCH_RIP


@pytest.mark.parametrize("name", list(nm.Scenario.presets("vmx")))
def test_upstream_vmx_breaks_no_invariant(name):
    assert preset(name).invariant_violations() == []


def test_vmx_wrong_order_breaks_invariants():
    up = nm.machine_for("vmx").flows["upstream"]
    flow = up.moved("call:nested_vmx_load_cr3", before="vmx.prep.set_cr0_cr4")
    t = nm.run(nm.Scenario.preset("vmx", "pae_bad_pdpte").with_memory({PAE_PDPT + 8: 0x302001}), flow)
    assert {"I4", "I5"} <= {v.invariant for v in t.invariant_violations()}


# --- TPR shadow and APIC virtualization controls (nested_vmx_check_tpr_shadow_controls(),
#     nested_vmx_check_apicv_controls() at the pinned commit): VMfail 7 -------------------------

VTPR_F = {0x30080: 0xF0}      # the virtual-APIC page's VTPR (offset 0x80), class 0xF


def _with(changes, memory=None):
    sc = nm.Scenario.vmx().with_fields(changes)
    return nm.run(sc.with_memory(memory) if memory else sc)


TPR = {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_TPR_SHADOW,
       "vmcs12.virtual_apic_page_addr": 0x30000}
VID = {"vmcs12.cpu_based_vm_exec_control": TPR["vmcs12.cpu_based_vm_exec_control"]
       | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, "vmcs12.virtual_apic_page_addr": 0x30000,
       "vmcs12.secondary_vm_exec_control": d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY}


@pytest.mark.parametrize("changes,outcome,check", [
    ({**TPR, "vmcs12.tpr_threshold": 0xF, "memory": VTPR_F}, "l2_runs", None),    # the CPU: 0xF <= VTPR[7:4]
    ({**TPR, "vmcs12.tpr_threshold": 0x10}, "vmfail_valid:7", "X7b"),
    ({**TPR, "vmcs12.tpr_threshold": 1 << 31}, "vmfail_valid:7", "X7b"),
    ({**VID, "vmcs12.tpr_threshold": 0x10}, "l2_runs", None),            # with VID bits 31:4 may be set
    ({**VID, "vmcs12.pin_based_vm_exec_control": caps.PINBASED_LOW | d.PIN_BASED_NMI_EXITING},
     "vmfail_valid:7", "X9b"),
    ({**VID, "vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS},
     "vmfail_valid:7", "X9d"),
])
def test_tpr_shadow_and_apicv_controls(changes, outcome, check):
    changes = dict(changes)
    t = _with(changes, changes.pop("memory", None))
    assert t.outcome == outcome
    notes = [n for s in t.steps for n in s.notes if " fails " in n]
    assert (notes[0].startswith(f"{check} fails") if check else not notes), notes


def test_posted_interrupts_need_vid_ack_a_clean_vector_and_an_aligned_descriptor():
    pin = nm.Scenario.vmx().get("vmcs12.pin_based_vm_exec_control") | d.PIN_BASED_POSTED_INTR
    good = {**VID, "vmcs12.pin_based_vm_exec_control": pin, "vmcs12.posted_intr_nv": 0xF2,
            "vmcs12.posted_intr_desc_addr": 0x31000,
            "vmcs12.vm_exit_controls": nm.Scenario.vmx().get("vmcs12.vm_exit_controls") | d.VM_EXIT_ACK_INTR_ON_EXIT}
    assert _with(good).outcome == "l2_runs"
    for bad in ({"vmcs12.posted_intr_nv": 0x1F2}, {"vmcs12.posted_intr_desc_addr": 0x31020},
                {"vmcs12.posted_intr_desc_addr": 1 << 52},
                {"vmcs12.vm_exit_controls": nm.Scenario.vmx().get("vmcs12.vm_exit_controls")}):
        t = _with({**good, **bad})
        assert t.outcome == "vmfail_valid:7" and any(n.startswith("X9c fails") for s in t.steps for n in s.notes)
