"""What must hold whenever KVM could run a guest, for nSVM.

I1-I5 are shared with nVMX (nsvm_model/invariants.py); I6-I8 are nSVM's
own.  Upstream breaks none; a broken ordering shows where.
"""

from __future__ import annotations

from .. import x86
from ..engine.machine import Invariant
from ..invariants import at_settled, common_invariants, settled_at
from .checks import CONTROL_CHECK_FIELDS, CONTROL_CHECKS, CheckEnv, first_failure
from .defs import SVM_MISC_ENABLE_NP
from .state import L0_MSRPM

SETTLED = frozenset({"svm.vmrun.insn_retired", "svm.exit.single_step_db", "svm.run.check_triple_fault",
                     "svm.vmrun.memory_failure", "svm.smm.handler", "svm.smm.set_run_pending"})
settled = settled_at(SETTLED)


def _vmcb01_keeps_l0_msrpm(s):
    return s["vmcb01.control.msrpm_base_pa"] == L0_MSRPM


def _gif_clear_after_vmexit(trace, i):
    sid = trace.steps[i].id
    after_exit = sid == "svm.exit.single_step_db" or (
        sid == "svm.vmrun.insn_retired" and trace.outcome == "vmexit_invalid")
    return not after_exit or trace.steps[i].state["vcpu.gif"] == 0


L1_VISIBLE = ("vcpu.arch.efer", "vcpu.arch.cr0", "vcpu.arch.cr3", "vcpu.arch.cr4",
              "vcpu.arch.rflags", "vcpu.arch.rax", "vcpu.arch.rsp", "svm.current_vmcb",
              "vcpu.guest_mode", "vcpu.arch.mmu", "vcpu.arch.gva_walk.cpu_role",
              "vcpu.arch.root_mmu.root_role.guest_mode", "vcpu.arch.root_mmu.root.pgd",
              "vmcb01.control.msrpm_base_pa", "vcpu.arch.tsc_offset", "vmcb01.save.efer",
              "vmcb01.save.cr0", "vmcb01.save.cr3", "vmcb01.save.cr4")


def _failed_vmrun_leaves_l1_alone(trace, i):
    if trace.outcome != "vmexit_invalid" or i != len(trace.steps) - 1:
        return True
    before, after = trace.initial, trace.steps[i].state
    if after["vcpu.rip"] != (before["vcpu.rip"] + 3) & x86.MASK64:
        return False
    return all(before[p] == after[p] for p in L1_VISIBLE)


def _vmexit_completes(trace, i):
    """A #VMEXIT that started must end with L1 running on vmcb01."""
    exits = [s.index for s in trace.steps if s.function.startswith("nested_svm_vmexit")]
    if i != len(trace.steps) - 1 or not exits:
        return True
    last_exit = max(exits)
    entered_again = any(s.id == "svm.enter.switch_vmcb02" for s in trace.steps[last_exit:])
    s = trace.steps[i].state
    return entered_again or (not s["vcpu.guest_mode"] and s["svm.current_vmcb"] == "vmcb01")


def _l2_runs_from_checked_vmcb12(s):
    if not s["vcpu.guest_mode"]:
        return True
    values = {f: s[f"nested.ctl.{f}"] for f in CONTROL_CHECK_FIELDS}
    feats = frozenset(s["cpu.features"]) if s["cpu.npt"] else frozenset(s["cpu.features"]) - {"NPT"}
    return first_failure(CONTROL_CHECKS, values, CheckEnv(s["cpu.maxphyaddr"], feats, False)) is None


def l1_differences(trace) -> dict:
    """For a failed VMRUN: which L1-visible paths differ from before VMRUN."""
    before, after = trace.initial, trace.final
    return {p: (before[p], after[p]) for p in L1_VISIBLE if before[p] != after[p]}


INVARIANTS = common_invariants(
    settled, "svm.current_vmcb", "vmcb02", "NPT",
    lambda s: bool(s["nested.ctl.misc_ctl"] & SVM_MISC_ENABLE_NP)) + (
    Invariant("I6", "vmcb01 keeps pointing at L0's MSR permission map for L1",
              at_settled(settled, _vmcb01_keeps_l0_msrpm)),
    Invariant("I7", "GIF is 0 after every #VMEXIT, VMEXIT_INVALID included",
              _gif_clear_after_vmexit),
    Invariant("I8", "after a failed VMRUN, L1's registers, MMU and VMCB pointers are as before, "
                    "except RIP (past VMRUN), GIF and the vmcb12 exit fields",
              _failed_vmrun_leaves_l1_alone),
    Invariant("I9", "an emulated #VMEXIT, once started, completes: L1 runs on vmcb01",
              _vmexit_completes),
    Invariant("I10", "L2 runs only from a cached vmcb12 that passes the control checks (C1-C7)",
              at_settled(settled, _l2_runs_from_checked_vmcb12)),
)
