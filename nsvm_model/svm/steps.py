"""The nSVM steps: one kernel action each, named after its kernel function.

Read top to bottom, the definitions follow nested_svm_vmrun() and
nested_svm_vmexit() in arch/x86/kvm/svm/nested.c at the pinned commit.
The order they run in is not decided here but in flows.py (data); a step
only says what it does, what it reads and writes, and which outcome label
it returns (for example "gp" when it injected #GP).

``svm->vmcb`` in a declaration is the current VMCB (vmcb01 or vmcb02);
the kernel's setters write through that pointer, and so do these steps.
"""

from __future__ import annotations

from .. import kvm_mmu, x86
from ..engine.step import Step
from ..transitions import (GUEST_MODE_FILE, check_triple_fault, set_guest_mode, set_run_pending,
                           switch_current)
from . import defs
from .checks import CONTROL_CHECKS, SAVE_CHECKS, CheckEnv, first_failure
from .scenarios import DTABLES, SEGMENTS

NESTED_C = "arch/x86/kvm/svm/nested.c"
SVM_C = "arch/x86/kvm/svm/svm.c"
SVM_H = "arch/x86/kvm/svm/svm.h"
APM_VMRUN = "AMD APM vol. 2, 15.5 VMRUN Instruction"
APM_CHECKS = "AMD APM vol. 2, 15.5.1 Basic Operation (consistency checks)"
APM_VMEXIT = "AMD APM vol. 2, 15.6 #VMEXIT"
APM_GIF = "AMD APM vol. 2, 15.17 Global Interrupt Flag, STGI and CLGI"
APM_NPT = "AMD APM vol. 2, 15.25 Nested Paging"
APM_MSRPM = "AMD APM vol. 2, 15.11 MSR Intercepts"
APM_TSC = "AMD APM vol. 2, 15.30.1 TSC Offset"

STEPS: dict = {}

SAVE_REGS = ("efer", "cr0", "cr2", "cr3", "cr4", "dr6", "dr7", "rflags", "rip", "rsp", "rax", "g_pat")
SEG_PARTS = ("selector", "attrib", "limit", "base")
CONTROL_CACHED = ("intercepts", "asid", "tlb_ctl", "int_ctl", "int_vector", "int_state",
                  "misc_ctl", "misc_ctl2", "nested_cr3", "msrpm_base_pa", "iopm_base_pa",
                  "tsc_offset", "event_inj", "event_inj_err", "next_rip", "exit_code",
                  "exit_info_1", "exit_info_2", "exit_int_info", "exit_int_info_err",
                  "pause_filter_count", "pause_filter_thresh", "clean")


def save_area_paths(prefix: str) -> tuple:
    segs = tuple(f"{prefix}.{s}.{p}" for s in SEGMENTS for p in SEG_PARTS)
    dts = tuple(f"{prefix}.{d}.{p}" for d in DTABLES for p in ("limit", "base"))
    return segs + dts + (f"{prefix}.cpl",) + tuple(f"{prefix}.{r}" for r in SAVE_REGS)


def step(id, function, file, phase, reads, writes, reason, manual="", title=""):
    def register(action):
        STEPS[id] = Step(id, function, file, phase, tuple(reads), tuple(writes), reason,
                         action, manual, title or action.__doc__.strip().splitlines()[0])
        return action
    return register


# --- small kernel helpers, used by several steps ---------------------------

GIF_READS = ("cpu.vgif", "vcpu.guest_mode", "cpu.features", "nested.ctl.int_ctl")
GIF_WRITES = ("vmcb01.control.int_ctl", "vmcb02.control.int_ctl", "svm.guest_gif")


def get_vgif_vmcb(ctx):
    """get_vgif_vmcb(): where GIF lives right now (None: the software flag)."""
    if not ctx.get("cpu.vgif"):
        return None
    nested_vgif = ("VGIF" in ctx.get("cpu.features")
                   and ctx.get("nested.ctl.int_ctl") & defs.V_GIF_ENABLE_MASK)
    if ctx.get("vcpu.guest_mode") and not nested_vgif:
        return "vmcb02"
    return "vmcb01"


def svm_set_gif(ctx, value: bool) -> None:
    """svm_set_gif() -> enable_gif()/disable_gif()."""
    vmcb = get_vgif_vmcb(ctx)
    if vmcb is None:
        ctx.set("svm.guest_gif", value)
        ctx.note(f"GIF={int(value)} stored in svm->guest_gif (vgif off)")
        return
    path = f"{vmcb}.control.int_ctl"
    if value:
        ctx.update_bits(path, set_mask=defs.V_GIF_MASK)
    else:
        ctx.update_bits(path, clear_mask=defs.V_GIF_MASK)
    ctx.note(f"GIF={int(value)} stored in {vmcb}'s V_GIF (get_vgif_vmcb)")


def queue_exception(ctx, name: str) -> None:
    ctx.set("vcpu.arch.exception", name)


def nested_npt_enabled(ctx) -> bool:
    return bool(ctx.get("nested.ctl.misc_ctl") & defs.SVM_MISC_ENABLE_NP)


def l1_features(ctx) -> frozenset:
    """L1's CPUID: NPT is only offered when the host itself uses NPT."""
    feats = frozenset(ctx.get("cpu.features"))
    return feats if ctx.get("cpu.npt") else feats - {"NPT"}


# --- vmrun_interception() and nested_svm_vmrun(): instruction-level checks ---

@step("svm.vmrun.check_permissions", "nested_svm_check_permissions", NESTED_C, "P1",
      reads=("vcpu.arch.efer", "vcpu.arch.cr0", "svm->vmcb.save.cpl"),
      writes=("vcpu.arch.exception",),
      reason="VMRUN is only legal with EFER.SVME and paging on (#UD) and at CPL 0 (#GP)",
      manual=APM_VMRUN)
def check_permissions(ctx):
    """#UD without EFER.SVME or paging, #GP above CPL 0."""
    if not ctx.get("vcpu.arch.efer") & x86.EFER_SVME or not x86.is_paging(ctx.get("vcpu.arch.cr0")):
        queue_exception(ctx, "#UD")
        ctx.note("L1 has EFER.SVME=0 or CR0.PG=0: #UD, RIP stays at VMRUN")
        return "ud"
    if ctx.get("svm->vmcb.save.cpl"):
        queue_exception(ctx, "#GP(0)")
        ctx.note("CPL > 0: #GP, RIP stays at VMRUN")
        return "gp"
    return None


@step("svm.vmrun.check_hsave", "nested_svm_vmrun", NESTED_C, "P1",
      reads=("nested.hsave_msr",), writes=("vcpu.arch.exception",),
      reason="KVM needs MSR_VM_HSAVE_PA set before it will emulate VMRUN",
      manual=APM_VMRUN)
def check_hsave(ctx):
    """#GP when MSR_VM_HSAVE_PA is 0."""
    if not ctx.get("nested.hsave_msr"):
        queue_exception(ctx, "#GP(0)")
        ctx.note("hsave_msr is 0: #GP")
        return "gp"
    return None


@step("svm.vmrun.check_smm", "nested_svm_vmrun", NESTED_C, "P1",
      reads=("vcpu.arch.smm",), writes=("vcpu.arch.exception",),
      reason="VMRUN is refused in SMM", manual=APM_VMRUN)
def check_smm(ctx):
    """#UD when L1 is in SMM (is_smm())."""
    if ctx.get("vcpu.arch.smm"):
        queue_exception(ctx, "#UD")
        ctx.note("is_smm(): #UD")
        return "ud"
    return None


@step("svm.vmrun.check_rax", "nested_svm_vmrun", NESTED_C, "P1",
      reads=("vcpu.arch.rax", "cpu.maxphyaddr"), writes=("vcpu.arch.exception", "svm.local.vmcb12_gpa"),
      reason="RAX holds the vmcb12 GPA: it must be page aligned and below MAXPHYADDR, "
             "and the fault must come with RIP still at VMRUN",
      manual=APM_VMRUN)
def check_rax(ctx):
    """#GP unless RAX is a page-aligned legal GPA (page_address_valid)."""
    gpa = ctx.get("vcpu.arch.rax")
    ctx.set("svm.local.vmcb12_gpa", gpa)           # vmcb12_gpa = kvm_rax_read(vcpu)
    if not x86.page_address_valid(gpa, ctx.get("cpu.maxphyaddr")):
        queue_exception(ctx, "#GP(0)")
        ctx.note(f"RAX={gpa:#x} is not a page-aligned legal GPA: #GP")
        return "gp"
    return None


# --- nested_svm_copy_vmcb12_to_cache() ------------------------------------

