"""nSVM flow variants: older kernels and proposed patches, as edits of upstream.

Each variant changes one thing, so its symptom is attributable: an order
(v6.6-order, v6-unified, sean-v2-proposal), a failure path (pre-gif-fix,
old-vmexit-abort, the vmcb12 mapping variants) or a missing check
(smm-nocheck).  Where an old kernel behaved differently the variant adds
the few steps it needs, cited like the others.  Sources: nsvm-flow.md 6.4.
"""

from __future__ import annotations

from ..engine.trace import Flow, prune_unreachable
from . import defs
from .flows import (COPY_VMCB12_TO_CACHE, ENTER_SVM_GUEST_MODE, NESTED_SVM_VMRUN, NESTED_SVM_VMEXIT,
                    PREPARE_CONTROL, UPSTREAM, UPSTREAM_ON, UPSTREAM_SEQUENCES)
from .steps import NESTED_C, SVM_C, queue_exception, step

# --- the few steps old kernels or proposals had that upstream does not --------


@step("svm.old.vmcb12_exit_invalid", "nested_svm_vmrun", NESTED_C, "P3",
      reads=(), writes=("vmcb12.control.exit_code", "vmcb12.control.exit_info_1",
                        "vmcb12.control.exit_info_2"),
      reason="before f85a6ce06e4a and 69b721a86d0d: VMEXIT_INVALID written into vmcb12, and "
             "nothing else: GIF and EVENTINJ are left as they were",
      manual="AMD APM vol. 2, 15.6 #VMEXIT")
def old_vmcb12_exit_invalid(ctx):
    """Write SVM_EXIT_ERR into vmcb12 and return (no GIF change, EVENTINJ kept)."""
    ctx.set("vmcb12.control.exit_code", defs.SVM_EXIT_ERR)
    ctx.set("vmcb12.control.exit_info_1", 0)
    ctx.set("vmcb12.control.exit_info_2", 0)
    return None


@step("svm.old.update_vmcb12", "nested_svm_vmexit", NESTED_C, "P2",
      reads=("nested.vmcb12_gpa", "guest_memory", "l2.vmcb12_unmapped_at_exit"),
      writes=("vcpu.arch.exception",),
      reason="v6.6 and older: if vmcb12 cannot be mapped, inject #GP and return from "
             "nested_svm_vmexit() before leave_guest_mode(), still on vmcb02")
def old_update_vmcb12(ctx):
    """Map vmcb12; on failure inject #GP and return early."""
    gpa = ctx.get("nested.vmcb12_gpa")
    if ctx.get("l2.vmcb12_unmapped_at_exit") or not ctx.is_backed(gpa):
        queue_exception(ctx, "#GP(0)")
        ctx.note("vmcb12 cannot be mapped: #GP injected, the #VMEXIT is abandoned in guest mode")
        return "abort"
    return None


@step("svm.map.inject_gp", "nested_svm_vmrun", NESTED_C, "P2",
      reads=(), writes=("vcpu.arch.exception",),
      reason="01ddcdc55e09 (stable trees): any vmcb12 mapping failure is a #GP, RIP at VMRUN")
def map_inject_gp(ctx):
    """kvm_inject_gp(): an unmappable vmcb12 is a #GP."""
    queue_exception(ctx, "#GP(0)")
    return None


@step("svm.v6.error_vmexit_warn", "nested_svm_vmrun_error_vmexit", NESTED_C, "P3",
      reads=("svm.current_vmcb",), writes=(),
      reason="v6 16/31: the unified failure path WARNs if vmcb02 is already current")
def v6_error_vmexit_warn(ctx):
    """WARN_ON_ONCE(svm->vmcb == vmcb02)."""
    if ctx.get("svm.current_vmcb") == "vmcb02":
        ctx.note("WARN: the unified failure path found vmcb02 current")
    return None


@step("svm.v6.clear_run_pending", "nested_svm_vmrun", NESTED_C, "P3",
      reads=(), writes=("vcpu.arch.nested_run_pending", "svm.nmi_l1_to_l2", "svm.soft_int_injected"),
      reason="v6 16/31 keeps these three lines before calling nested_svm_vmrun_error_vmexit(): "
             "the failed run is not pending, and no L1->L2 event is in flight")
def v6_clear_run_pending(ctx):
    """nested_run_pending = 0; nmi_l1_to_l2 = soft_int_injected = false."""
    ctx.set("vcpu.arch.nested_run_pending", 0)
    ctx.set("svm.nmi_l1_to_l2", False)
    ctx.set("svm.soft_int_injected", False)
    return None


