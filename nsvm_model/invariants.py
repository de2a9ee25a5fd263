"""Invariants both ISAs share: what must hold whenever KVM could run a guest.

They are checked after the steps that end a kernel entry point (the
emulated instruction returns, the nested exit returns, the run ends): in
the middle of a nested entry the state is legitimately half-switched.
Each ISA passes the names that differ: which path holds the current
VMCB/VMCS, what the L2 structure is called, and how nested TDP is read.
"""

from __future__ import annotations

from typing import Callable, Iterable

from . import x86
from .engine.machine import Invariant


def settled_at(step_ids: Iterable[str]):
    ids = frozenset(step_ids)

    def settled(trace, i) -> bool:
        return trace.steps[i].id in ids or i == len(trace.steps) - 1
    return settled


def at_settled(settled, predicate):
    """Check predicate(state) only where the vCPU could run next."""
    return lambda trace, i: not settled(trace, i) or predicate(trace.steps[i].state)


def mmu_mode_matches_cpu(s) -> bool:
    mode = x86.paging_mode(s["vcpu.arch.cr0"], s["vcpu.arch.cr4"], s["vcpu.arch.efer"])
    # With guest_mmu active, root_mmu keeps L1's root role on purpose: only the walker counts.
    return s["vcpu.arch.gva_walk.cpu_role"] == mode and (
        s["vcpu.arch.mmu"] == "guest_mmu"
        or s["vcpu.arch.root_mmu.root_role.guest_mode"] == int(s["vcpu.guest_mode"]))


def pae_pdptrs_loaded(s) -> bool:
    if not (s["vcpu.guest_mode"] and x86.is_pae_paging(s["vcpu.arch.cr0"], s["vcpu.arch.cr4"],
                                                       s["vcpu.arch.efer"])):
        return True
    return s["vcpu.arch.pdptrs_status"] in ("loaded", "marked for reload")


def common_invariants(settled, current: str, l2_struct: str, tdp_name: str,
                      nested_tdp: Callable) -> tuple:
    """I1-I5: guest mode, MMU selection, MMU roles and PDPTRs."""
    return (
        Invariant("I1", f"the vCPU is in guest mode exactly when {l2_struct} is current",
                  at_settled(settled, lambda s: s["vcpu.guest_mode"] == (s[current] == l2_struct))),
        Invariant("I2", f"guest_mmu is active only in guest mode with nested {tdp_name}",
                  at_settled(settled, lambda s: s["vcpu.arch.mmu"] != "guest_mmu"
                             or (s["vcpu.guest_mode"] and nested_tdp(s)))),
        Invariant("I3", f"the nested {tdp_name} MMU's role carries the guest-mode bit",
                  at_settled(settled, lambda s: s["vcpu.arch.mmu"] != "guest_mmu"
                             or s["vcpu.arch.guest_mmu.root_role.guest_mode"] == 1)),
        Invariant("I4", "the active MMU's paging mode and guest-mode bit match the vCPU's "
                        "CR0/CR4/EFER and guest mode", at_settled(settled, mmu_mode_matches_cpu)),
        Invariant("I5", f"a PAE L2 has its PDPTRs loaded (or marked for reload with nested {tdp_name})",
                  at_settled(settled, pae_pdptrs_loaded)),
    )