@step("svm.vmrun.map_vmcb12", "nested_svm_copy_vmcb12_to_cache", NESTED_C, "P2",
      reads=("svm.local.vmcb12_gpa", "guest_memory"), writes=(),
      reason="vmcb12 is read through a mapping of the GPA in RAX, on every VMRUN",
      manual=APM_VMRUN)
def map_vmcb12(ctx):
    """kvm_vcpu_map() of the vmcb12 page; -EFAULT without memory behind it."""
    gpa = ctx.get("svm.local.vmcb12_gpa")
    if not ctx.is_backed(gpa):
        ctx.note(f"no memory behind {gpa:#x}: kvm_vcpu_map() fails, -EFAULT")
        return "efault"
    ctx.note(f"vmcb12 mapped at GPA {gpa:#x}")
    return None


@step("svm.vmrun.memory_failure", "kvm_handle_memory_failure", "arch/x86/kvm/x86.c", "P2",
      reads=(), writes=("kvm_run.exit_reason",),
      reason="a legal GPA with no memory is userspace's problem: KVM exits with an "
             "emulation error, RIP not advanced")
def memory_failure(ctx):
    """Exit to userspace with KVM_EXIT_INTERNAL_ERROR (emulation)."""
    ctx.set("kvm_run.exit_reason", "KVM_EXIT_INTERNAL_ERROR")
    return None


@step("svm.vmrun.copy_control_to_cache", "__nested_copy_vmcb_control_to_cache", NESTED_C, "P2",
      reads=tuple(f"vmcb12.control.{f}" for f in CONTROL_CACHED) + ("cpu.features", "cpu.npt"),
      writes=tuple(f"nested.ctl.{f}" for f in CONTROL_CACHED),
      reason="a snapshot taken once, sanitized: everything later reads the cache, so L1 "
             "cannot change vmcb12 between check and use (TOCTOU)",
      manual=APM_VMRUN)
def copy_control_to_cache(ctx):
    """Copy vmcb12's control area into nested.ctl, sanitizing as it goes."""
    feats = l1_features(ctx)
    for f in CONTROL_CACHED:
        ctx.set(f"nested.ctl.{f}", ctx.get(f"vmcb12.control.{f}"))
    intercepts = set(ctx.get("vmcb12.control.intercepts"))
    for feature, intercept in defs.SANITIZED_INTERCEPTS:
        if feature not in feats and intercept in intercepts:
            intercepts.discard(intercept)
            ctx.note(f"intercept {intercept} dropped: L1's CPUID lacks {feature}")
    ctx.set("nested.ctl.intercepts", frozenset(intercepts))
    misc = ctx.get("vmcb12.control.misc_ctl")
    if "NPT" not in feats and misc & defs.SVM_MISC_ENABLE_NP:
        misc &= ~defs.SVM_MISC_ENABLE_NP
        ctx.note("SVM_MISC_ENABLE_NP cleared: L1's CPUID has no NPT")
    if "GMET" not in feats:
        misc &= ~defs.SVM_MISC_ENABLE_GMET
    ctx.set("nested.ctl.misc_ctl", misc)
    ctx.set("nested.ctl.iopm_base_pa", ctx.get("vmcb12.control.iopm_base_pa") & x86.PAGE_MASK)
    ctx.set("nested.ctl.msrpm_base_pa", ctx.get("vmcb12.control.msrpm_base_pa") & x86.PAGE_MASK)
    ctx.set("nested.ctl.tlb_ctl", ctx.get("vmcb12.control.tlb_ctl") & defs.TLB_CONTROL_MASK)
    ctx.set("nested.ctl.int_vector", ctx.get("vmcb12.control.int_vector") & defs.SVM_INT_VECTOR_MASK)
    ctx.set("nested.ctl.int_state", ctx.get("vmcb12.control.int_state") & defs.SVM_INTERRUPT_SHADOW_MASK)
    ctx.set("nested.ctl.event_inj", ctx.get("vmcb12.control.event_inj") & ~defs.SVM_EVTINJ_RESERVED_BITS)
    return None


@step("svm.vmrun.copy_save_to_cache", "__nested_copy_vmcb_save_to_cache", NESTED_C, "P2",
      reads=save_area_paths("vmcb12.save"), writes=save_area_paths("nested.save"),
      reason="every save-area field KVM uses later is cached, checked and consumed from the cache",
      manual=APM_VMRUN)
def copy_save_to_cache(ctx):
    """Copy vmcb12's save area into nested.save."""
    for path in save_area_paths("vmcb12.save"):
        ctx.set("nested.save." + path[len("vmcb12.save."):], ctx.get(path))
    return None


def _check_env(ctx, with_gpat: bool) -> CheckEnv:
    check_gpat = False
    if with_gpat:   # l2_has_separate_pat(): nested NPT and the shared-PAT quirk off
        check_gpat = nested_npt_enabled(ctx) and not ctx.get("cpu.shared_pat_quirk")
    return CheckEnv(ctx.get("cpu.maxphyaddr"), l1_features(ctx), check_gpat)


def _run_checks(ctx, checks, prefix, fields, env):
    values = {f: ctx.get(f"{prefix}.{f}") for f in fields}
    failed = first_failure(checks, values, env)
    if failed:
        ctx.note(f"{failed.id} fails: {failed.text}")
        return "invalid"
    ctx.note(f"{checks[0].id}..{checks[-1].id} pass")
    return None


@step("svm.vmrun.check_save", "nested_vmcb_check_save", NESTED_C, "P5",
      reads=tuple(f"nested.save.{f}" for f in ("efer", "cr0", "cr3", "cr4", "dr6", "dr7",
                                                "cs.attrib", "g_pat"))
      + ("cpu.maxphyaddr", "cpu.features", "cpu.npt", "cpu.shared_pat_quirk", "nested.ctl.misc_ctl"),
      writes=(),
      reason="L2's save area is checked before any of it is loaded: nothing needs undoing "
             "when it is rejected, and dangerous values (EFER.SVME=0) never reach svm_set_efer()",
      manual=APM_CHECKS)
def check_save(ctx):
    """S1-S7 on the cached save area (first failure wins)."""
    return _run_checks(ctx, SAVE_CHECKS, "nested.save",
                       ("efer", "cr0", "cr3", "cr4", "dr6", "dr7", "cs.attrib", "g_pat"),
                       _check_env(ctx, with_gpat=True))


@step("svm.vmrun.check_controls", "nested_vmcb_check_controls", NESTED_C, "P3",
      reads=tuple(f"nested.ctl.{f}" for f in ("intercepts", "asid", "misc_ctl", "nested_cr3",
                                               "msrpm_base_pa", "iopm_base_pa", "int_ctl", "event_inj"))
      + ("cpu.maxphyaddr", "cpu.features", "cpu.npt"),
      writes=(),
      reason="control checks run on the cache before anything is switched, as nVMX does "
             "before VMfail",
      manual=APM_CHECKS)
def check_controls(ctx):
    """C1-C7 on the cached control area (first failure wins)."""
    return _run_checks(ctx, CONTROL_CHECKS, "nested.ctl",
                       ("intercepts", "asid", "misc_ctl", "nested_cr3", "msrpm_base_pa",
                        "iopm_base_pa", "int_ctl", "event_inj"),
                       _check_env(ctx, with_gpat=False))


@step("svm.vmrun.vmcb12_exit_invalid", "nested_svm_copy_vmcb12_to_cache", NESTED_C, "P3",
      reads=(), writes=("vmcb12.control.exit_code", "vmcb12.control.exit_info_1",
                        "vmcb12.control.exit_info_2", "vmcb12.control.event_inj",
                        "vmcb12.control.event_inj_err"),
      reason="the early #VMEXIT: VMEXIT_INVALID goes straight into vmcb12; no L2 state was "
             "loaded, so nothing else needs writing or undoing",
      manual=APM_VMEXIT)
def vmcb12_exit_invalid(ctx):
    """Write SVM_EXIT_ERR into vmcb12 and clear its EVENTINJ."""
    ctx.set("vmcb12.control.exit_code", defs.SVM_EXIT_ERR)
    ctx.set("vmcb12.control.exit_info_1", 0)
    ctx.set("vmcb12.control.exit_info_2", 0)
    ctx.set("vmcb12.control.event_inj", 0)
    ctx.set("vmcb12.control.event_inj_err", 0)
    return None


@step("svm.vmrun.early_clear_gif", "svm_set_gif", SVM_C, "P14",
      reads=GIF_READS, writes=GIF_WRITES,
      reason="GIF is cleared on every #VMEXIT, VMEXIT_INVALID included (commit f85a6ce06e4a)",
      manual=APM_GIF)
def early_clear_gif(ctx):
    """svm_set_gif(false) on the early VMEXIT_INVALID."""
    svm_set_gif(ctx, False)
    return None


