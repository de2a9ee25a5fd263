"""What must hold whenever KVM could run a guest, for nVMX.

I1-I5 are shared with nSVM (nsvm_model/invariants.py); I6-I8 are nVMX's own.
"""

from __future__ import annotations

from .. import x86
from ..engine.machine import Invariant
from ..invariants import common_invariants, settled_at
from .checks import has2
from . import defs as d

SETTLED = frozenset({"vmx.run.vmfail", "vmx.run.vmfail_invalid", "vmx.run.vmentry_failed",
                     "vmx.run.activity_state", "vmx.run.check_triple_fault", "vmx.late.restore_host_state"})
settled = settled_at(SETTLED)


def _nested_ept(s) -> bool:
    return has2(lambda f: s[f"vmcs12.{f}"], d.SECONDARY_EXEC_ENABLE_EPT)


VMFAIL_MAY_CHANGE = {"vcpu.arch.rflags", "vcpu.rip", "vmcs12.vm_instruction_error",
                     "vmx.local.vm_instruction_error", "vcpu.arch.exception"}


def _vmfail_changes_nothing_else(trace, i):
    if i != len(trace.steps) - 1 or not trace.outcome.startswith("vmfail") or trace.failure == "late":
        return True
    before, after = trace.initial, trace.steps[i].state
    return all(before[p] == after[p] for p in before if p not in VMFAIL_MAY_CHANGE)


HOST_STATE = (("vcpu.arch.cr0", "vmcs12.host_cr0"), ("vcpu.arch.cr4", "vmcs12.host_cr4"),
              ("vcpu.arch.cr3", "vmcs12.host_cr3"), ("vcpu.rip", "vmcs12.host_rip"),
              ("vcpu.arch.rsp", "vmcs12.host_rsp"))


def _vmexit_loads_host_state(trace, i):
    s = trace.steps[i].state
    if trace.steps[i].id != "vmx.fail.set_exit_reason" or s["vcpu.requests"] & {"KVM_REQ_TRIPLE_FAULT"}:
        return True
    return all(s[a] == s[b] for a, b in HOST_STATE) and s["vcpu.arch.rflags"] == x86.X86_EFLAGS_FIXED


def _run_pending_clear_in_l1(trace, i):
    s = trace.steps[i].state
    return not settled(trace, i) or s["vcpu.guest_mode"] or not s["vcpu.arch.nested_run_pending"]


INVARIANTS = common_invariants(settled, "vmx.current_vmcs", "vmcs02", "EPT", _nested_ept) + (
    Invariant("I6", "after a VMfail only RFLAGS, RIP and vm_instruction_error differ from before",
              _vmfail_changes_nothing_else),
    Invariant("I7", "after a consistency-check VM exit L1 runs on vmcs12's host state "
                    "(CR0, CR3, CR4, RIP, RSP; RFLAGS = 0x2)", _vmexit_loads_host_state),
    Invariant("I8", "nested_run_pending is clear whenever L1 runs", _run_pending_clear_in_l1),
)
