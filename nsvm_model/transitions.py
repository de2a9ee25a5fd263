"""Actions both ISAs perform on a nested transition, whatever the names.

enter_guest_mode()/leave_guest_mode() flip HF_GUEST_MASK; svm_switch_vmcb()
and vmx_switch_vmcs() retarget the pointer every later setter writes
through.  Each ISA registers these actions as its own steps, with its own
ids, citations and reasons.
"""

from __future__ import annotations

GUEST_MODE_FILE = "arch/x86/kvm/kvm_cache_regs.h"


def set_guest_mode(value: bool):
    def action(ctx):
        ctx.set("vcpu.guest_mode", value)
        return None
    action.__doc__ = ("enter_guest_mode(): set HF_GUEST_MASK." if value
                      else "leave_guest_mode(): clear HF_GUEST_MASK.")
    return action


def switch_current(pointer_path: str, target: str, pointer_name: str):
    def action(ctx):
        ctx.set(pointer_path, target)
        ctx.note(f"{pointer_name} now points at {target}: every setter writes {target} from here on")
        return None
    action.__doc__ = f"Switch {pointer_name} to {target}."
    return action


def check_triple_fault(ctx):
    """kvm_check_request(KVM_REQ_TRIPLE_FAULT): KVM_EXIT_SHUTDOWN."""
    if "KVM_REQ_TRIPLE_FAULT" not in ctx.get("vcpu.requests"):
        return None
    ctx.remove_from("vcpu.requests", "KVM_REQ_TRIPLE_FAULT")
    ctx.set("kvm_run.exit_reason", "KVM_EXIT_SHUTDOWN")
    ctx.note("triple fault pending outside guest mode: exit to userspace with KVM_EXIT_SHUTDOWN")
    return "shutdown"


LOCAL_TLB_FLUSHES = ("KVM_REQ_TLB_FLUSH_CURRENT", "KVM_REQ_TLB_FLUSH_GUEST")


def service_local_tlb_flush_requests(whose: str):
    """kvm_service_local_tlb_flush_requests() (arch/x86/kvm/x86.c): the flushes requested for
    the *current* MMU context are done now, before the vCPU changes context, so they apply to
    the context they were requested for (``whose``: L1's on entry, L2's on exit)."""
    def action(ctx):
        pending = [r for r in LOCAL_TLB_FLUSHES if r in ctx.get("vcpu.requests")]
        ctx.remove_from("vcpu.requests", *LOCAL_TLB_FLUSHES)
        if pending:
            ctx.note(f"{' and '.join(pending)} serviced now, in {whose}'s context")
        else:
            ctx.note(f"no TLB flush pending for {whose}'s context")
        return None
    action.__doc__ = f"Do the pending TLB flushes of {whose}'s context before leaving it."
    return action


def set_run_pending(value: int):
    def action(ctx):
        ctx.set("vcpu.arch.nested_run_pending", value)
        return None
    action.__doc__ = ("nested_run_pending = KVM_NESTED_RUN_PENDING." if value
                      else "nested_run_pending = 0.")
    return action


def vcpu_state(values) -> dict:
    """The vCPU fields both ISAs start from: L1 running, nothing pending."""
    state = {
        "vcpu.guest_mode": False,
        "vcpu.rip": values["l1.rip"],
        "vcpu.arch.cr2": 0,
        "vcpu.arch.nested_run_pending": 0,
        "vcpu.arch.exception": "none",
        "vcpu.arch.nmi_injected": False,
        "vcpu.arch.tsc_offset": 0,
        "vcpu.arch.l1_tsc_offset": 0,
        "vcpu.requests": frozenset(),
        "kvm_run.exit_reason": "none",
    }
    state.update({f"vcpu.arch.{r}": values[f"l1.{r}"] for r in ("efer", "cr0", "cr3", "cr4", "rflags", "rsp")})
    return state