@step("svm.vmrun.skip_instruction", "svm_skip_emulated_instruction", SVM_C, "P6",
      reads=("vcpu.rip",), writes=("vcpu.rip",),
      reason="only once VMRUN can no longer fault is RIP moved past it; "
             "a later #VMEXIT resumes L1 there",
      manual=APM_VMRUN)
def skip_instruction(ctx):
    """Advance L1's RIP past the 3-byte VMRUN."""
    ctx.set("vcpu.rip", (ctx.get("vcpu.rip") + defs.VMRUN_INSN_LEN) & x86.MASK64)
    return None


@step("svm.vmrun.insn_retired", "kvm_pmu_instruction_retired", "arch/x86/kvm/pmu.c", "P15",
      reads=(), writes=(),
      reason="VMRUN retires after guest mode was (maybe) entered, so the PMU counts it right")
def insn_retired(ctx):
    """The PMU counts VMRUN as retired; nested_svm_vmrun() returns 1."""
    return None


# --- nested_svm_vmrun(): save L1 and enter ---------------------------------

@step("svm.vmrun.save_l1_state", "nested_svm_vmrun", NESTED_C, "P6",
      reads=("vcpu.arch.efer", "vcpu.arch.cr0", "vcpu.arch.cr4", "vcpu.arch.rflags", "vcpu.rip"),
      writes=("vmcb01.save.efer", "vmcb01.save.cr0", "vmcb01.save.cr4", "vmcb01.save.rflags",
              "vmcb01.save.rip"),
      reason="vmcb01 is idle while L2 runs, so it stores L1's state; prepare_save is about to "
             "overwrite the vCPU's EFER, CR0, CR4, RFLAGS and RIP with L2's",
      manual=APM_VMRUN)
def save_l1_state(ctx):
    """Save L1's EFER, CR0, CR4, RFLAGS and (advanced) RIP into vmcb01.save."""
    for reg in ("efer", "cr0", "cr4", "rflags"):
        ctx.set(f"vmcb01.save.{reg}", ctx.get(f"vcpu.arch.{reg}"))
    ctx.set("vmcb01.save.rip", ctx.get("vcpu.rip"))
    return None


@step("svm.vmrun.save_l1_cr3", "nested_svm_vmrun", NESTED_C, "P6",
      reads=("cpu.npt", "vcpu.arch.cr3"), writes=("vmcb01.save.cr3",),
      reason="with host NPT, vmcb01.save.cr3 already is L1's CR3; without it, vmcb01 holds "
             "the shadow root, so L1's CR3 must be saved",
      manual=APM_VMRUN)
def save_l1_cr3(ctx):
    """Save L1's CR3 into vmcb01 only when host NPT is off."""
    if not ctx.get("cpu.npt"):
        ctx.set("vmcb01.save.cr3", ctx.get("vcpu.arch.cr3"))
    else:
        ctx.note("npt_enabled: vmcb01.save.cr3 already holds L1's CR3")
    return None


step("svm.vmrun.set_run_pending", "nested_svm_vmrun", NESTED_C, "P6",
     reads=(), writes=("vcpu.arch.nested_run_pending",),
     reason="set before prepare_control, which uses it to pick next_rip when L1 lacks NRIPS"
     )(set_run_pending(1))


# --- enter_svm_guest_mode() -------------------------------------------------

@step("svm.enter.set_vmcb12_gpa", "enter_svm_guest_mode", NESTED_C, "P7",
      reads=("svm.local.vmcb12_gpa",), writes=("nested.vmcb12_gpa",),
      reason="prepare_save compares it with last_vmcb12_gpa, and any #VMEXIT maps vmcb12 through it")
def set_vmcb12_gpa(ctx):
    """svm->nested.vmcb12_gpa = the GPA VMRUN was given."""
    ctx.set("nested.vmcb12_gpa", ctx.get("svm.local.vmcb12_gpa"))
    return None


@step("svm.enter.copy_common_state", "nested_svm_copy_common_state", NESTED_C, "P7",
      reads=("vmcb01.save.spec_ctrl",), writes=("vmcb02.save.spec_ctrl",),
      reason="SPEC_CTRL is shared by L1 and L2 and moves with every transition")
def copy_common_state_in(ctx):
    """Copy the shared SPEC_CTRL from vmcb01 to vmcb02."""
    ctx.set("vmcb02.save.spec_ctrl", ctx.get("vmcb01.save.spec_ctrl"))
    return None


def switch_vmcb(target):
    return switch_current("svm.current_vmcb", target, "svm->vmcb")


step("svm.enter.switch_vmcb02", "svm_switch_vmcb", SVM_C, "P7",
     reads=(), writes=("svm.current_vmcb",),
     reason="from here on svm->vmcb is vmcb02: L2's registers must land there, not in vmcb01 "
            "which holds L1's state", manual=APM_VMRUN)(switch_vmcb("vmcb02"))


def transition_tlb_flush(ctx):
    """nested_svm_transition_tlb_flush(): request an MMU sync and a TLB flush."""
    ctx.add_to("vcpu.requests", "KVM_REQ_MMU_SYNC", "KVM_REQ_TLB_FLUSH_CURRENT")
    return None


step("svm.enter.tlb_flush", "nested_svm_transition_tlb_flush", NESTED_C, "P11",
     reads=(), writes=("vcpu.requests",),
     reason="every nested transition flushes the current TLB context and syncs the MMU",
     manual=APM_NPT)(transition_tlb_flush)


step("svm.enter.enter_guest_mode", "enter_guest_mode", GUEST_MODE_FILE, "P8",
     reads=(), writes=("vcpu.guest_mode",),
     reason="must precede the nested MMU init (its role needs the guest-mode bit) and the "
            "intercept merge (which only takes effect in guest mode)")(set_guest_mode(True))


@step("svm.enter.prepare_control.bitmaps", "nested_vmcb02_prepare_control", NESTED_C, "P9",
      reads=("vmcb01.control.misc_ctl", "vmcb01.control.iopm_base_pa", "vmcb01.control.msrpm_base_pa",
             "nested.ctl.misc_ctl"),
      writes=("vmcb02.control.misc_ctl", "vmcb02.control.iopm_base_pa", "vmcb02.control.msrpm_base_pa",
              "vmcb02.control.tlb_ctl"),
      reason="vmcb02 starts from L0's own NP setting and permission maps; the MSR map pointer "
             "is replaced later by the merge", manual=APM_MSRPM)
def prepare_control_bitmaps(ctx):
    """vmcb02 takes vmcb01's NP/GMET bits (GMET from vmcb12 with nested NPT), IOPM and MSRPM."""
    misc = ctx.get("vmcb01.control.misc_ctl") & (defs.SVM_MISC_ENABLE_NP | defs.SVM_MISC_ENABLE_GMET)
    if nested_npt_enabled(ctx):          # with nested NPT, L1 decides GMET for L2
        misc = (misc & ~defs.SVM_MISC_ENABLE_GMET) | (ctx.get("nested.ctl.misc_ctl") & defs.SVM_MISC_ENABLE_GMET)
    ctx.set("vmcb02.control.misc_ctl", misc)
    ctx.set("vmcb02.control.iopm_base_pa", ctx.get("vmcb01.control.iopm_base_pa"))
    ctx.set("vmcb02.control.msrpm_base_pa", ctx.get("vmcb01.control.msrpm_base_pa"))
    ctx.set("vmcb02.control.tlb_ctl", defs.TLB_CONTROL_DO_NOTHING)
    return None


@step("svm.enter.init_mmu_context", "nested_svm_init_mmu_context", NESTED_C, "P11",
      reads=("nested.ctl.misc_ctl", "nested.ctl.nested_cr3", "vmcb01.save.cr4",
             "vmcb01.save.efer", "vcpu.guest_mode", "cpu.npt"),
      writes=("vcpu.arch.mmu", "vcpu.arch.ngpa_walk.cpu_role", "vcpu.arch.guest_mmu.root_role.guest_mode",
              "vcpu.arch.guest_mmu.root.pgd"),
      reason="with nested NPT, guest_mmu shadows L1's NPT; its format comes from L1's CR4/EFER "
             "in vmcb01 and its role must carry the guest-mode bit", manual=APM_NPT)