@step("svm.v6.clear_nested_cr3", "__nested_svm_vmexit", NESTED_C, "P9",
      reads=(), writes=("nested.ctl.nested_cr3",),
      reason="v5/v6 15/31 moved only the nCR3 reset into the minimal #VMEXIT; the TSC offset "
             "was never changed on this path, so nothing restores it")
def v6_clear_nested_cr3(ctx):
    """svm->nested.ctl.nested_cr3 = 0."""
    ctx.set("nested.ctl.nested_cr3", 0)
    return None


# --- the variants ---------------------------------------------------------------

def variant(name, description, source, exposes, sequences=None, on=None):
    seqs = dict(UPSTREAM_SEQUENCES)
    seqs.update(sequences or {})
    table = dict(UPSTREAM_ON)
    table.update(on or {})
    return Flow(name, "svm", prune_unreachable(seqs, table), table, description, source, exposes)


PRE_GIF_FIX = variant(
    "pre-gif-fix",
    "the early VMEXIT_INVALID path before f85a6ce06e4a: vmcb12's exit fields are written and "
    "the function returns; GIF stays as L1 left it and EVENTINJ is not cleared",
    "kvm-x86 c2842c96 (nested_svm_vmrun early return); fix f85a6ce06e4a", "asid_zero",
    {"early_vmexit_invalid": ("svm.old.vmcb12_exit_invalid", "svm.vmrun.skip_instruction",
                              "svm.vmrun.insn_retired")})

V66_ORDER = variant(
    "v6.6-order",
    "v6.6-era nested_vmcb02_prepare_control(): the TLB flush and enter_guest_mode() at its end, "
    "after nested_svm_init_mmu_context(), so guest_mmu's role lacks the guest-mode bit",
    "v6.6-era nested.c (before 46d6c6f3ef0e)", "default",
    {"nested_vmcb02_prepare_control": (
        "svm.enter.prepare_control.bitmaps", "svm.enter.init_mmu_context", "svm.enter.prepare_control.tsc",
        "svm.enter.prepare_control.int_ctl", "svm.enter.tlb_flush", "svm.enter.enter_guest_mode",
        "svm.enter.recalc_intercepts")})

OLD_VMEXIT_ABORT = variant(
    "old-vmexit-abort",
    "nested_svm_vmexit() of v6.6 and older: an unmappable vmcb12 injects #GP and returns before "
    "leave_guest_mode(); the vCPU stays in L2 on vmcb02",
    "v6.6-era nested_svm_vmexit(); fixed by 1b30e7551767", "vmcb12_unmapped_at_exit",
    {"nested_svm_vmexit": ("svm.old.update_vmcb12",) + NESTED_SVM_VMEXIT},
    {"svm.old.update_vmcb12:abort": "end:l2_runs"})

MAP_GP = variant(
    "map-gp",
    "01ddcdc55e09 (stable trees): a legal but unmappable vmcb12 GPA is a #GP in L1",
    "commit 01ddcdc55e09", "rax_unbacked",
    {"kvm_handle_memory_failure": ("svm.map.inject_gp",)},
    {"kvm_handle_memory_failure:done": "end:l1_gp"})

MAP_SKIP = variant(
    "map-skip",
    "v5.10 to v6.6: a vmcb12 mapping failure other than -EINVAL skips VMRUN silently",
    "v6.6-era nested_svm_vmrun()", "rax_unbacked",
    {"kvm_handle_memory_failure": ("svm.vmrun.skip_instruction",)},
    {"kvm_handle_memory_failure:done": "end:vmrun_skipped"})

_V6_COPY = tuple(s for s in COPY_VMCB12_TO_CACHE if "check" not in s)
_V6_PREPARE_CONTROL = tuple(s for s in PREPARE_CONTROL
                            if s not in ("svm.enter.enter_guest_mode", "svm.enter.init_mmu_context"))
# nested_svm_vmrun()'s own clean-up, then nested_svm_vmrun_error_vmexit(), which writes only
# exit_code and exit_info_1/2 into vmcb12 (clearing EVENTINJ is the next patch of the series),
# then __nested_svm_vmexit() as v5/v6 15/31 defines it.
_V6_FAIL = ("svm.v6.clear_run_pending", "svm.v6.error_vmexit_warn", "svm.exit.leave_guest_mode",
            "svm.old.vmcb12_exit_invalid", "svm.exit.clear_vmcb12_gpa", "svm.v6.clear_nested_cr3",
            "svm.exit.clear_gif", "svm.exit.uninit_mmu_context", "call:nested_svm_load_cr3(L1)",
            "svm.exit.single_step_db", "svm.vmrun.insn_retired")
