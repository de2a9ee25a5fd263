"""The order of the nSVM steps, as data: upstream first, then the variants.

Each sequence is named after the kernel function whose body it lists, so
``UPSTREAM.sequences`` reads as the table of contents of nested_svm_vmrun()
and its callees at the pinned commit.  "call:X" runs sequence X and
returns; ``on`` maps a step's outcome label to where the kernel goes next.
"""

from __future__ import annotations

from ..engine.trace import Flow
from .steps import ENTRY_LOAD_CR3, EXIT_LOAD_CR3, RSM_LOAD_CR3

NESTED_SVM_VMRUN = (
    "svm.vmrun.check_permissions",        # vmrun_interception()
    "svm.vmrun.check_hsave",
    "svm.vmrun.check_smm",
    "svm.vmrun.check_rax",
    "call:nested_svm_copy_vmcb12_to_cache",
    "svm.vmrun.skip_instruction",
    "svm.vmrun.save_l1_state",
    "svm.vmrun.save_l1_cr3",
    "svm.vmrun.set_run_pending",
    "call:enter_svm_guest_mode",
    "svm.vmrun.merge_msrpm",
    "svm.vmrun.insn_retired",
    "call:svm_vcpu_run",
)

COPY_VMCB12_TO_CACHE = (
    "svm.vmrun.map_vmcb12",
    "svm.vmrun.copy_control_to_cache",
    "svm.vmrun.copy_save_to_cache",
    "svm.vmrun.check_save",               # nested_svm_check_cached_vmcb12()
    "svm.vmrun.check_controls",
)

ENTER_SVM_GUEST_MODE = (
    "svm.enter.set_vmcb12_gpa",
    "svm.enter.copy_common_state",
    "svm.enter.switch_vmcb02",
    "call:nested_vmcb02_prepare_control",
    "call:nested_vmcb02_prepare_save",
    "call:nested_svm_load_cr3",
    "svm.enter.set_gif",
)

# enter_svm_guest_mode(from_vmrun = false), as svm_leave_smm() calls it: L2's CR3 without
# its PDPTRs, the rest deferred to KVM_REQ_GET_NESTED_STATE_PAGES; a failure fails RSM.
ENTER_SVM_GUEST_MODE_FROM_RSM = tuple(
    e for entry in ENTER_SVM_GUEST_MODE
    for e in ({"call:nested_svm_load_cr3": ("call:nested_svm_load_cr3(RSM)",),
               "svm.enter.set_gif": ("svm.rsm.request_nested_state_pages", "svm.enter.set_gif")}
              .get(entry, (entry,))))

PREPARE_CONTROL = (
    "svm.enter.tlb_flush",
    "svm.enter.enter_guest_mode",
    "svm.enter.prepare_control.bitmaps",
    "svm.enter.init_mmu_context",
    "svm.enter.prepare_control.tsc",
    "svm.enter.prepare_control.int_ctl",
    "svm.enter.recalc_intercepts",
)

PREPARE_SAVE = (
    "svm.enter.prepare_save.segments",
    "svm.enter.prepare_save.regs",
    "svm.enter.prepare_save.gprs",
)

NESTED_SVM_VMEXIT = (
    "svm.exit.update_vmcb12",
    "svm.exit.leave_guest_mode",
    "svm.exit.clear_vmcb12_gpa",
    "svm.exit.copy_common_state",
    "svm.exit.switch_vmcb01",
    "svm.exit.clear_gif",
    "svm.exit.restore_tsc",
    "svm.exit.restore_l1_regs",
    "svm.exit.tlb_flush",
    "svm.exit.uninit_mmu_context",
    "call:nested_svm_load_cr3(L1)",
    "svm.exit.drop_events",
    "svm.exit.single_step_db",
)

SVM_VCPU_RUN = (
    "svm.l2.vcpu_run",
    "svm.l2.exit_handled",
    "call:nested_svm_vmexit",
    "svm.run.check_triple_fault",
)