def init_mmu_context(ctx):
    """If nested NPT: switch to guest_mmu rooted at nCR3 (kvm_init_shadow_npt_mmu)."""
    if not nested_npt_enabled(ctx):
        ctx.note("nested NPT off: " + kvm_mmu.root_mmu_note(ctx.get("cpu.npt"), "L2"))
        return None
    # kvm_init_shadow_npt_mmu() takes only CR4 and EFER from vmcb01; its CR0 is fixed (PG|WP)
    role = x86.paging_mode(x86.X86_CR0_PG | x86.X86_CR0_WP, ctx.get("vmcb01.save.cr4"),
                           ctx.get("vmcb01.save.efer"))
    kvm_mmu.init_shadow_tdp_mmu(ctx, role, ctx.get("nested.ctl.nested_cr3"),
                                ctx.get("vcpu.guest_mode"))
    return None


@step("svm.enter.prepare_control.tsc", "nested_vmcb02_prepare_control", NESTED_C, "P9",
      reads=("vcpu.arch.l1_tsc_offset", "nested.ctl.tsc_offset"),
      writes=("vcpu.arch.tsc_offset", "vmcb02.control.tsc_offset"),
      reason="L2's TSC offset is L1's offset combined with the one vmcb12 asks for",
      manual=APM_TSC)
def prepare_control_tsc(ctx):
    """L2's TSC offset = L1's + vmcb12's (ratio 1.0 in this model)."""
    offset = (ctx.get("vcpu.arch.l1_tsc_offset") + ctx.get("nested.ctl.tsc_offset")) & x86.MASK64
    ctx.set("vcpu.arch.tsc_offset", offset)
    ctx.set("vmcb02.control.tsc_offset", offset)
    return None


@step("svm.enter.prepare_control.int_ctl", "nested_vmcb02_prepare_control", NESTED_C, "P9",
      reads=("nested.ctl.int_ctl", "vmcb01.control.int_ctl", "cpu.features", "nested.ctl.int_vector",
             "nested.ctl.int_state", "nested.ctl.event_inj", "nested.ctl.event_inj_err",
             "nested.ctl.next_rip", "vcpu.arch.nested_run_pending"),
      writes=("vmcb02.control.int_ctl", "vmcb02.control.int_vector", "vmcb02.control.int_state",
              "vmcb02.control.event_inj", "vmcb02.control.event_inj_err", "vmcb02.control.next_rip",
              "svm.nmi_l1_to_l2", "svm.soft_int_injected"),
      reason="vmcb02's int_ctl merges L1's wishes with L0's; unless L1 uses nested vGIF the "
             "V_GIF bits come from vmcb01, so GIF must be set after this, not before",
      manual=APM_GIF)
def prepare_control_int_ctl(ctx):
    """Merge int_ctl (V_GIF from vmcb01 unless nested vGIF), copy EVENTINJ and next_rip."""
    vmcb12_bits = defs.V_TPR_MASK | defs.V_IRQ_INJECTION_BITS_MASK
    vmcb01_bits = defs.V_INTR_MASKING_MASK
    l12 = ctx.get("nested.ctl.int_ctl")
    if "VGIF" in ctx.get("cpu.features") and l12 & defs.V_GIF_ENABLE_MASK:
        vmcb12_bits |= defs.V_GIF_MASK | defs.V_GIF_ENABLE_MASK
        ctx.note("L1 uses nested vGIF: V_GIF comes from vmcb12")
    else:
        vmcb01_bits |= defs.V_GIF_MASK | defs.V_GIF_ENABLE_MASK
        ctx.note("V_GIF comes from vmcb01 (L1's GIF, for now)")
    ctx.set("vmcb02.control.int_ctl", (l12 & vmcb12_bits) | (ctx.get("vmcb01.control.int_ctl") & vmcb01_bits))
    for f in ("int_vector", "int_state", "event_inj", "event_inj_err"):
        ctx.set(f"vmcb02.control.{f}", ctx.get(f"nested.ctl.{f}"))
    if "NRIPS" in ctx.get("cpu.features") or not ctx.get("vcpu.arch.nested_run_pending"):
        ctx.set("vmcb02.control.next_rip", ctx.get("nested.ctl.next_rip"))
    ev = ctx.get("nested.ctl.event_inj")
    valid = bool(ev & defs.SVM_EVTINJ_VALID)
    kind = ev & defs.SVM_EVTINJ_TYPE_MASK
    ctx.set("svm.nmi_l1_to_l2", valid and kind == defs.SVM_EVTINJ_TYPE_NMI)
    soft = valid and (kind == defs.SVM_EVTINJ_TYPE_SOFT or (kind == defs.SVM_EVTINJ_TYPE_EXEPT and
                      ev & defs.SVM_EVTINJ_VEC_MASK in (x86.BP_VECTOR, x86.OF_VECTOR)))
    ctx.set("svm.soft_int_injected", soft)
    return None


@step("svm.enter.recalc_intercepts", "nested_vmcb02_recalc_intercepts", NESTED_C, "P9",
      reads=("svm.current_vmcb", "vmcb01.control.intercepts", "nested.ctl.intercepts",
             "nested.ctl.int_ctl", "vmcb01.save.rflags", "nested.ctl.misc_ctl", "cpu.features",
             "nested.ctl.misc_ctl2"),
      writes=("vmcb02.control.intercepts",),
      reason="vmcb02 intercepts what L0 or L1 wants; it WARNs and does nothing unless vmcb02 "
             "is current, and reads L1's saved RFLAGS.IF from vmcb01", manual=APM_VMRUN)
def recalc_intercepts(ctx):
    """vmcb02 intercepts = vmcb01's | vmcb12's, with KVM's adjustments."""
    if ctx.get("svm.current_vmcb") != "vmcb02":
        ctx.note("WARN_ON_ONCE(svm->vmcb != vmcb02): intercepts not merged")
        return "warn"
    merged = set(ctx.get("vmcb01.control.intercepts"))
    if ctx.get("nested.ctl.int_ctl") & defs.V_INTR_MASKING_MASK:
        merged.discard("CR8_WRITE")
        if not ctx.get("vmcb01.save.rflags") & x86.X86_EFLAGS_IF:
            merged.discard("VINTR")
    l1 = ctx.get("nested.ctl.intercepts")
    merged |= set(l1)
    if "PAUSE" not in l1:
        merged.discard("PAUSE")
    needs_vls = ("V_VMSAVE_VMLOAD" not in ctx.get("cpu.features") or not nested_npt_enabled(ctx)
                 or not ctx.get("nested.ctl.misc_ctl2") & 1 << 1)
    if needs_vls:
        merged |= {"VMLOAD", "VMSAVE"}
    ctx.set("vmcb02.control.intercepts", frozenset(merged))
    return None


# --- nested_vmcb02_prepare_save() ------------------------------------------

@step("svm.enter.prepare_save.segments", "nested_vmcb02_prepare_save", NESTED_C, "P10",
      reads=("nested.vmcb12_gpa", "nested.last_vmcb12_gpa")
      + tuple(f"nested.save.{s}.{p}" for s in SEGMENTS for p in SEG_PARTS)
      + tuple(f"nested.save.{d}.{p}" for d in DTABLES for p in ("limit", "base"))
      + ("nested.save.cpl", "nested.save.g_pat", "nested.ctl.misc_ctl", "cpu.shared_pat_quirk",
         "cpu.npt"),
      writes=("nested.last_vmcb12_gpa", "nested.force_msr_bitmap_recalc", "vmcb02.save.cpl",
              "vmcb02.save.g_pat")
      + tuple(f"vmcb02.save.{s}.{p}" for s in SEGMENTS for p in SEG_PARTS)
      + tuple(f"vmcb02.save.{d}.{p}" for d in DTABLES for p in ("limit", "base")),
      reason="a new vmcb12 GPA means a full copy and a forced MSR-bitmap recalc; "
             "segments and descriptor tables go straight into vmcb02", manual=APM_VMRUN)
def prepare_save_segments(ctx):
    """Detect a new vmcb12; copy segments, GDTR/IDTR, CPL and g_pat into vmcb02."""
    if ctx.get("nested.vmcb12_gpa") != ctx.get("nested.last_vmcb12_gpa"):
        ctx.set("nested.last_vmcb12_gpa", ctx.get("nested.vmcb12_gpa"))
        ctx.set("nested.force_msr_bitmap_recalc", True)
        ctx.note("new vmcb12: copy everything and force an MSR bitmap recalc")
    for s in SEGMENTS:
        for p in SEG_PARTS:
            ctx.set(f"vmcb02.save.{s}.{p}", ctx.get(f"nested.save.{s}.{p}"))
    for d in DTABLES:
        for p in ("limit", "base"):
            ctx.set(f"vmcb02.save.{d}.{p}", ctx.get(f"nested.save.{d}.{p}"))
    ctx.set("vmcb02.save.cpl", ctx.get("nested.save.cpl"))
    if nested_npt_enabled(ctx) and not ctx.get("cpu.shared_pat_quirk"):
        ctx.set("vmcb02.save.g_pat", ctx.get("nested.save.g_pat"))
    return None


