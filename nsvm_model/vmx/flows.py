"""The order of the nVMX steps, as data: the table of contents of nested_vmx_run().

Sequences are named after the kernel function or label whose body they
list; "call:X" runs X and returns; ``on`` maps a step's outcome label to
where the kernel goes next ("unwind:" when an error returns to the top).
"""

from __future__ import annotations

from ..engine.trace import Flow
from .steps import ENTRY_LOAD_CR3, HOST_LOAD_CR3

UPSTREAM_SEQUENCES = {
    "main": (                                       # nested_vmx_run()
        "vmx.run.check_permission",
        "vmx.run.check_current_vmcs",
        "vmx.run.check_mov_ss",
        "vmx.run.check_launch_state",
        "vmx.run.check_controls",
        "vmx.run.check_host_state",
        "vmx.run.set_run_pending",
        "call:nested_vmx_enter_non_root_mode",
        "vmx.run.activity_state",
        "call:vmx_vcpu_run",
    ),
    "nested_vmx_enter_non_root_mode": (
        "vmx.enter.service_tlb_flush",
        "vmx.enter.snapshot_l1",
        "vmx.enter.switch_vmcs02",
        "vmx.enter.prepare_vmcs02_early",
        "vmx.enter.get_vmcs12_pages",
        "vmx.enter.check_guest_state",
        "vmx.enter.enter_guest_mode",
        "call:prepare_vmcs02",
        "vmx.enter.load_msr",
    ),
    "prepare_vmcs02": (
        "vmx.prep.rflags",
        "vmx.prep.pat",
        "vmx.prep.tsc",
        "vmx.prep.tlb_flush",
        "vmx.prep.ept_init_mmu_context",
        "vmx.prep.set_cr0_cr4",
        "vmx.prep.set_efer",
        "vmx.prep.guest_state_valid",
        "call:nested_vmx_load_cr3",
        "vmx.prep.guest_cr3",
        "vmx.prep.rsp_rip",
    ),
    "nested_vmx_load_cr3": ENTRY_LOAD_CR3,
    "vmx_vcpu_run": (
        "vmx.l2.vcpu_run",
        "vmx.l2.reflect_vmexit",
        "call:__nested_vmx_vmexit",
        "vmx.run.check_triple_fault",
    ),
    "__nested_vmx_vmexit": (
        "vmx.exit.service_tlb_flush",
        "vmx.exit.leave_guest_mode",
        "vmx.exit.restore_tsc",
        "vmx.exit.sync_vmcs02_to_vmcs12",
        "vmx.exit.prepare_vmcs12",
        "vmx.exit.drop_events",
        "vmx.exit.switch_vmcs01",
        "call:load_vmcs12_host_state",
    ),
    "load_vmcs12_host_state": (
        "vmx.host.efer",
        "vmx.host.rip_rsp_rflags",
        "vmx.host.cr0_cr4",
        "vmx.host.ept_uninit_mmu_context",
        "call:nested_vmx_load_cr3(host)",
        "vmx.host.tlb_flush",
        "vmx.host.pat_dr7",
        "vmx.host.exit_msr_load",
    ),
    "nested_vmx_load_cr3(host)": HOST_LOAD_CR3,
    # failures
    "nested_vmx_failInvalid": ("vmx.run.vmfail_invalid",),
    "nested_vmx_fail": ("vmx.run.vmfail",),
    "kvm_internal_error": ("vmx.fail.switch_vmcs01", "vmx.run.vmentry_failed"),
    "fail_before_guest_mode": ("call:vmentry_fail_vmexit", "vmx.run.vmentry_failed",
                               "vmx.run.check_triple_fault"),
    "fail_in_guest_mode": ("call:vmentry_fail_vmexit_guest_mode", "vmx.run.vmentry_failed",
                           "vmx.run.check_triple_fault"),
    "fail_illegal_cr3": ("vmx.prep.fail_cr3", "call:vmentry_fail_vmexit_guest_mode",
                         "vmx.run.vmentry_failed", "vmx.run.check_triple_fault"),
    "fail_bad_pdpte": ("vmx.prep.fail_pdpte", "call:vmentry_fail_vmexit_guest_mode",
                       "vmx.run.vmentry_failed", "vmx.run.check_triple_fault"),
    "vmentry_fail_vmexit_guest_mode": ("vmx.fail.tsc_unwind", "vmx.fail.leave_guest_mode",
                                       "call:vmentry_fail_vmexit"),
    "vmentry_fail_vmexit": ("vmx.fail.switch_vmcs01", "call:load_vmcs12_host_state",
                            "vmx.fail.set_exit_reason"),
    "vmx_abort": ("vmx.host.abort",),
    "late_vmfail": ("vmx.exit.leave_guest_mode", "vmx.exit.restore_tsc", "vmx.exit.drop_events",
                    "vmx.exit.switch_vmcs01", "vmx.late.vmfail", "vmx.late.restore_host_state",
                    "vmx.run.check_triple_fault"),
}