UPSTREAM_SEQUENCES = {
    "main": NESTED_SVM_VMRUN,
    "nested_svm_copy_vmcb12_to_cache": COPY_VMCB12_TO_CACHE,
    "enter_svm_guest_mode": ENTER_SVM_GUEST_MODE,
    "nested_vmcb02_prepare_control": PREPARE_CONTROL,
    "nested_vmcb02_prepare_save": PREPARE_SAVE,
    "nested_svm_load_cr3": ENTRY_LOAD_CR3,
    "svm_vcpu_run": SVM_VCPU_RUN,
    # an NPF in L1's table: L0's npf_interception() walks it and injects the NPF into L1
    "nested_npf": ("svm.l2.inject_npf_exit", "call:nested_svm_vmexit", "svm.run.check_triple_fault"),
    "nested_svm_vmexit": NESTED_SVM_VMEXIT,
    "nested_svm_load_cr3(L1)": EXIT_LOAD_CR3,
    "enter_svm_guest_mode(RSM)": ENTER_SVM_GUEST_MODE_FROM_RSM,
    "nested_svm_load_cr3(RSM)": RSM_LOAD_CR3,
    # where failures go
    "kvm_handle_memory_failure": ("svm.vmrun.memory_failure",),
    "early_vmexit_invalid": ("svm.vmrun.vmcb12_exit_invalid", "svm.vmrun.early_clear_gif",
                             "svm.vmrun.skip_instruction", "svm.vmrun.insn_retired"),
    "late_vmexit_invalid": ("svm.vmrun.late_failure", "call:nested_svm_vmexit",
                            "svm.vmrun.insn_retired", "svm.run.check_triple_fault"),
    "l1_cr3_restore_failed": ("svm.exit.load_cr3_failed",),
    # an SMI while L2 runs, and RSM back into L2
    "svm_enter_smm": ("svm.smm.enter_smm", "call:nested_svm_vmexit", "svm.smm.save_vmcb01",
                      "svm.smm.handler", "call:svm_leave_smm"),
    "svm_leave_smm": ("svm.smm.map_vmcb12", "svm.smm.restore_vmcb01", "svm.vmrun.copy_control_to_cache",
                      "svm.vmrun.copy_save_to_cache", "svm.smm.check_save", "svm.smm.check_controls",
                      "call:enter_svm_guest_mode(RSM)", "svm.smm.set_run_pending"),
    "rsm_failed": ("svm.smm.rsm_fails", "svm.run.check_triple_fault"),
}

UPSTREAM_ON = {
    "svm.vmrun.check_permissions:ud": "end:l1_ud",
    "svm.vmrun.check_permissions:gp": "end:l1_gp",
    "svm.vmrun.check_hsave:gp": "end:l1_gp",
    "svm.vmrun.check_smm:ud": "end:l1_ud",
    "svm.vmrun.check_rax:gp": "end:l1_gp",
    "svm.vmrun.map_vmcb12:efault": "unwind:kvm_handle_memory_failure",
    "kvm_handle_memory_failure:done": "end:userspace_exit",
    "svm.vmrun.check_save:invalid": "unwind:early_vmexit_invalid",
    "svm.vmrun.check_controls:invalid": "unwind:early_vmexit_invalid",
    "early_vmexit_invalid:done": "end:vmexit_invalid/early",
    "svm.enter.load_cr3.check_legal:illegal_cr3": "unwind:late_vmexit_invalid",
    "svm.enter.load_cr3.pdptrs:bad_pdpte": "unwind:late_vmexit_invalid",
    "svm.vmrun.merge_msrpm:fail": "unwind:late_vmexit_invalid",
    "late_vmexit_invalid:done": "end:vmexit_invalid/late",
    "svm.exit.load_cr3.check_legal:illegal_cr3": "l1_cr3_restore_failed",
    "svm.exit.load_cr3.pdptrs:bad_pdpte": "l1_cr3_restore_failed",
    "svm.l2.vcpu_run:running": "end:l2_runs",
    "svm.l2.vcpu_run:smi": "svm_enter_smm",
    "svm.smm.map_vmcb12:efault": "unwind:rsm_failed",
    "svm.rsm.load_cr3.check_legal:illegal_cr3": "unwind:rsm_failed",
    "svm.smm.check_save:invalid": "unwind:rsm_failed",
    "svm.smm.check_controls:invalid": "unwind:rsm_failed",
    "rsm_failed:done": "end:shutdown",
    "svm.l2.exit_handled:host": "end:l2_runs",
    "svm.l2.exit_handled:npf": "nested_npf",
    "svm.run.check_triple_fault:shutdown": "end:shutdown",
    "main:done": "end:l2_runs",
}

UPSTREAM = Flow(
    name="upstream", isa="svm", sequences=UPSTREAM_SEQUENCES, on=UPSTREAM_ON,
    description="kvm-x86/linux at 1a27afa0: checks inside nested_svm_copy_vmcb12_to_cache(), "
                "early VMEXIT_INVALID clears EVENTINJ and GIF, late failures take the full "
                "nested_svm_vmexit()",
    source="kvm-x86/linux 1a27afa0511e404fd87c1a5e643945940ef72f90",
    exposes="default")

FLOWS = {"upstream": UPSTREAM}