REG_SETTER_WRITES = ("vcpu.arch.rflags", "vcpu.arch.efer", "vcpu.arch.cr0", "vcpu.arch.cr4",
                     "svm->vmcb.save.rflags", "svm->vmcb.save.efer", "svm->vmcb.save.cr0",
                     "svm->vmcb.save.cr4")


def set_control_registers(ctx, rflags, efer, cr0, cr4):
    """kvm_set_rflags, svm_set_efer, svm_set_cr0, svm_set_cr4: vCPU and current VMCB."""
    for reg, value in (("rflags", rflags), ("efer", efer), ("cr0", cr0), ("cr4", cr4)):
        ctx.set(f"vcpu.arch.{reg}", value)
        ctx.set(f"svm->vmcb.save.{reg}", value)
    ctx.note(f"setters wrote {ctx.resolve('svm->vmcb.save')}: EFER={efer:#x} CR0={cr0:#x} CR4={cr4:#x}")


@step("svm.enter.prepare_save.regs", "nested_vmcb02_prepare_save", NESTED_C, "P10",
      reads=("nested.save.rflags", "nested.save.efer", "nested.save.cr0", "nested.save.cr4",
             "svm.current_vmcb"),
      writes=REG_SETTER_WRITES,
      reason="L2's RFLAGS, EFER, CR0 and CR4 must be in place before nested_svm_load_cr3(), "
             "which decides PDPTRs and the MMU role from them", manual=APM_VMRUN)
def prepare_save_regs(ctx):
    """L2's RFLAGS, EFER, CR0, CR4 through the setters (they write svm->vmcb)."""
    set_control_registers(ctx, ctx.get("nested.save.rflags") | x86.X86_EFLAGS_FIXED,
                          ctx.get("nested.save.efer"), ctx.get("nested.save.cr0"),
                          ctx.get("nested.save.cr4"))
    return None


@step("svm.enter.prepare_save.gprs", "nested_vmcb02_prepare_save", NESTED_C, "P10",
      reads=("nested.save.cr2", "nested.save.rax", "nested.save.rsp", "nested.save.rip",
             "nested.save.dr7", "nested.save.dr6"),
      writes=("vcpu.arch.cr2", "vcpu.arch.rax", "vcpu.arch.rsp", "vcpu.rip", "vmcb02.save.rax",
              "vmcb02.save.rsp", "vmcb02.save.rip", "vmcb02.save.dr7", "vcpu.arch.dr6"),
      reason="L2's CR2, RAX, RSP, RIP and debug registers, in the vCPU and in vmcb02",
      manual=APM_VMRUN)
def prepare_save_gprs(ctx):
    """L2's CR2, RAX, RSP, RIP (vCPU and vmcb02), DR7 and DR6."""
    ctx.set("vcpu.arch.cr2", ctx.get("nested.save.cr2"))
    for reg in ("rax", "rsp"):
        ctx.set(f"vcpu.arch.{reg}", ctx.get(f"nested.save.{reg}"))
        ctx.set(f"vmcb02.save.{reg}", ctx.get(f"nested.save.{reg}"))
    ctx.set("vcpu.rip", ctx.get("nested.save.rip"))
    ctx.set("vmcb02.save.rip", ctx.get("nested.save.rip"))
    ctx.set("vmcb02.save.dr7", ctx.get("nested.save.dr7") | x86.DR7_FIXED_1)
    ctx.set("vcpu.arch.dr6", ctx.get("nested.save.dr6") | x86.DR6_ACTIVE_LOW)
    return None


# --- nested_svm_load_cr3(), for entry (L2's CR3) and exit (L1's CR3) -------

def _npt_on_entry(ctx):
    return nested_npt_enabled(ctx)


def _load_cr3(prefix, cr3_path, on_entry, from_vmrun=True):
    """The actions of nested_svm_load_cr3(); entry and exit differ in arguments only.

    On entry the CR3 is L2's (nested.save.cr3), nested NPT decides, and the
    PDPTRs are reloaded when the entry is a VMRUN (from_vmrun), not on RSM.
    On exit it is L1's (vmcb01.save.cr3), never nested NPT, and always with PDPTRs.
    """
    return kvm_mmu.load_cr3_steps(
        step, prefix, "nested_svm_load_cr3", NESTED_C, cr3_path,
        nested_tdp=_npt_on_entry if on_entry else None,
        tdp_reads=("nested.ctl.misc_ctl",) if on_entry else (),
        features=l1_features, feature_reads=("cpu.features", "cpu.npt"),
        who="L2" if on_entry else "L1", host_tdp="cpu.npt", manual=APM_NPT, reload_pdptrs=from_vmrun)


ENTRY_LOAD_CR3 = _load_cr3("svm.enter", "nested.save.cr3", on_entry=True)
RSM_LOAD_CR3 = _load_cr3("svm.rsm", "nested.save.cr3", on_entry=True, from_vmrun=False)


@step("svm.rsm.request_nested_state_pages", "enter_svm_guest_mode", NESTED_C, "P13",
      reads=(), writes=("vcpu.requests",),
      reason="an entry that is not a VMRUN defers the PDPTRs and the MSR-bitmap merge to "
             "svm_get_nested_state_pages(), run before L2 next runs")
def rsm_request_nested_state_pages(ctx):
    """kvm_make_request(KVM_REQ_GET_NESTED_STATE_PAGES)."""
    ctx.add_to("vcpu.requests", "KVM_REQ_GET_NESTED_STATE_PAGES")
    return None


@step("svm.enter.set_gif", "svm_set_gif", SVM_C, "P14",
      reads=GIF_READS, writes=GIF_WRITES,
      reason="GIF=1 goes where get_vgif_vmcb() says: in guest mode that is vmcb02's V_GIF, "
             "which prepare_control just overwrote", manual=APM_GIF)
def enter_set_gif(ctx):
    """svm_set_gif(true): VMRUN sets GIF."""
    svm_set_gif(ctx, True)
    return None


@step("svm.vmrun.merge_msrpm", "nested_svm_merge_msrpm", NESTED_C, "P13",
      reads=("nested.ctl.intercepts", "nested.ctl.msrpm_base_pa", "guest_memory",
             "nested.force_msr_bitmap_recalc", "svm.current_vmcb"),
      writes=("nested.msrpm", "nested.force_msr_bitmap_recalc", "svm->vmcb.control.msrpm_base_pa"),
      reason="L1's MSR bitmap is read from guest memory and ORed with L0's; the result is "
             "installed in the *current* VMCB, which must be vmcb02", manual=APM_MSRPM)
def merge_msrpm(ctx):
    """OR L1's MSR permission chunks into nested.msrpm and point svm->vmcb at it."""
    if "MSR_PROT" not in ctx.get("nested.ctl.intercepts"):
        ctx.note("L1 does not intercept MSR_PROT: vmcb02 keeps L0's bitmap")
        return None
    base = ctx.get("nested.ctl.msrpm_base_pa")
    merged = []
    for off in defs.msrpm_merge_offsets():
        chunk = ctx.read_guest(base + off * 8)
        if chunk is None:
            ctx.note(f"L1's MSR bitmap at {base + off * 8:#x} has no memory behind it: merge fails")
            return "fail"
        merged.append((off, chunk))   # L0's chunk is all-clear here: L0 passes these MSRs through
    ctx.set("nested.msrpm", tuple(merged))
    ctx.set("nested.force_msr_bitmap_recalc", False)
    ctx.set("svm->vmcb.control.msrpm_base_pa", "__pa(svm->nested.msrpm)")
    ctx.note(f"merged {len(merged)} chunks; {ctx.resolve('svm->vmcb')}.msrpm_base_pa -> nested.msrpm")
    return None


@step("svm.vmrun.late_failure", "nested_svm_vmrun", NESTED_C, "P3",
      reads=(), writes=("vcpu.arch.nested_run_pending", "svm.nmi_l1_to_l2", "svm.soft_int_injected",
                        "svm->vmcb.control.exit_code", "svm->vmcb.control.exit_info_1",
                        "svm->vmcb.control.exit_info_2"),
      reason="a failure after L2 state was loaded must go through the full #VMEXIT; "
             "run_pending is cleared first because nested_svm_vmexit() WARNs otherwise",
      manual=APM_VMEXIT)
def late_failure(ctx):
    """Clear run_pending and L1->L2 event tracking; VMEXIT_INVALID into svm->vmcb."""
    ctx.set("vcpu.arch.nested_run_pending", 0)
    ctx.set("svm.nmi_l1_to_l2", False)
    ctx.set("svm.soft_int_injected", False)
    ctx.set("svm->vmcb.control.exit_code", defs.SVM_EXIT_ERR)
    ctx.set("svm->vmcb.control.exit_info_1", 0)
    ctx.set("svm->vmcb.control.exit_info_2", 0)
    return None