UPSTREAM_ON = {
    "vmx.run.check_permission:ud": "end:l1_ud",
    "vmx.run.check_permission:gp": "end:l1_gp",
    "vmx.run.check_current_vmcs:fail_invalid": "unwind:nested_vmx_failInvalid",
    "nested_vmx_failInvalid:done": "end:vmfail_invalid",
    "vmx.run.check_mov_ss:vmfail": "unwind:nested_vmx_fail",
    "vmx.run.check_launch_state:vmfail": "unwind:nested_vmx_fail",
    "vmx.run.check_controls:vmfail": "unwind:nested_vmx_fail",
    "vmx.run.check_host_state:vmfail": "unwind:nested_vmx_fail",
    "nested_vmx_fail:done": "end:vmfail_valid",
    "vmx.enter.get_vmcs12_pages:internal_error": "unwind:kvm_internal_error",
    "kvm_internal_error:done": "end:userspace_exit",
    "vmx.enter.check_guest_state:invalid": "unwind:fail_before_guest_mode",
    "fail_before_guest_mode:done": "end:vmexit/early",
    "vmx.prep.guest_state_valid:invalid": "unwind:fail_in_guest_mode",
    "vmx.enter.load_msr:msr_fail": "unwind:fail_in_guest_mode",
    "fail_in_guest_mode:done": "end:vmexit/late",
    "vmx.prep.load_cr3.check_legal:illegal_cr3": "unwind:fail_illegal_cr3",
    "fail_illegal_cr3:done": "end:vmexit/late",
    "vmx.prep.load_cr3.pdptrs:bad_pdpte": "unwind:fail_bad_pdpte",
    "fail_bad_pdpte:done": "end:vmexit/late",
    "vmx.host.load_cr3.check_legal:illegal_cr3": "vmx_abort",
    "vmx.host.load_cr3.pdptrs:bad_pdpte": "vmx_abort",
    "vmx.host.exit_msr_load:abort": "vmx_abort",
    "vmx.run.activity_state:halted": "end:l2_runs",
    "vmx.l2.vcpu_run:running": "end:l2_runs",
    "vmx.l2.vcpu_run:hw_vmfail": "unwind:late_vmfail",
    "late_vmfail:done": "end:vmfail_valid/late",
    "vmx.run.check_triple_fault:shutdown": "end:shutdown",
    "main:done": "end:entered",
}

UPSTREAM = Flow(
    name="upstream", isa="vmx", sequences=UPSTREAM_SEQUENCES, on=UPSTREAM_ON,
    description="kvm-x86/linux at 1a27afa0: VMfail checks in nested_vmx_run(), guest-state "
                "checks before guest mode, CR3 and the MSR-load list after it",
    source="kvm-x86/linux 1a27afa0511e404fd87c1a5e643945940ef72f90", exposes="default")

FLOWS = {"upstream": UPSTREAM}
