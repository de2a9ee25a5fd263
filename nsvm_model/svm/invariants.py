"""What must hold whenever KVM could run a guest, for nSVM.

An invariant is checked after the steps that end a kernel entry point
(VMRUN emulation returns, nested_svm_vmexit() returns, the run ends):
in the middle of enter_svm_guest_mode() the state is legitimately
half-switched.  Upstream breaks none; a broken variant shows where.
"""

from __future__ import annotations

from .. import x86
from ..engine.machine import Invariant
from .state import L0_MSRPM

SETTLED = frozenset({"svm.vmrun.insn_retired", "svm.exit.single_step_db",
                     "svm.run.check_triple_fault", "svm.vmrun.memory_failure"})


def settled(trace, i) -> bool:
    return trace.steps[i].id in SETTLED or i == len(trace.steps) - 1


def at_settled(predicate):
    """Check predicate(state) only where the vCPU could run next."""
    return lambda trace, i: not settled(trace, i) or predicate(trace.steps[i].state)


def _guest_mode_iff_vmcb02(s):
    return s["vcpu.guest_mode"] == (s["svm.current_vmcb"] == "vmcb02")


def _guest_mmu_only_nested(s):
    return s["vcpu.arch.mmu"] != "guest_mmu" or (
        s["vcpu.guest_mode"] and s["nested.ctl.misc_ctl"] & 1)


def _nested_role_is_guest_mode(s):
    return s["vcpu.arch.mmu"] != "guest_mmu" or s["vcpu.arch.guest_mmu.root_role.guest_mode"] == 1


def _mmu_mode_matches_cpu(s):
    mode = x86.paging_mode(s["vcpu.arch.cr0"], s["vcpu.arch.cr4"], s["vcpu.arch.efer"])
    if s["vcpu.arch.mmu"] == "guest_mmu":
        return s["vcpu.arch.guest_mmu.cpu_role.gva"] == mode
    return (s["vcpu.arch.root_mmu.cpu_role"] == mode
            and s["vcpu.arch.root_mmu.root_role.guest_mode"] == int(s["vcpu.guest_mode"]))


def _pae_pdptrs_loaded(s):
    if not (s["vcpu.guest_mode"] and x86.is_pae_paging(s["vcpu.arch.cr0"], s["vcpu.arch.cr4"],
                                                       s["vcpu.arch.efer"])):
        return True
    return s["vcpu.arch.pdptrs_status"] in ("loaded", "marked for reload")


def _vmcb01_keeps_l0_msrpm(s):
    return s["vmcb01.control.msrpm_base_pa"] == L0_MSRPM


def _gif_clear_after_vmexit(trace, i):
    sid = trace.steps[i].id
    after_exit = sid == "svm.exit.single_step_db" or (
        sid == "svm.vmrun.insn_retired" and trace.outcome == "vmexit_invalid")
    return not after_exit or trace.steps[i].state["vcpu.gif"] == 0


L1_VISIBLE = ("vcpu.arch.efer", "vcpu.arch.cr0", "vcpu.arch.cr3", "vcpu.arch.cr4",
              "vcpu.arch.rflags", "vcpu.arch.rax", "vcpu.arch.rsp", "svm.current_vmcb",
              "vcpu.guest_mode", "vcpu.arch.mmu", "vcpu.arch.root_mmu.cpu_role",
              "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.pgd",
              "vmcb01.control.msrpm_base_pa", "vcpu.arch.tsc_offset", "vmcb01.save.efer",
              "vmcb01.save.cr0", "vmcb01.save.cr3", "vmcb01.save.cr4")


def _failed_vmrun_leaves_l1_alone(trace, i):
    if trace.outcome != "vmexit_invalid" or i != len(trace.steps) - 1:
        return True
    before, after = trace.initial, trace.steps[i].state
    if after["vcpu.rip"] != (before["vcpu.rip"] + 3) & x86.MASK64:
        return False
    return all(before[p] == after[p] for p in L1_VISIBLE)


def l1_differences(trace) -> dict:
    """For a failed VMRUN: which L1-visible paths differ from before VMRUN."""
    before, after = trace.initial, trace.final
    return {p: (before[p], after[p]) for p in L1_VISIBLE if before[p] != after[p]}


INVARIANTS = (
    Invariant("I1", "the vCPU is in guest mode exactly when vmcb02 is the current VMCB",
              at_settled(_guest_mode_iff_vmcb02)),
    Invariant("I2", "guest_mmu is active only in guest mode with nested NPT",
              at_settled(_guest_mmu_only_nested)),
    Invariant("I3", "the nested NPT MMU's role carries the guest-mode bit",
              at_settled(_nested_role_is_guest_mode)),
    Invariant("I4", "the active MMU's paging mode and guest-mode bit match the vCPU's "
                    "CR0/CR4/EFER and guest mode", at_settled(_mmu_mode_matches_cpu)),
    Invariant("I5", "a PAE L2 has its PDPTRs loaded (or marked for reload with nested NPT)",
              at_settled(_pae_pdptrs_loaded)),
    Invariant("I6", "vmcb01 keeps pointing at L0's MSR permission map for L1",
              at_settled(_vmcb01_keeps_l0_msrpm)),
    Invariant("I7", "GIF is 0 after every #VMEXIT, VMEXIT_INVALID included",
              _gif_clear_after_vmexit),
    Invariant("I8", "after a failed VMRUN, L1's registers, MMU and VMCB pointers are as before, "
                    "except RIP (past VMRUN), GIF and the vmcb12 exit fields",
              _failed_vmrun_leaves_l1_alone),
)