# --- L2 runs, exits, and KVM reflects the exit to L1 ------------------------

@step("svm.l2.vcpu_run", "svm_vcpu_run", SVM_C, "P15",
      reads=("l2.exit", "vcpu.rip", "vmcb02.save.rip", "l2.fault_error_code", "l2.fault_address",
             "vmcb02.control.intercepts", "nested.ctl.misc_ctl"),
      writes=("vcpu.arch.nested_run_pending", "vmcb02.control.exit_code", "vmcb02.control.exit_info_1",
              "vmcb02.control.exit_info_2", "vmcb02.control.next_rip", "vcpu.requests"),
      reason="the CPU runs vmcb02; only after this first run is nested_run_pending cleared",
      manual=APM_VMRUN)
def l2_vcpu_run(ctx):
    """The CPU runs L2 from vmcb02 until L2 executes VMMCALL, faults, or an SMI arrives."""
    ctx.set("vcpu.arch.nested_run_pending", 0)
    ctx.remove_from("vcpu.requests", "KVM_REQ_MMU_SYNC", "KVM_REQ_TLB_FLUSH_CURRENT")
    if ctx.get("l2.exit") == "none":
        ctx.note("L2 is running; set l2.exit='VMMCALL' to follow it back to L1")
        return "running"
    if ctx.get("l2.exit") == "SMI":
        ctx.note("an SMI arrives while L2 runs")
        return "smi"
    if ctx.get("l2.exit") in ("#PF", "#NPF"):
        return cpu_exits_on_fault(ctx, ctx.get("l2.exit"))
    rip = ctx.get("vmcb02.save.rip")
    ctx.set("vmcb02.control.exit_code", defs.SVM_EXIT_VMMCALL)
    ctx.set("vmcb02.control.exit_info_1", 0)
    ctx.set("vmcb02.control.exit_info_2", 0)
    ctx.set("vmcb02.control.next_rip", rip + defs.VMMCALL_INSN_LEN)
    ctx.note(f"L2 executes VMMCALL at {rip:#x}: #VMEXIT to L0 with exit code 0x81")
    return None


def cpu_exits_on_fault(ctx, fault):
    """The #VMEXIT the CPU takes when L2's first access faults, or "running" when it takes none.

    Which access faults, and why, is the scenario's to say (l2.exit, l2.fault_*): the model
    does not walk page tables.  What it follows is whether vmcb02 intercepts the fault.
    """
    if fault == "#PF":
        if "EXCEPTION_PF" not in ctx.get("vmcb02.control.intercepts"):
            ctx.note("#PF in L2, and neither L0 nor L1 intercepts #PF: the CPU delivers it to L2's "
                     "own handler; L2 keeps running")
            return "running"
        code = defs.SVM_EXIT_EXCP_BASE + x86.PF_VECTOR
    elif not nested_npt_enabled(ctx):
        ctx.note("no nested NPT, so no table of L1's can fault: a nested page fault here is L0's own "
                 "(L1's memory not mapped yet), KVM maps the page and L2 goes on")
        return "running"
    else:
        code = defs.SVM_EXIT_NPF
    ctx.set("vmcb02.control.exit_code", code)
    ctx.set("vmcb02.control.exit_info_1", ctx.get("l2.fault_error_code"))
    ctx.set("vmcb02.control.exit_info_2", ctx.get("l2.fault_address"))
    ctx.note(f"{fault} on L2's first access at {ctx.get('l2.fault_address'):#x}: #VMEXIT to L0 "
             f"with exit code {code:#x}")
    return None


# the exception exits the model names, by vector: SVM_EXIT_EXCP_BASE + vector
EXCEPTION_INTERCEPTS = {x86.DB_VECTOR: "EXCEPTION_DB", x86.BP_VECTOR: "EXCEPTION_BP",
                        x86.UD_VECTOR: "EXCEPTION_UD", x86.PF_VECTOR: "EXCEPTION_PF",
                        x86.AC_VECTOR: "EXCEPTION_AC", x86.MC_VECTOR: "EXCEPTION_MC"}


def exception_intercept(code: int):
    """The intercept name of an exception exit code, or None for any other exit."""
    return EXCEPTION_INTERCEPTS.get(code - defs.SVM_EXIT_EXCP_BASE)


@step("svm.l2.exit_handled", "nested_svm_exit_handled", NESTED_C, "P15",
      reads=("vmcb02.control.exit_code", "nested.ctl.intercepts", "vmcb01.control.intercepts"), writes=(),
      reason="an exit L1 intercepts is reflected to L1 as an emulated #VMEXIT; a nested page "
             "fault is L0's first, since only L0's walk of L1's table can tell whose it is",
      manual=APM_VMEXIT)
def exit_handled(ctx):
    """nested_svm_exit_special(), then nested_svm_intercept(): is this exit L1's?"""
    code = ctx.get("vmcb02.control.exit_code")
    if code == defs.SVM_EXIT_NPF:
        ctx.note("nested_svm_exit_special(): every NPF is L0's first (NESTED_EXIT_HOST); "
                 "npf_interception() walks L1's nested page table")
        return "npf"
    name = exception_intercept(code)
    if name:
        if name in ctx.get("vmcb01.control.intercepts"):
            ctx.note(f"nested_svm_exit_special(): vmcb01 intercepts {name}, so L0 takes it "
                     "(shadow paging); the model does not follow KVM's own fault handling")
            return "host"
        ctx.note(f"L0 does not intercept {name}, so vmcb02 did for L1: NESTED_EXIT_DONE, emulate #VMEXIT")
        return None
    if "VMMCALL" in ctx.get("nested.ctl.intercepts"):
        ctx.note("L1 intercepts VMMCALL: NESTED_EXIT_DONE, emulate #VMEXIT")
        return None
    ctx.note("L1 does not intercept VMMCALL: L0 handles the hypercall, L2 keeps running")
    return "host"


@step("svm.l2.inject_npf_exit", "nested_svm_inject_npf_exit", NESTED_C, "P15",
      reads=("vmcb02.control.exit_info_1", "vmcb02.control.exit_info_2", "nested.ctl.nested_cr3"),
      writes=("vmcb02.control.exit_code", "vmcb02.control.exit_info_1", "vmcb02.control.exit_info_2"),
      reason="KVM's walk of L1's nested page table (guest_mmu, ngpa_walk) faulted: L1 gets the "
             "NPF, with exactly one fault-stage bit", manual=APM_NPT)
def inject_npf_exit(ctx):
    """The fault is in L1's table: write the NPF exit L1 will see, then nested_svm_vmexit()."""
    error = ctx.get("vmcb02.control.exit_info_1")
    stage = error & x86.PFERR_GUEST_FAULT_STAGE_MASK
    if stage not in (x86.PFERR_GUEST_FINAL_MASK, x86.PFERR_GUEST_PAGE_MASK):
        ctx.note("WARN_ON_ONCE: the walk set both fault-stage bits or neither; 'final' is chosen")
        stage = x86.PFERR_GUEST_FINAL_MASK
    ctx.set("vmcb02.control.exit_code", defs.SVM_EXIT_NPF)
    ctx.set("vmcb02.control.exit_info_1", stage | (error & ~x86.PFERR_GUEST_FAULT_STAGE_MASK))
    # fault->address: the L2 GPA KVM's walk faulted on, the one the CPU's NPF reported
    ctx.set("vmcb02.control.exit_info_2", ctx.get("vmcb02.control.exit_info_2"))
    ctx.note(f"the walk of L1's table at nCR3 {ctx.get('nested.ctl.nested_cr3'):#x} faults "
             f"{'on a guest page-table access' if stage == x86.PFERR_GUEST_PAGE_MASK else 'on the final GPA'}")
    return None


# --- nested_svm_vmexit() ----------------------------------------------------

UPDATE_VMCB12_WRITES = tuple(
    f"vmcb12.save.{r}" for r in ("efer", "cr0", "cr3", "cr2", "cr4", "rflags", "rip", "rsp", "rax",
                                 "dr7", "dr6", "cpl")) + tuple(
    f"vmcb12.save.{s}.{p}" for s in SEGMENTS for p in SEG_PARTS) + tuple(
    f"vmcb12.save.{d}.{p}" for d in DTABLES for p in ("limit", "base")) + (
    "vmcb12.control.int_state", "vmcb12.control.exit_code", "vmcb12.control.exit_info_1",
    "vmcb12.control.exit_info_2", "vmcb12.control.exit_int_info", "vmcb12.control.next_rip",
    "vmcb12.control.event_inj", "vmcb12.control.event_inj_err", "vmcb12.control.int_ctl",
    "vmcb12.save.g_pat", "vcpu.requests")


