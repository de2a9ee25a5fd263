"""nSVM ordering rules (nsvm-flow.md section 5), with the steps they relate.

Each rule cites the kernel code at the pinned commit or the review thread
it comes from, and says what the model shows when an ordering breaks it.
Rule ids follow the fact sheet's numbering (R1..R29); R30 and R31 were added here.
"""

from __future__ import annotations

from ..engine.rules import Rule

C = "svm/nested.c@1a27afa0"
T_Y_0225 = "Yosry Ahmed's review of v6 16/31, 25 Feb 2026"
T_S_0227B = "Sean Christopherson, 27 Feb 2026 (lore aaI_XogE98GvJjAU)"
L2_STATE = ("svm.enter.switch_vmcb02", "svm.enter.enter_guest_mode", "svm.enter.init_mmu_context",
            "svm.enter.prepare_save.regs", "svm.enter.load_cr3.set_cr3")


def _r(id, before, after, reason, source, symptom, confidence="V", required=False):
    return Rule(id, "svm", tuple(before), tuple(after), reason, source, symptom, confidence, required)


RULES = (
    _r("R1", ["svm.vmrun.check_rax", "svm.vmrun.map_vmcb12"], ["svm.vmrun.skip_instruction"],
       "faults on the vmcb12 GPA (#GP, the emulation-failure exit) must leave RIP at VMRUN",
       f"nested_svm_vmrun() {C}", "L1 sees a fault reported after RIP moved past VMRUN"),
    _r("R2", ["svm.vmrun.copy_control_to_cache", "svm.vmrun.copy_save_to_cache"],
       ["svm.vmrun.check_save", "svm.vmrun.check_controls"],
       "the checks must see the snapshot every later consumer uses, or L1 can change vmcb12 "
       "between check and use (TOCTOU)", f"nested_svm_copy_vmcb12_to_cache() {C}",
       "checks pass on values that are not the ones loaded"),
    _r("R3", ["svm.vmrun.check_save", "svm.vmrun.check_controls"], L2_STATE,
       "VMEXIT_INVALID must leave L1 without any of L2's state, so the early path needs no "
       "unwinding; nVMX also checks before loading L2 state",
       f"nested_svm_copy_vmcb12_to_cache() {C}; {T_S_0227B}",
       "a rejected vmcb12 has to undo a half-loaded L2, or leaves it behind"),
    _r("R4", ["svm.vmrun.skip_instruction"], ["svm.vmrun.save_l1_state"],
       "vmcb01.save.rip must already point past VMRUN, where the #VMEXIT resumes L1",
       f"nested_svm_vmrun() {C}", "L1 re-executes VMRUN after the #VMEXIT", "I"),
    _r("R5", ["svm.vmrun.save_l1_state"], ["svm.enter.prepare_save.regs", "svm.enter.prepare_save.gprs"],
       "prepare_save overwrites the vCPU's EFER, CR0, CR4, RFLAGS and RIP with L2's; the "
       "#VMEXIT restores L1 from vmcb01", f"nested_svm_vmrun(), nested_svm_vmexit() {C}",
       "vmcb01 saves L2's registers as L1's"),
    _r("R6", ["svm.vmrun.save_l1_state"], ["svm.enter.init_mmu_context"],
       "the nested NPT format is built from L1's CR4/EFER in vmcb01",
       f"nested_svm_init_mmu_context() {C}", "guest_mmu built from a stale L1 CR4/EFER"),
    _r("R7", ["svm.vmrun.save_l1_state"], ["svm.enter.recalc_intercepts"],
       "the intercept merge reads L1's RFLAGS.IF from vmcb01 to decide on VINTR",
       f"nested_vmcb02_recalc_intercepts() {C}", "VINTR interception decided on a stale IF"),
    _r("R8", ["svm.vmrun.set_run_pending"], ["svm.enter.prepare_control.int_ctl"],
       "without NRIPS in L1's CPUID, prepare_control takes vmcb12's next_rip only when the run is not "
       "pending (RSM, a nested-state restore); a VMRUN must already be marked pending there",
       f"nested_vmcb02_prepare_control() {C}",
       "vmcb12's next_rip used on a VMRUN by an L1 without NRIPS"),
    _r("R10", ["svm.enter.set_vmcb12_gpa"], ["svm.enter.prepare_save.segments", "svm.exit.update_vmcb12"],
       "prepare_save detects a new vmcb12 by its GPA, and every #VMEXIT maps vmcb12 through it",
       f"nested_vmcb02_prepare_save(), nested_svm_vmexit_update_vmcb12() {C}",
       "no forced MSR-bitmap recalc for a new vmcb12; the #VMEXIT writes the wrong page"),
    _r("R11", ["svm.enter.switch_vmcb02"], ["svm.enter.prepare_save.regs"],
       "svm_set_efer/cr0/cr4 and kvm_set_rflags write svm->vmcb: L2's values must land in vmcb02",
       f"nested_vmcb02_prepare_save() {C}", "L2's EFER/CR0/CR4 clobber vmcb01, which holds L1's state"),
    _r("R12", ["svm.enter.switch_vmcb02"], ["svm.enter.recalc_intercepts"],
       "nested_vmcb02_recalc_intercepts() WARNs and does nothing unless vmcb02 is current",
       f"nested_vmcb02_recalc_intercepts() {C}", "vmcb02 keeps stale intercepts"),
    _r("R13", ["svm.enter.enter_guest_mode"], ["svm.enter.recalc_intercepts"],
       "the merge only takes effect in guest mode", f"nested_vmcb02_prepare_control() {C}",
       "intercept changes are not propagated to vmcb02"),
    _r("R14", ["svm.enter.enter_guest_mode"], ["svm.enter.init_mmu_context"],
       "every L2 MMU carries the guest-mode role bit; kvm_init_shadow_npt_mmu() WARNs without it",
       f"nested_svm_init_mmu_context() {C}; commit 46d6c6f3ef0e",
       "guest_mmu's role has guest_mode=0 (and the WARN)"),
    _r("R15", ["svm.enter.switch_vmcb02"], ["svm.enter.enter_guest_mode"],
       "in guest mode every intercept change recalculates vmcb02's intercepts, which WARNs "
       "unless vmcb02 is current", "svm_mark_intercepts_dirty() svm/svm.h@1a27afa0",
       "a WARN when anything between them touches intercepts", "I"),
    _r("R16", ["svm.enter.enter_guest_mode", "svm.enter.switch_vmcb02"], ["svm.enter.set_gif"],
       "get_vgif_vmcb() picks vmcb02's V_GIF only in guest mode",
       f"get_vgif_vmcb() svm/svm.h@1a27afa0", "GIF=1 lands in L1's vmcb01 instead of L2's vmcb02"),
    _r("R17", ["svm.enter.prepare_control.int_ctl"], ["svm.enter.set_gif"],
       "the int_ctl merge overwrites vmcb02's V_GIF with L1's", f"nested_vmcb02_prepare_control() {C}",
       "GIF reverts to L1's pre-VMRUN value (0 after CLGI)", "I"),
    _r("R18", ["svm.enter.prepare_save.regs"], ["svm.enter.load_cr3.pdptrs", "svm.enter.load_cr3.init_mmu"],
       "is_pae_paging() and kvm_init_mmu() read the current CR0/CR4/EFER: they must be L2's",
       f"nested_svm_load_cr3() {C}; {T_Y_0225}",
       "PDPTRs loaded or skipped by L1's paging mode; an MMU role for L1's mode while L2 runs"),
    _r("R19", ["svm.enter.init_mmu_context"], ["svm.enter.load_cr3.init_mmu", "svm.enter.load_cr3.new_pgd"],
       "with nested NPT, kvm_init_mmu() must find guest_mmu active, so it sets up only the walker "
       "for L2's addresses and leaves root_mmu, L1's MMU, alone (the kvm_mmu_new_pgd() skip "
       "itself follows load_cr3's nested_npt argument)", f"nested_svm_load_cr3(), kvm_init_mmu() {C}",
       "root_mmu's role re-initialized with the guest-mode bit while it is L1's MMU"),
    _r("R20a", ["svm.enter.load_cr3.check_legal", "svm.enter.load_cr3.pdptrs"], ["svm.enter.load_cr3.set_cr3"],
       "a CR3 that fails its checks is never installed", f"nested_svm_load_cr3() {C}",
       "vcpu->arch.cr3 holds a CR3 that was rejected"),
    _r("R20b", ["svm.enter.load_cr3.init_mmu"], ["svm.enter.load_cr3.new_pgd"],
       "the new root is installed with the new role", f"nested_svm_load_cr3() {C}",
       "the fast PGD switch compares against stale root levels"),
    _r("R21", ["svm.enter.switch_vmcb02"], ["svm.vmrun.merge_msrpm"],
       "the merge writes svm->vmcb->control.msrpm_base_pa", f"nested_svm_merge_msrpm() {C}; {T_Y_0225}",
       "vmcb01 (L1) points at the merged L2 bitmap"),
    _r("R22", ["svm.enter.prepare_control.bitmaps", "svm.enter.prepare_save.segments"], ["svm.vmrun.merge_msrpm"],
       "prepare_control resets vmcb02's MSRPM to vmcb01's, and prepare_save may force a recalc",
       f"nested_vmcb02_prepare_control(), nested_svm_merge_msrpm() {C}",
       "vmcb02's bitmap pointer reset to vmcb01's, or the Hyper-V shortcut skips the recalc that "
       "prepare_save would have forced"),
    _r("R23", ["svm.enter.load_cr3.new_pgd"], ["svm.enter.set_gif"],
       "a failing load_cr3 returns before GIF is set", f"enter_svm_guest_mode() {C}",
       "GIF=1 set on a VMRUN that then fails (cleared again by the #VMEXIT)"),
    _r("R24", ["svm.exit.update_vmcb12"], ["svm.exit.leave_guest_mode", "svm.exit.switch_vmcb01",
                                           "svm.exit.restore_l1_regs"],
       "vmcb12 gets L2's registers from the vCPU and vmcb02", f"nested_svm_vmexit() {C}",
       "vmcb12 records L1's registers as L2's"),
    _r("R25", ["svm.exit.leave_guest_mode", "svm.exit.switch_vmcb01"], ["svm.exit.clear_gif"],
       "GIF=0 must be L1's GIF, in vmcb01", f"nested_svm_vmexit() {C}", "L1 returns with GIF still set"),
    _r("R26", ["svm.exit.switch_vmcb01"], ["svm.exit.restore_l1_regs"],
       "the setters write the current VMCB", f"nested_svm_vmexit() {C}", "L1's registers land in vmcb02"),
    _r("R27", ["svm.exit.restore_l1_regs", "svm.exit.leave_guest_mode", "svm.exit.uninit_mmu_context"],
       ["svm.exit.load_cr3.pdptrs", "svm.exit.load_cr3.init_mmu"],
       "root_mmu's role must be computed for L1 (guest_mode=0, L1's paging mode)",
       f"nested_svm_vmexit() {C}", "L1 runs with an MMU role built for L2"),
    _r("R28", ["svm.exit.drop_events"], ["svm.exit.single_step_db"],
       "the #DB for a single-stepped VMRUN must not be dropped with L2's events",
       "v5 13/26 refactor comment", "the single-step #DB is lost"),
    _r("R29", ["svm.smm.restore_vmcb01", "svm.smm.check_save", "svm.smm.check_controls"],
       ["svm.smm.set_run_pending"],
       "RSM re-enters L2: vmcb01 must hold L1's state again, and the vmcb12 that L1 could change "
       "in SMM must pass the checks again", "svm_leave_smm() svm/svm.c@1a27afa0; commit be5fa8737d42",
       "L2 re-entered from an invalid vmcb12", required=True),
    _r("R30", ["svm.enter.load_cr3.set_cr3"], ["svm.l2.vcpu_run"],
       "L2 runs on the CR3 and MMU that nested_svm_load_cr3() installs; an ordering that never "
       "reaches it leaves L1's CR3 and root in place", f"enter_svm_guest_mode() {C}",
       "L2 runs with L1's CR3 (invariant I4)", required=True),
    _r("R31", ["svm.enter.enter_guest_mode"], ["svm.enter.load_cr3.init_mmu"],
       "kvm_init_mmu() takes the role's guest-mode bit from is_guest_mode(); without it L2 would "
       "share L1's root (the nVMX rule D6)", f"nested_svm_load_cr3(), kvm_init_mmu() {C}",
       "an L2 MMU role without the guest-mode bit"),
)
