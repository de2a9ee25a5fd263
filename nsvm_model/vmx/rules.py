"""nVMX ordering rules (nvmx-flow.md section 6, D1-D14; D15-D17 added), with the steps they relate."""

from __future__ import annotations

from ..engine.rules import Rule

C = "vmx/nested.c@1a27afa0"


def _r(id, before, after, reason, source, symptom, confidence="V", required=False):
    return Rule(id, "vmx", tuple(before), tuple(after), reason, source, symptom, confidence, required)


RULES = (
    _r("D1", ["vmx.run.check_controls", "vmx.run.check_host_state"],
       ["vmx.run.set_run_pending", "vmx.enter.snapshot_l1", "vmx.enter.switch_vmcs02"],
       "a VMfail leaves L1's state unchanged except flags, RIP and the error field; the host "
       "area is checked because every later failure loads it", f"nested_vmx_run() {C}; SDM 27.2",
       "a VMfail after vmcs02 became current or after the run was marked pending"),
    _r("D2", ["vmx.enter.snapshot_l1"], ["vmx.enter.switch_vmcs02", "vmx.prep.load_cr3.set_cr3"],
       "the snapshots VMREAD vmcs01, and pre_vmenter_cr3 must be L1's CR3",
       f"nested_vmx_enter_non_root_mode() {C}", "a late VMfail unwinds to L2's CR3"),
    _r("D3", ["vmx.enter.switch_vmcs02"], ["vmx.enter.prepare_vmcs02_early", "vmx.enter.get_vmcs12_pages",
                                           "vmx.prep.rflags"],
       "they VMWRITE vmcs02 fields", f"prepare_vmcs02_early(), prepare_vmcs02() {C}",
       "L2's controls are written into vmcs01", "I"),
    _r("D4", ["vmx.enter.check_guest_state"], ["vmx.enter.enter_guest_mode", "vmx.prep.set_cr0_cr4",
                                               "vmx.prep.set_efer"],
       "most checks run before KVM starts loading L2 state, so a failure needs no "
       "leave_guest_mode() and no TSC unwind", f"nested_vmx_enter_non_root_mode() {C}",
       "a rejected guest state must be unwound from guest mode"),
    _r("D5", ["vmx.enter.get_vmcs12_pages"], ["vmx.enter.check_guest_state"],
       "an internal error (an unbacked APIC page) is reported before any VM exit is synthesized",
       f"nested_vmx_enter_non_root_mode() {C}", "a VM exit, then an internal error", "I"),
    _r("D6", ["vmx.enter.enter_guest_mode"], ["vmx.prep.load_cr3.init_mmu", "vmx.prep.load_cr3.new_pgd"],
       "kvm_init_mmu() takes the role's guest-mode bit from is_guest_mode(); it keeps L2's roots "
       "apart from L1's",
       f"prepare_vmcs02(), kvm_init_mmu() {C}", "an L2 MMU role without the guest-mode bit"),
    _r("D7", ["vmx.prep.ept_init_mmu_context"], ["vmx.prep.load_cr3.init_mmu", "vmx.prep.load_cr3.new_pgd"],
       "with nested EPT, kvm_init_mmu() must find guest_mmu active, so it sets up only the walker "
       "for L2's addresses and leaves root_mmu, L1's MMU, alone (the kvm_mmu_new_pgd() skip "
       "itself follows load_cr3's nested_ept argument)",
       f"nested_vmx_load_cr3(), kvm_init_mmu() {C}",
       "root_mmu's role re-initialized with the guest-mode bit while it is L1's MMU"),
    _r("D8", ["vmx.prep.set_cr0_cr4", "vmx.prep.set_efer"],
       ["vmx.prep.load_cr3.pdptrs", "vmx.prep.load_cr3.init_mmu"],
       "is_pae_paging() and the MMU role need L2's CR0.PG, CR4.PAE and EFER.LMA",
       f"nested_vmx_load_cr3() {C}", "PDPTEs read (or not) by L1's mode; an MMU role for L1's mode"),
    _r("D9", ["vmx.prep.load_cr3.set_cr3"], ["vmx.prep.guest_cr3"],
       "vmcs02's GUEST_CR3 is written only once nested_vmx_load_cr3() has accepted L2's CR3, so a "
       "failed load leaves it alone; it must hold L2's CR3 for a VM exit taken without running L2",
       f"prepare_vmcs02() {C}", "vmcs02.GUEST_CR3 holds a CR3 that load_cr3 rejected", "I"),
    _r("D10", ["vmx.prep.rsp_rip", "vmx.prep.load_cr3.new_pgd"], ["vmx.enter.load_msr"],
       "MSRs load after all guest state (SDM 27.4), in L2's context",
       f"nested_vmx_enter_non_root_mode() {C}", "MSRs written with L1's state loaded", "I"),
    _r("D11", ["vmx.exit.leave_guest_mode", "vmx.exit.switch_vmcs01"], ["vmx.host.efer", "vmx.host.cr0_cr4"],
       "the exit runs in L1's context on vmcs01", f"__nested_vmx_vmexit() {C}",
       "L1's host state written into vmcs02, or loaded in guest mode"),
    _r("D13", ["vmx.exit.sync_vmcs02_to_vmcs12", "vmx.exit.prepare_vmcs12"],
       ["vmx.exit.switch_vmcs01", "vmx.exit.drop_events"],
       "they read vmcs02, and the events they record are dropped only after",
       f"__nested_vmx_vmexit() {C}", "vmcs12 gets vmcs01's values; injected events are lost"),
    _r("D14", ["vmx.host.ept_uninit_mmu_context", "vmx.host.cr0_cr4", "vmx.host.efer"],
       ["vmx.host.load_cr3.pdptrs", "vmx.host.load_cr3.init_mmu"],
       "L1's CR3 needs L1's MMU and paging mode, and vmx_set_cr0() consults EFER",
       f"load_vmcs12_host_state() {C}", "L1 runs with an MMU role built for L2"),
    _r("D15", ["vmx.prep.load_cr3.set_cr3"], ["vmx.l2.vcpu_run"],
       "L2 runs on the CR3 and MMU that nested_vmx_load_cr3() installs in prepare_vmcs02(); an "
       "ordering that never reaches it leaves L1's CR3 and root in place", f"prepare_vmcs02() {C}",
       "L2 runs with L1's CR3", required=True),
    _r("D16", ["vmx.enter.service_tlb_flush"], ["vmx.enter.switch_vmcs02", "vmx.enter.enter_guest_mode"],
       "kvm_service_local_tlb_flush_requests() flushes the current context: L1's flushes must be "
       "done while L1's VMCS and MMU are current", f"nested_vmx_enter_non_root_mode() {C}",
       "a flush L1 requested hits L2's context and L1 keeps stale translations", "I"),
    _r("D17", ["vmx.exit.service_tlb_flush"], ["vmx.exit.leave_guest_mode", "vmx.exit.switch_vmcs01"],
       "the kernel services the flushes requested for L2 before switching to L1 (its own comment)",
       f"__nested_vmx_vmexit() {C}", "a flush L2 needed is done in L1's context, and L2 keeps stale "
       "translations the next time it runs"),
)