@step("svm.exit.update_vmcb12", "nested_svm_vmexit_update_vmcb12", NESTED_C, "P2",
      reads=("nested.vmcb12_gpa", "guest_memory", "l2.vmcb12_unmapped_at_exit", "vcpu.arch.efer",
             "vcpu.arch.cr0", "vcpu.arch.cr3", "vcpu.arch.cr2", "vcpu.arch.cr4", "vcpu.arch.rflags",
             "vcpu.rip", "vcpu.arch.rsp", "vcpu.arch.rax", "vcpu.arch.dr6", "vmcb02.save.dr7",
             "vmcb02.save.cpl", "vmcb02.control.int_state", "vmcb02.control.exit_code",
             "vmcb02.control.exit_info_1", "vmcb02.control.exit_info_2", "vmcb02.control.next_rip",
             "nested.ctl.int_ctl", "cpu.features", "nested.ctl.misc_ctl", "cpu.shared_pat_quirk",
             "vmcb02.save.g_pat", "vcpu.arch.exception")
      + tuple(f"vmcb02.save.{s}.{p}" for s in SEGMENTS for p in SEG_PARTS)
      + tuple(f"vmcb02.save.{d}.{p}" for d in DTABLES for p in ("limit", "base")),
      writes=UPDATE_VMCB12_WRITES,
      reason="vmcb12 gets L2's state and the exit information while the vCPU still holds L2's "
             "registers: before leave_guest_mode(), the switch and the L1 restore",
      manual=APM_VMEXIT)
def update_vmcb12(ctx):
    """Write L2's state, the exit code and info into vmcb12 (triple fault if unmappable)."""
    gpa = ctx.get("nested.vmcb12_gpa")
    if ctx.get("l2.vmcb12_unmapped_at_exit") or not ctx.is_backed(gpa):
        ctx.add_to("vcpu.requests", "KVM_REQ_TRIPLE_FAULT")
        ctx.note(f"vmcb12 at {gpa:#x} cannot be mapped: KVM_REQ_TRIPLE_FAULT, and the exit goes on")
        return None
    for s in SEGMENTS:
        for p in SEG_PARTS:
            ctx.set(f"vmcb12.save.{s}.{p}", ctx.get(f"vmcb02.save.{s}.{p}"))
    for d in DTABLES:
        for p in ("limit", "base"):
            ctx.set(f"vmcb12.save.{d}.{p}", ctx.get(f"vmcb02.save.{d}.{p}"))
    for r in ("efer", "cr0", "cr3", "cr2", "cr4", "rflags", "rsp", "rax", "dr6"):
        ctx.set(f"vmcb12.save.{r}", ctx.get(f"vcpu.arch.{r}"))
    ctx.set("vmcb12.save.rip", ctx.get("vcpu.rip"))
    ctx.set("vmcb12.save.dr7", ctx.get("vmcb02.save.dr7"))
    ctx.set("vmcb12.save.cpl", ctx.get("vmcb02.save.cpl"))
    if nested_npt_enabled(ctx) and not ctx.get("cpu.shared_pat_quirk"):
        ctx.set("vmcb12.save.g_pat", ctx.get("vmcb02.save.g_pat"))
    for f in ("int_state", "exit_code", "exit_info_1", "exit_info_2"):
        ctx.set(f"vmcb12.control.{f}", ctx.get(f"vmcb02.control.{f}"))
    if ctx.get("vmcb02.control.exit_code") != defs.SVM_EXIT_ERR:
        # nested_save_pending_event_to_vmcb12(): nothing is being injected in this model
        ctx.set("vmcb12.control.exit_int_info", 0)
    else:
        ctx.note("VMRUN failure: exit_int_info left as L1 wrote it")
    if "NRIPS" in ctx.get("cpu.features"):
        ctx.set("vmcb12.control.next_rip", ctx.get("vmcb02.control.next_rip"))
    ctx.set("vmcb12.control.event_inj", 0)
    ctx.set("vmcb12.control.event_inj_err", 0)
    ctx.set("vmcb12.control.int_ctl", ctx.get("nested.ctl.int_ctl"))
    return None


step("svm.exit.leave_guest_mode", "leave_guest_mode", GUEST_MODE_FILE, "P8",
     reads=(), writes=("vcpu.guest_mode",),
     reason="out of guest mode before the switch, so GIF and MMU decisions see L1")(set_guest_mode(False))


@step("svm.exit.clear_vmcb12_gpa", "nested_svm_vmexit", NESTED_C, "P7",
      reads=(), writes=("nested.vmcb12_gpa", "vcpu.requests"),
      reason="no vmcb12 is in use once L1 runs; pending nested-state page loads are dropped")
def clear_vmcb12_gpa(ctx):
    """vmcb12_gpa = 0; clear KVM_REQ_GET_NESTED_STATE_PAGES."""
    ctx.set("nested.vmcb12_gpa", 0)
    ctx.remove_from("vcpu.requests", "KVM_REQ_GET_NESTED_STATE_PAGES")
    return None


@step("svm.exit.copy_common_state", "nested_svm_copy_common_state", NESTED_C, "P7",
      reads=("vmcb02.save.spec_ctrl",), writes=("vmcb01.save.spec_ctrl",),
      reason="SPEC_CTRL follows the vCPU back to L1")
def copy_common_state_out(ctx):
    """Copy SPEC_CTRL from vmcb02 back to vmcb01."""
    ctx.set("vmcb01.save.spec_ctrl", ctx.get("vmcb02.save.spec_ctrl"))
    return None


step("svm.exit.switch_vmcb01", "svm_switch_vmcb", SVM_C, "P7",
     reads=(), writes=("svm.current_vmcb",),
     reason="before GIF and L1's registers are restored: they must land in vmcb01",
     manual=APM_VMEXIT)(switch_vmcb("vmcb01"))


@step("svm.exit.clear_gif", "svm_set_gif", SVM_C, "P14",
      reads=GIF_READS, writes=GIF_WRITES + ("vmcb01.control.exit_int_info",),
      reason="every #VMEXIT clears GIF; out of guest mode it lands in vmcb01", manual=APM_GIF)
def exit_clear_gif(ctx):
    """svm_set_gif(false); vmcb01 exit_int_info = 0."""
    svm_set_gif(ctx, False)
    ctx.set("vmcb01.control.exit_int_info", 0)
    return None


@step("svm.exit.restore_tsc", "nested_svm_vmexit", NESTED_C, "P9",
      reads=("vcpu.arch.l1_tsc_offset", "vmcb01.control.tsc_offset"),
      writes=("vcpu.arch.tsc_offset", "vmcb01.control.tsc_offset", "nested.ctl.nested_cr3"),
      reason="L1's TSC offset comes back; nCR3 in the cache is dropped", manual=APM_TSC)
def restore_tsc(ctx):
    """tsc_offset = l1_tsc_offset; nested.ctl.nested_cr3 = 0."""
    ctx.set("vcpu.arch.tsc_offset", ctx.get("vcpu.arch.l1_tsc_offset"))
    ctx.set("vmcb01.control.tsc_offset", ctx.get("vcpu.arch.l1_tsc_offset"))
    ctx.set("nested.ctl.nested_cr3", 0)
    return None


@step("svm.exit.restore_l1_regs", "nested_svm_vmexit", NESTED_C, "P10",
      reads=("vmcb01.save.rflags", "vmcb01.save.efer", "vmcb01.save.cr0", "vmcb01.save.cr4",
             "vmcb01.save.rax", "vmcb01.save.rsp", "vmcb01.save.rip", "svm.current_vmcb"),
      writes=REG_SETTER_WRITES + ("vcpu.arch.rax", "vcpu.arch.rsp", "vcpu.rip", "vcpu.arch.dr7"),
      reason="L1's registers come back from vmcb01, where VMRUN saved them; DR7 is reset",
      manual=APM_VMEXIT)
def restore_l1_regs(ctx):
    """RFLAGS, EFER, CR0|PE, CR4, RAX, RSP, RIP from vmcb01.save; DR7 fixed."""
    set_control_registers(ctx, ctx.get("vmcb01.save.rflags"), ctx.get("vmcb01.save.efer"),
                          ctx.get("vmcb01.save.cr0") | x86.X86_CR0_PE, ctx.get("vmcb01.save.cr4"))
    for reg in ("rax", "rsp"):
        ctx.set(f"vcpu.arch.{reg}", ctx.get(f"vmcb01.save.{reg}"))
    ctx.set("vcpu.rip", ctx.get("vmcb01.save.rip"))
    ctx.set("vcpu.arch.dr7", x86.DR7_FIXED_1)
    return None