V6_UNIFIED = variant(
    "v6-unified",
    "v6 16/31 as posted with 11-15: enter_guest_mode(), the checks, the nested MMU, "
    "nested_svm_load_cr3() and the MSR bitmap merge all run before the switch to vmcb02 and "
    "before prepare_control/prepare_save; every failure takes one minimal #VMEXIT",
    "[PATCH v6 16/31] KVM: nSVM: Unify handling of VMRUN failures with proper cleanup, 24 Feb 2026",
    "pae_shadow",
    {"nested_svm_copy_vmcb12_to_cache": _V6_COPY,
     "enter_svm_guest_mode": ("svm.enter.set_vmcb12_gpa", "svm.enter.enter_guest_mode",
                              "svm.vmrun.check_save", "svm.vmrun.check_controls",
                              "svm.enter.init_mmu_context", "call:nested_svm_load_cr3",
                              "svm.vmrun.merge_msrpm", "svm.enter.copy_common_state",
                              "svm.enter.switch_vmcb02", "call:nested_vmcb02_prepare_control",
                              "call:nested_vmcb02_prepare_save", "svm.enter.set_gif"),
     "nested_vmcb02_prepare_control": _V6_PREPARE_CONTROL,
     "main": tuple(s for s in NESTED_SVM_VMRUN if s != "svm.vmrun.merge_msrpm"),
     "unified_vmexit": _V6_FAIL},
    {"svm.vmrun.check_save:invalid": "unwind:unified_vmexit",
     "svm.vmrun.check_controls:invalid": "unwind:unified_vmexit",
     "svm.enter.load_cr3.check_legal:illegal_cr3": "unwind:unified_vmexit",
     "svm.enter.load_cr3.pdptrs:bad_pdpte": "unwind:unified_vmexit",
     "svm.vmrun.merge_msrpm:fail": "unwind:unified_vmexit",
     "unified_vmexit:done": "end:vmexit_invalid/unified"})

SEAN_V2 = variant(
    "sean-v2-proposal",
    "Sean's v2 review suggestion: run the checks in enter_svm_guest_mode() right after "
    "svm_switch_vmcb(vmcb02), before prepare_control; a failure must switch back to vmcb01",
    "review of v2 10/13, Dec 2025 (lore aThIQzni6fC1qdgj)", "asid_zero",
    {"nested_svm_copy_vmcb12_to_cache": _V6_COPY,
     "enter_svm_guest_mode": ENTER_SVM_GUEST_MODE[:3] + ("svm.vmrun.check_save", "svm.vmrun.check_controls")
     + ENTER_SVM_GUEST_MODE[3:],
     "switch_back_vmexit": ("svm.exit.switch_vmcb01", "svm.vmrun.vmcb12_exit_invalid",
                            "svm.vmrun.early_clear_gif", "svm.vmrun.insn_retired")},
    {"svm.vmrun.check_save:invalid": "unwind:switch_back_vmexit",
     "svm.vmrun.check_controls:invalid": "unwind:switch_back_vmexit",
     "switch_back_vmexit:done": "end:vmexit_invalid/early"})

SMM_NOCHECK = variant(
    "smm-nocheck",
    "svm_leave_smm() before be5fa8737d42: RSM re-enters L2 from the vmcb12 in memory without "
    "checking it again",
    "svm.c at 0149b4985558 (no nested_svm_check_cached_vmcb12() in svm_leave_smm)",
    "smi_in_l2_asid_zero",
    {"svm_leave_smm": tuple(s for s in UPSTREAM_SEQUENCES["svm_leave_smm"] if not s.startswith("svm.smm.check"))})

SMM_CHECK = Flow("smm-check", "svm", UPSTREAM.sequences, UPSTREAM.on,
                 "svm_leave_smm() since be5fa8737d42 (as upstream): the re-read vmcb12 is checked "
                 "before RSM re-enters L2; an invalid one fails RSM",
                 "commit be5fa8737d42; kvm-x86/linux 1a27afa0", "smi_in_l2_asid_zero")

VARIANTS = {f.name: f for f in (PRE_GIF_FIX, V66_ORDER, OLD_VMEXIT_ABORT, V6_UNIFIED, SEAN_V2,
                                SMM_NOCHECK, SMM_CHECK, MAP_GP, MAP_SKIP)}