step("svm.exit.tlb_flush", "nested_svm_transition_tlb_flush", NESTED_C, "P11",
     reads=(), writes=("vcpu.requests",),
     reason="the transition back flushes and syncs too", manual=APM_NPT)(transition_tlb_flush)


@step("svm.exit.uninit_mmu_context", "nested_svm_uninit_mmu_context", NESTED_C, "P11",
      reads=(), writes=("vcpu.arch.mmu",),
      reason="L1 runs on root_mmu; this must precede loading L1's CR3 so the role is L1's")
def uninit_mmu_context(ctx):
    """vcpu->arch.mmu = &root_mmu."""
    ctx.set("vcpu.arch.mmu", "root_mmu")
    return None


EXIT_LOAD_CR3 = _load_cr3("svm.exit", "vmcb01.save.cr3", on_entry=False)


@step("svm.exit.load_cr3_failed", "nested_svm_vmexit", NESTED_C, "P12",
      reads=(), writes=("vcpu.requests",),
      reason="L1's CR3 cannot be restored: request a triple fault but finish the switch")
def exit_load_cr3_failed(ctx):
    """kvm_make_request(KVM_REQ_TRIPLE_FAULT) and carry on."""
    ctx.add_to("vcpu.requests", "KVM_REQ_TRIPLE_FAULT")
    return None


@step("svm.exit.drop_events", "nested_svm_vmexit", NESTED_C, "P14",
      reads=(), writes=("svm.nmi_l1_to_l2", "svm.soft_int_injected", "vcpu.arch.nmi_injected",
                        "vcpu.arch.exception"),
      reason="events picked up for L2 must not be delivered to L1; cleared before the TF #DB "
             "is queued")
def drop_events(ctx):
    """Drop L1->L2 event tracking; clear the exception and interrupt queues."""
    ctx.set("svm.nmi_l1_to_l2", False)
    ctx.set("svm.soft_int_injected", False)
    ctx.set("vcpu.arch.nmi_injected", False)
    ctx.set("vcpu.arch.exception", "none")
    return None


@step("svm.exit.single_step_db", "nested_svm_vmexit", NESTED_C, "P14",
      reads=("vmcb01.save.rflags",), writes=("vcpu.arch.exception",),
      reason="a single-stepped VMRUN completes with the #VMEXIT: L1 takes its #DB now")
def single_step_db(ctx):
    """If L1's saved RFLAGS.TF: queue #DB."""
    if ctx.get("vmcb01.save.rflags") & x86.X86_EFLAGS_TF:
        queue_exception(ctx, "#DB")
        ctx.note("L1 single-stepped VMRUN: #DB queued")
    return None


step("svm.run.check_triple_fault", "vcpu_enter_guest", "arch/x86/kvm/x86.c", "P15",
     reads=("vcpu.requests",), writes=("kvm_run.exit_reason", "vcpu.requests"),
     reason="before entering a guest KVM services its requests; a triple fault outside guest "
            "mode shuts the VM down")(check_triple_fault)


# --- SMM: an SMI while L2 runs, then RSM back into L2 (svm_enter_smm, svm_leave_smm) ---

SVM_SMM_SAVE = ("efer", "cr0", "cr3", "cr4", "rflags", "rip", "rsp", "rax")


@step("svm.smm.enter_smm", "svm_enter_smm", SVM_C, "P15",
      reads=("nested.vmcb12_gpa",),
      writes=("smm.smram.svm_guest_flag", "smm.smram.vmcb12_gpa", "vmcb02.control.exit_code",
              "vmcb02.control.exit_info_1", "vmcb02.control.exit_info_2"),
      reason="SMM runs outside guest mode: KVM records L2's vmcb12 in SMRAM and leaves L2 with "
             "a #VMEXIT (SVM_EXIT_SW)", manual="AMD APM vol. 2, 15.22 SMM Support")
def enter_smm(ctx):
    """Record guest mode and the vmcb12 GPA in SMRAM; exit code SVM_EXIT_SW."""
    ctx.set("smm.smram.svm_guest_flag", 1)
    ctx.set("smm.smram.vmcb12_gpa", ctx.get("nested.vmcb12_gpa"))
    ctx.set("vmcb02.control.exit_code", defs.SVM_EXIT_SW)
    ctx.set("vmcb02.control.exit_info_1", 0)
    ctx.set("vmcb02.control.exit_info_2", 0)
    return None


@step("svm.smm.save_vmcb01", "svm_enter_smm", SVM_C, "P6",
      reads=tuple(f"vmcb01.save.{r}" for r in SVM_SMM_SAVE),
      writes=tuple(f"hsave.save.{r}" for r in SVM_SMM_SAVE),
      reason="SMM will use vmcb01, so L1's VMRUN state is stashed in L1's HSAVE page")
def save_vmcb01(ctx):
    """Stash vmcb01's VMRUN state in the HSAVE page."""
    for r in SVM_SMM_SAVE:
        ctx.set(f"hsave.save.{r}", ctx.get(f"vmcb01.save.{r}"))
    return None


@step("svm.smm.handler", "L1 SMM handler (L1 code, not KVM)", SVM_C, "P15",
      reads=("smm.vmcb12_asid",), writes=("vmcb12.control.asid",),
      reason="vmcb12 is ordinary guest memory: L1's SMM code may change it before RSM")
def smm_handler(ctx):
    """L1's SMM handler runs; it may rewrite vmcb12 (here: its ASID)."""
    asid = ctx.get("smm.vmcb12_asid")
    ctx.set("vmcb12.control.asid", asid)
    ctx.note(f"the SMM handler leaves vmcb12.control.asid = {asid}")
    return None


@step("svm.smm.map_vmcb12", "svm_leave_smm", SVM_C, "P2",
      reads=("smm.smram.vmcb12_gpa", "guest_memory"), writes=("svm.local.vmcb12_gpa",),
      reason="RSM maps the vmcb12 whose GPA SMRAM recorded (kvm_vcpu_map()), and the HSAVE "
             "page, before it touches vmcb01; a failed map makes RSM fail")
def smm_map_vmcb12(ctx):
    """kvm_vcpu_map() of the vmcb12 SMRAM names; RSM fails without memory behind it."""
    gpa = ctx.get("smm.smram.vmcb12_gpa")
    ctx.set("svm.local.vmcb12_gpa", gpa)
    if not ctx.is_backed(gpa):
        ctx.note(f"no memory behind {gpa:#x}: svm_leave_smm() returns 1, RSM fails")
        return "efault"
    ctx.note(f"vmcb12 mapped at GPA {gpa:#x}")
    return None


@step("svm.smm.restore_vmcb01", "svm_leave_smm", SVM_C, "P6",
      reads=tuple(f"hsave.save.{r}" for r in SVM_SMM_SAVE),
      writes=tuple(f"vmcb01.save.{r}" for r in SVM_SMM_SAVE),
      reason="before re-entering L2, vmcb01 must hold L1's VMRUN state again: the nested MMU "
             "and the intercept merge read it")
def restore_vmcb01(ctx):
    """RSM: restore vmcb01.save from HSAVE (svm_copy_vmrun_state())."""
    for r in SVM_SMM_SAVE:
        ctx.set(f"vmcb01.save.{r}", ctx.get(f"hsave.save.{r}"))
    return None


for _sid, _action, _base in (("svm.smm.check_save", check_save, "svm.vmrun.check_save"),
                             ("svm.smm.check_controls", check_controls, "svm.vmrun.check_controls")):
    _b = STEPS[_base]
    step(_sid, "nested_svm_check_cached_vmcb12", NESTED_C, _b.phase, reads=_b.reads, writes=_b.writes,
         reason="svm_leave_smm() checks the re-read vmcb12 again (commit be5fa8737d42): RSM "
                "does not enforce the control area", manual=_b.manual)(_action)


@step("svm.smm.rsm_fails", "svm_leave_smm", SVM_C, "P15",
      reads=(), writes=("vcpu.requests",),
      reason="a vmcb12 that fails the checks cannot be re-entered: RSM fails and the vCPU "
             "shuts down")
def rsm_fails(ctx):
    """svm_leave_smm() returns 1: RSM emulation fails, triple fault."""
    ctx.add_to("vcpu.requests", "KVM_REQ_TRIPLE_FAULT")
    return None


step("svm.smm.set_run_pending", "svm_leave_smm", SVM_C, "P6",
     reads=(), writes=("vcpu.arch.nested_run_pending",),
     reason="on RSM the run is marked pending after entry, so vmcb12's next_rip is used as is"
     )(set_run_pending(1))
