"""The nVMX steps: one kernel action each, named after its kernel function.

Read top to bottom they follow nested_vmx_run(), nested_vmx_enter_non_root_mode(),
prepare_vmcs02(), __nested_vmx_vmexit() and load_vmcs12_host_state() in
arch/x86/kvm/vmx/nested.c at the pinned commit.  The order they run in is
data (flows.py).  ``vmx.local.*`` paths are kernel locals the flow branches
on: the error number nested_vmx_fail() is called with, and the exit reason
nested_vmx_enter_non_root_mode() reports.
"""

from __future__ import annotations

from .. import kvm_mmu, x86
from ..engine.step import Step
from ..transitions import (GUEST_MODE_FILE, check_triple_fault, service_local_tlb_flush_requests,
                           set_guest_mode, set_run_pending,
                           switch_current)
from . import caps, defs as d
from .checks import CONTROL_CHECKS, GUEST_CHECKS, HOST_CHECKS, Env, canonical, first_failure, has, has2, reader

NESTED_C = "arch/x86/kvm/vmx/nested.c"
VMX_C = "arch/x86/kvm/vmx/vmx.c"
SDM_ENTRY = "Intel SDM vol. 3C, 27.1 Basic VM-Entry Checks"
SDM_CTRL = "Intel SDM vol. 3C, 27.2 Checks on VMX Controls and Host-State Area"
SDM_GUEST = "Intel SDM vol. 3C, 27.3 Checking and Loading Guest State"
SDM_MSR = "Intel SDM vol. 3C, 27.4 Loading MSRs"
SDM_FAIL = "Intel SDM vol. 3C, 27.8 VM-Entry Failures During or After Loading Guest State"
SDM_EXIT = "Intel SDM vol. 3C, 28.5 Loading Host State"
SDM_EPT = "Intel SDM vol. 3C, 29.3 The Extended Page Table Mechanism (EPT)"

STEPS: dict = {}


def step(id, function, file, phase, reads, writes, reason, manual="", title=""):
    def register(action):
        STEPS[id] = Step(id, function, file, phase, tuple(reads), tuple(writes), reason,
                         action, manual, title or action.__doc__.strip().splitlines()[0])
        return action
    return register


def host_virt_addr_bits(ctx) -> int:
    """max_host_virt_addr_bits(): 57 if KVM has LA57.  A vCPU can have LA57 in its CPUID only
    when KVM supports it, so cpu.features containing LA57 implies cpu.host_la57."""
    return x86.max_host_virt_addr_bits(ctx.get("cpu.host_la57") or "LA57" in ctx.get("cpu.features"))


def global_ctrl_rsvd(ctx) -> int:
    """vcpu_to_pmu(vcpu)->global_ctrl_rsvd of L1's vPMU (intel_pmu_refresh())."""
    return x86.intel_global_ctrl_rsvd(ctx.get("cpu.pmu_gp_counters"), ctx.get("cpu.pmu_fixed_counters"))


PMU_READS = ("cpu.pmu_gp_counters", "cpu.pmu_fixed_counters")


def env(ctx) -> Env:
    return Env(ctx.get("cpu.maxphyaddr"), frozenset(ctx.get("cpu.features")), ctx.get("vcpu.arch.efer"),
               ctx.get("cpu.ept"), ctx.get("cpu.vpid"), ctx.get("cpu.unrestricted_guest"),
               bool(ctx.get("vcpu.arch.nested_run_pending")), ctx._memory,
               host_virt_addr_bits(ctx), global_ctrl_rsvd(ctx), ctx.get("cpu.apicv"), ctx.get("cpu.mpx"),
               ctx.get("cpu.cet"))


ENV_READS = ("cpu.maxphyaddr", "cpu.features", "vcpu.arch.efer", "cpu.ept", "cpu.vpid",
             "cpu.unrestricted_guest", "vcpu.arch.nested_run_pending", "cpu.host_la57",
             "cpu.apicv", "cpu.mpx", "cpu.cet") + PMU_READS


def vmcs12(ctx):
    return lambda name: ctx.get(f"vmcs12.{name}")


def nested_ept(ctx) -> bool:
    return has2(vmcs12(ctx), d.SECONDARY_EXEC_ENABLE_EPT)


def skip_instruction(ctx) -> None:
    """kvm_skip_emulated_instruction(): RIP past the 3-byte instruction; #DB if single-stepping."""
    ctx.set("vcpu.rip", (ctx.get("vcpu.rip") + d.VMLAUNCH_INSN_LEN) & x86.MASK64)
    if ctx.get("vcpu.arch.rflags") & x86.X86_EFLAGS_TF:
        ctx.set("vcpu.arch.exception", "#DB")
        ctx.note("RFLAGS.TF: #DB after the instruction")


SKIP_READS = ("vcpu.rip", "vcpu.arch.rflags")


def fail_valid_flags(rflags: int) -> int:
    """nested_vmx_failValid(): ZF set; CF, PF, AF, SF and OF clear."""
    return (rflags & ~(d.X86_EFLAGS_CF | d.X86_EFLAGS_PF | d.X86_EFLAGS_AF | d.X86_EFLAGS_SF
                       | d.X86_EFLAGS_OF)) | d.X86_EFLAGS_ZF
SKIP_WRITES = ("vcpu.rip", "vcpu.arch.exception")


# --- nested_vmx_run(): checks that end in a fault or a VMfail -----------------

@step("vmx.run.check_permission", "nested_vmx_check_permission", NESTED_C, "P1",
      reads=("vmx.nested.vmxon", "vcpu.cpl"), writes=("vcpu.arch.exception",),
      reason="outside VMX operation VMLAUNCH is #UD, above CPL 0 #GP; RIP is not advanced",
      manual=SDM_ENTRY)
def check_permission(ctx):
    """#UD before VMXON, #GP above CPL 0."""
    if not ctx.get("vmx.nested.vmxon"):
        ctx.set("vcpu.arch.exception", "#UD")
        return "ud"
    if ctx.get("vcpu.cpl"):
        ctx.set("vcpu.arch.exception", "#GP(0)")
        return "gp"
    return None


@step("vmx.run.check_current_vmcs", "nested_vmx_run", NESTED_C, "P2",
      reads=("vmx.nested.current_vmptr", "vmcs12.hdr.shadow_vmcs"), writes=(),
      reason="there is nothing to launch without a current VMCS, and a shadow VMCS cannot be "
             "launched: both are VMfailInvalid, with no error number", manual=SDM_ENTRY)
def check_current_vmcs(ctx):
    """VMfailInvalid without a current VMCS, or when vmcs12 is a shadow VMCS."""
    if ctx.get("vmx.nested.current_vmptr") == d.INVALID_GPA:
        ctx.note("current_vmptr is INVALID_GPA: VMfailInvalid")
        return "fail_invalid"
    if ctx.get("vmcs12.hdr.shadow_vmcs"):
        ctx.note("vmcs12's header says shadow VMCS: VMfailInvalid")
        return "fail_invalid"
    return None


def _vmfail_with(ctx, error, why):
    ctx.set("vmx.local.vm_instruction_error", error)
    ctx.note(f"{why}: VMfail {error}")
    return "vmfail"


@step("vmx.run.check_mov_ss", "nested_vmx_run", NESTED_C, "P3",
      reads=("vcpu.arch.interrupt_shadow",), writes=("vmx.local.vm_instruction_error",),
      reason="VM entry right after MOV SS is refused before anything else", manual=SDM_ENTRY)
def check_mov_ss(ctx):
    """VMfail 26 inside a MOV-SS shadow."""
    if ctx.get("vcpu.arch.interrupt_shadow") == "MOV_SS":
        return _vmfail_with(ctx, d.VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS, "MOV-SS blocking")
    return None


@step("vmx.run.check_launch_state", "nested_vmx_run", NESTED_C, "P3",
      reads=("vmcs12.launch_state", "vmx.local.launch"), writes=("vmx.local.vm_instruction_error",),
      reason="VMLAUNCH needs a clear vmcs12, VMRESUME a launched one", manual=SDM_ENTRY)
def check_launch_state(ctx):
    """VMfail 4 (VMLAUNCH, launched) or 5 (VMRESUME, clear)."""
    launch = ctx.get("vmx.local.launch")
    if ctx.get("vmcs12.launch_state") == launch:
        err = d.VMXERR_VMLAUNCH_NONCLEAR_VMCS if launch else d.VMXERR_VMRESUME_NONLAUNCHED_VMCS
        return _vmfail_with(ctx, err, "launch state mismatch")
    return None


def failure_text(failed) -> str:
    """'H6b fails (required: ...; kernel: ...)' for a step's note."""
    kernel = f"; {failed.kernel}" if failed.kernel else ""
    return f"{failed.id} fails (required: {failed.text}{kernel})"


def _check_list(ctx, checks, error):
    failed = first_failure(checks, vmcs12(ctx), env(ctx))
    if failed:
        return _vmfail_with(ctx, error, failure_text(failed))
    ctx.note(f"{checks[0].id}..{checks[-1].id} pass")
    return None


@step("vmx.run.check_controls", "nested_vmx_check_controls", NESTED_C, "P3",
      reads=("vmcs12.*",) + ENV_READS, writes=("vmx.local.vm_instruction_error",),
      reason="controls are checked before anything is touched: a VMfail leaves L1's state as "
             "it was, except flags, RIP and the error number", manual=SDM_CTRL)
def check_controls(ctx):
    """Execution, exit and entry controls (VMfail 7)."""
    return _check_list(ctx, CONTROL_CHECKS, d.VMXERR_ENTRY_INVALID_CONTROL_FIELD)


@step("vmx.run.check_host_state", "nested_vmx_check_host_state", NESTED_C, "P4",
      reads=("vmcs12.*",) + ENV_READS, writes=("vmx.local.vm_instruction_error",),
      reason="every later failure and every VM exit loads vmcs12's host area into L1, so it is "
             "checked first (VMfail 8)", manual=SDM_CTRL)
def check_host_state(ctx):
    """Address-space size and the host-state area (VMfail 8)."""
    return _check_list(ctx, HOST_CHECKS, d.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD)


@step("vmx.run.vmfail_invalid", "nested_vmx_failInvalid", NESTED_C, "P2",
      reads=SKIP_READS, writes=("vcpu.arch.rflags",) + SKIP_WRITES,
      reason="VMfailInvalid: CF=1, the other arithmetic flags clear, next instruction",
      manual=SDM_ENTRY)
def vmfail_invalid(ctx):
    """RFLAGS.CF=1 and skip the instruction."""
    flags = ctx.get("vcpu.arch.rflags") & ~(d.X86_EFLAGS_PF | d.X86_EFLAGS_AF | d.X86_EFLAGS_ZF
                                            | d.X86_EFLAGS_SF | d.X86_EFLAGS_OF)
    ctx.set("vcpu.arch.rflags", flags | d.X86_EFLAGS_CF)
    skip_instruction(ctx)
    return None


@step("vmx.run.vmfail", "nested_vmx_fail", NESTED_C, "P3",
      reads=("vmx.local.vm_instruction_error", "vmx.nested.current_vmptr") + SKIP_READS,
      writes=("vcpu.arch.rflags", "vmcs12.vm_instruction_error") + SKIP_WRITES,
      reason="VMfailValid: ZF=1 and the error number in vmcs12; nothing else of L1 changes",
      manual=SDM_ENTRY)
def vmfail(ctx):
    """RFLAGS.ZF=1, vm_instruction_error, skip the instruction."""
    ctx.set("vcpu.arch.rflags", fail_valid_flags(ctx.get("vcpu.arch.rflags")))
    ctx.set("vmcs12.vm_instruction_error", ctx.get("vmx.local.vm_instruction_error"))
    skip_instruction(ctx)
    return None


step("vmx.run.set_run_pending", "nested_vmx_run", NESTED_C, "P6",
     reads=(), writes=("vcpu.arch.nested_run_pending",),
     reason="from here L2 must run next; it also gates the VM-entry-only loads "
            "(LOAD_IA32_EFER, LOAD_DEBUG_CONTROLS, event injection)")(set_run_pending(1))


# --- nested_vmx_enter_non_root_mode() -------------------------------------

X86_C = "arch/x86/kvm/x86.c"

step("vmx.enter.service_tlb_flush", "kvm_service_local_tlb_flush_requests", X86_C, "P6",
     reads=("vcpu.requests",), writes=("vcpu.requests",),
     reason="the flushes L1 still owes its own context are done while L1's context is the "
            "current one; after the switch to vmcs02 they would hit L2's")(service_local_tlb_flush_requests("L1"))


@step("vmx.enter.snapshot_l1", "nested_vmx_enter_non_root_mode", NESTED_C, "P6",
      reads=("vcpu.arch.cr3",), writes=("vmx.nested.pre_vmenter_cr3",),
      reason="L1's CR3 is stashed before nested_vmx_load_cr3() replaces it, to unwind a late "
             "hardware VMfail; vmcs01 is still current for the other snapshots")
def snapshot_l1(ctx):
    """pre_vmenter_cr3 = L1's CR3 (DEBUGCTL, BNDCFGS and CET snapshots alike)."""
    ctx.set("vmx.nested.pre_vmenter_cr3", ctx.get("vcpu.arch.cr3"))
    return None


def vmcs_switch(target):
    return switch_current("vmx.current_vmcs", target, "vmx->loaded_vmcs")


step("vmx.enter.switch_vmcs02", "vmx_switch_vmcs", NESTED_C, "P7",
     reads=(), writes=("vmx.current_vmcs",),
     reason="every VMWRITE from here targets vmcs02, so any later failure must switch back "
            "to vmcs01 first", manual=SDM_ENTRY)(vmcs_switch("vmcs02"))

VMCS02_CONTROLS = ("pin_based_vm_exec_control", "cpu_based_vm_exec_control",
                   "secondary_vm_exec_control", "vm_entry_controls", "vm_exit_controls",
                   "vm_entry_intr_info_field")


@step("vmx.enter.prepare_vmcs02_early", "prepare_vmcs02_early", NESTED_C, "P9",
      reads=tuple(f"vmcs01.{f}" for f in VMCS02_CONTROLS[:5])
      + tuple(f"vmcs12.{f}" for f in VMCS02_CONTROLS) + ("vcpu.arch.nested_run_pending",),
      writes=tuple(f"vmcs02.{f}" for f in VMCS02_CONTROLS),
      reason="vmcs02's controls merge L0's and L1's; the event to inject is copied only "
             "while the run is pending", manual=SDM_CTRL)
def prepare_vmcs02_early(ctx):
    """Merge pin, processor, secondary, entry and exit controls into vmcs02."""
    v01 = lambda f: ctx.get(f"vmcs01.{f}")
    v12 = vmcs12(ctx)
    ctx.set("vmcs02.pin_based_vm_exec_control", v01("pin_based_vm_exec_control")
            | (v12("pin_based_vm_exec_control") & ~d.PIN_BASED_VMX_PREEMPTION_TIMER))
    execs = (v01("cpu_based_vm_exec_control") & ~(d.CPU_BASED_INTR_WINDOW_EXITING
                                                  | d.CPU_BASED_NMI_WINDOW_EXITING | d.CPU_BASED_TPR_SHADOW))
    execs |= v12("cpu_based_vm_exec_control")
    execs = (execs | d.CPU_BASED_UNCOND_IO_EXITING) & ~d.CPU_BASED_USE_IO_BITMAPS
    ctx.set("vmcs02.cpu_based_vm_exec_control", execs)
    sec = v01("secondary_vm_exec_control") & ~(d.SECONDARY_EXEC_ENABLE_PML | d.SECONDARY_EXEC_SHADOW_VMCS
                                              | d.SECONDARY_EXEC_UNRESTRICTED_GUEST)
    if has2(v12, d.SECONDARY_EXEC_UNRESTRICTED_GUEST):
        sec |= d.SECONDARY_EXEC_UNRESTRICTED_GUEST
    if v12("cpu_based_vm_exec_control") & d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS:
        sec |= v12("secondary_vm_exec_control") & ~(d.SECONDARY_EXEC_ENABLE_PML | d.SECONDARY_EXEC_SHADOW_VMCS)
    ctx.set("vmcs02.secondary_vm_exec_control", sec)
    ctx.set("vmcs02.vm_entry_controls", v12("vm_entry_controls"))
    ctx.set("vmcs02.vm_exit_controls", v01("vm_exit_controls"))
    if ctx.get("vcpu.arch.nested_run_pending"):
        ctx.set("vmcs02.vm_entry_intr_info_field", v12("vm_entry_intr_info_field"))
    else:
        ctx.set("vmcs02.vm_entry_intr_info_field", 0)
    return None


def reload_l1_pdptrs(ctx, v12) -> bool:
    """Without nested EPT and with L1 in PAE paging, re-read L1's PDPTRs from its CR3.

    KVM does this first in nested_get_vmcs12_pages() because after a migration the CR3 may
    have been restored before the nested state; pdptrs_from_userspace is never set here.
    """
    if has2(v12, d.SECONDARY_EXEC_ENABLE_EPT) or not kvm_mmu.uses_pae_paging(ctx):
        return True
    return kvm_mmu.load_pdptrs(ctx, ctx.get("vcpu.arch.cr3"), ctx.get("cpu.maxphyaddr"))


@step("vmx.enter.get_vmcs12_pages", "nested_get_vmcs12_pages", NESTED_C, "P13",
      reads=("vmcs12.cpu_based_vm_exec_control", "vmcs12.secondary_vm_exec_control",
             "vmcs12.apic_access_addr", "vmcs12.msr_bitmap", "guest_memory", "vcpu.arch.cr0",
             "vcpu.arch.cr4", "vcpu.arch.efer", "vcpu.arch.cr3", "cpu.maxphyaddr"),
      writes=("vmcs02.msr_bitmap", "vmcs02.cpu_based_vm_exec_control", "kvm_run.exit_reason")
      + kvm_mmu.PDPTR_WRITES,
      reason="L1's pages are mapped and its MSR bitmap merged early, before any guest-state "
             "check; a page with no memory is KVM's problem, not L1's", manual=SDM_CTRL)
def get_vmcs12_pages(ctx):
    """Reload L1's PDPTRs, map the APIC-access page, merge L1's MSR bitmap into vmcs02's."""
    v12 = vmcs12(ctx)
    if not reload_l1_pdptrs(ctx, v12):
        ctx.note("nested_get_vmcs12_pages() fails: VMLAUNCH returns to userspace, and KVM sets "
                 "no exit reason on this path")
        return "internal_error"
    if has2(v12, d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) and not ctx.is_backed(v12("apic_access_addr")):
        ctx.set("kvm_run.exit_reason", "KVM_EXIT_INTERNAL_ERROR")
        ctx.note("APIC-access page has no memory: KVM_EXIT_INTERNAL_ERROR")
        return "internal_error"
    execs = ctx.get("vmcs02.cpu_based_vm_exec_control")
    if v12("cpu_based_vm_exec_control") & d.CPU_BASED_USE_MSR_BITMAPS and ctx.is_backed(v12("msr_bitmap")):
        ctx.set("vmcs02.msr_bitmap", "__pa(vmx->nested.vmcs02.msr_bitmap)")
        ctx.set("vmcs02.cpu_based_vm_exec_control", execs | d.CPU_BASED_USE_MSR_BITMAPS)
        ctx.note("L1's MSR bitmap merged with L0's into vmcs02's bitmap")
    else:
        ctx.set("vmcs02.cpu_based_vm_exec_control", execs & ~d.CPU_BASED_USE_MSR_BITMAPS)
        ctx.note("no usable L1 MSR bitmap: every MSR access by L2 exits")
    return None


@step("vmx.enter.check_guest_state", "nested_vmx_check_guest_state", NESTED_C, "P5",
      reads=("vmcs12.*", "guest_memory") + ENV_READS,
      writes=("vmcs12.exit_qualification", "vmx.local.exit_reason"),
      reason="most guest-state checks run before guest mode and before any L2 register is "
             "loaded, so a failure needs no leave_guest_mode() and no TSC unwind", manual=SDM_GUEST)
def check_guest_state(ctx):
    """G1-G9 on vmcs12's guest area (VM exit 33, qualification 0 or 4)."""
    failed = first_failure(GUEST_CHECKS, vmcs12(ctx), env(ctx))
    if not failed:
        ctx.note(f"{GUEST_CHECKS[0].id}..{GUEST_CHECKS[-1].id} pass")
        return None
    ctx.set("vmx.local.exit_reason", d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE)
    ctx.set("vmcs12.exit_qualification", failed.qualification)
    ctx.note(f"{failure_text(failed)}: VM exit 33, qualification {failed.qualification}")
    return "invalid"


step("vmx.enter.enter_guest_mode", "enter_guest_mode", GUEST_MODE_FILE, "P8",
     reads=(), writes=("vcpu.guest_mode",),
     reason="before prepare_vmcs02(): MMU roles built by nested_vmx_load_cr3() must carry the "
            "guest-mode bit, and the exception-bitmap merge needs guest mode")(set_guest_mode(True))


# --- prepare_vmcs02() ---------------------------------------------------------

@step("vmx.prep.rflags", "prepare_vmcs02", NESTED_C, "P10",
      reads=("vmcs12.guest_rflags", "vmcs12.guest_dr7", "vmcs12.vm_entry_controls",
             "vcpu.arch.nested_run_pending", "vcpu.arch.dr7"),
      writes=("vcpu.arch.rflags", "vcpu.arch.dr7"),
      reason="DR7 from vmcs12 only with LOAD_DEBUG_CONTROLS on a pending run; then L2's RFLAGS",
      manual=SDM_GUEST)
def prep_rflags(ctx):
    """DR7 (vmcs12's or L1's), then vmx_set_rflags(guest_rflags)."""
    if ctx.get("vcpu.arch.nested_run_pending") and ctx.get("vmcs12.vm_entry_controls") & d.VM_ENTRY_LOAD_DEBUG_CONTROLS:
        ctx.set("vcpu.arch.dr7", ctx.get("vmcs12.guest_dr7"))
    ctx.set("vcpu.arch.rflags", ctx.get("vmcs12.guest_rflags"))
    return None


@step("vmx.prep.pat", "prepare_vmcs02", NESTED_C, "P10",
      reads=("vmcs12.guest_ia32_pat", "vmcs12.vm_entry_controls", "vcpu.arch.nested_run_pending"),
      writes=("vcpu.arch.pat",), reason="L2's PAT only when vmcs12 loads it on a pending run",
      manual=SDM_GUEST)
def prep_pat(ctx):
    """PAT from vmcs12 with LOAD_IA32_PAT."""
    if ctx.get("vcpu.arch.nested_run_pending") and ctx.get("vmcs12.vm_entry_controls") & d.VM_ENTRY_LOAD_IA32_PAT:
        ctx.set("vcpu.arch.pat", ctx.get("vmcs12.guest_ia32_pat"))
    return None


@step("vmx.prep.tsc", "prepare_vmcs02", NESTED_C, "P9",
      reads=("vcpu.arch.l1_tsc_offset", "vmcs12.tsc_offset", "vmcs12.cpu_based_vm_exec_control"),
      writes=("vcpu.arch.tsc_offset", "vmcs02.tsc_offset"),
      reason="L2's TSC offset: L1's plus vmcs12's when L1 uses TSC offsetting")
def prep_tsc(ctx):
    """tsc_offset = L1's + vmcs12's (with USE_TSC_OFFSETTING)."""
    l2 = ctx.get("vmcs12.tsc_offset") if ctx.get("vmcs12.cpu_based_vm_exec_control") & d.CPU_BASED_USE_TSC_OFFSETTING else 0
    offset = (ctx.get("vcpu.arch.l1_tsc_offset") + l2) & x86.MASK64
    ctx.set("vcpu.arch.tsc_offset", offset)
    ctx.set("vmcs02.tsc_offset", offset)
    return None


def _tlb_flush(is_vmenter):
    def action(ctx):
        v12 = vmcs12(ctx)
        if not has2(v12, d.SECONDARY_EXEC_ENABLE_VPID):
            ctx.add_to("vcpu.requests", "KVM_REQ_TLB_FLUSH_GUEST")
            ctx.note("vmcs12 has no VPID: flush the guest TLB context")
            return None
        if is_vmenter and v12("virtual_processor_id") != ctx.get("vmx.nested.last_vpid"):
            ctx.set("vmx.nested.last_vpid", v12("virtual_processor_id"))
            ctx.add_to("vcpu.requests", "KVM_REQ_TLB_FLUSH_GUEST")
            ctx.note("a new VPID12: flush the guest TLB context")
            return None
        # nested_has_guest_tlb_tag(): EPT, or vmcs12's VPID backed by a vpid02 (KVM allocates
        # one when enable_vpid), keeps L1's and L2's translations apart: no flush needed
        if not (ctx.get("cpu.ept") or ctx.get("cpu.vpid")):
            ctx.add_to("vcpu.requests", "KVM_REQ_TLB_FLUSH_CURRENT")
            ctx.note("no EPT and no vpid02: flush the current context")
        return None
    action.__doc__ = "nested_vmx_transition_tlb_flush(): request the flush the VPIDs call for."
    return action


TLB_READS = ("vmcs12.cpu_based_vm_exec_control", "vmcs12.secondary_vm_exec_control",
             "vmcs12.virtual_processor_id", "vmx.nested.last_vpid", "cpu.ept", "cpu.vpid")
step("vmx.prep.tlb_flush", "nested_vmx_transition_tlb_flush", NESTED_C, "P11",
     reads=TLB_READS, writes=("vcpu.requests", "vmx.nested.last_vpid"),
     reason="the flushes L2's VPID calls for are requested before L2 first runs; KVM services "
            "them at the next entry",
     manual=SDM_EPT)(_tlb_flush(True))


@step("vmx.prep.ept_init_mmu_context", "nested_ept_init_mmu_context", NESTED_C, "P11",
      reads=("vmcs12.cpu_based_vm_exec_control", "vmcs12.secondary_vm_exec_control",
             "vmcs12.ept_pointer", "vcpu.guest_mode", "cpu.ept"),
      writes=("vcpu.arch.mmu", "vcpu.arch.ngpa_walk.cpu_role", "vcpu.arch.guest_mmu.root_role.guest_mode",
              "vcpu.arch.guest_mmu.root.pgd"),
      reason="with nested EPT, guest_mmu shadows L1's EPT; it must be active before "
             "nested_vmx_load_cr3() so kvm_init_mmu() builds the walker, not a new root",
      manual=SDM_EPT)
def ept_init_mmu_context(ctx):
    """If vmcs12 enables EPT: guest_mmu rooted at the EPTP (kvm_init_shadow_ept_mmu)."""
    if not nested_ept(ctx):
        ctx.note("no nested EPT: " + kvm_mmu.root_mmu_note(ctx.get("cpu.ept"), "L2"))
        return None
    eptp = ctx.get("vmcs12.ept_pointer")
    levels = "5-level EPT" if eptp & d.VMX_EPTP_PWL_MASK == d.VMX_EPTP_PWL_5 else "4-level EPT"
    # kvm_calc_shadow_ept_root_page_role() sets the guest-mode bit whatever the vCPU's mode
    kvm_mmu.init_shadow_tdp_mmu(ctx, levels, eptp & ~0xFFF & x86.MASK64, True, warn=False)
    return None


SET_CR_WRITES = ("vcpu.arch.cr0", "vcpu.arch.cr4", "vmx->loaded_vmcs.cr0_read_shadow",
                 "vmx->loaded_vmcs.cr4_read_shadow")


@step("vmx.prep.set_cr0_cr4", "prepare_vmcs02", NESTED_C, "P10",
      reads=("vmcs12.guest_cr0", "vmcs12.guest_cr4", "vmcs12.cr0_guest_host_mask",
             "vmcs12.cr4_guest_host_mask", "vmcs12.cr0_read_shadow", "vmcs12.cr4_read_shadow",
             "vmx.current_vmcs"),
      writes=SET_CR_WRITES,
      reason="L2's CR0 and CR4 must be in place before nested_vmx_load_cr3(): is_pae_paging() "
             "and the MMU role read them", manual=SDM_GUEST)
def prep_set_cr0_cr4(ctx):
    """vmx_set_cr0(guest_cr0), vmx_set_cr4(guest_cr4), and their read shadows."""
    for cr in ("cr0", "cr4"):
        value, mask = ctx.get(f"vmcs12.guest_{cr}"), ctx.get(f"vmcs12.{cr}_guest_host_mask")
        ctx.set(f"vcpu.arch.{cr}", value)
        ctx.set(f"vmx->loaded_vmcs.{cr}_read_shadow", (value & ~mask) | (ctx.get(f"vmcs12.{cr}_read_shadow") & mask))
    return None


@step("vmx.prep.set_efer", "prepare_vmcs02", NESTED_C, "P10",
      reads=("vmcs12.guest_ia32_efer", "vmcs12.vm_entry_controls", "vcpu.arch.nested_run_pending",
             "vcpu.arch.efer"),
      writes=("vcpu.arch.efer",),
      reason="L2's EFER (nested_vmx_calc_efer) before nested_vmx_load_cr3(), which decides "
             "PAE paging with EFER.LMA", manual=SDM_GUEST)
def prep_set_efer(ctx):
    """vcpu->arch.efer = nested_vmx_calc_efer(); vmx_set_efer()."""
    entry = ctx.get("vmcs12.vm_entry_controls")
    efer = ctx.get("vcpu.arch.efer")
    if ctx.get("vcpu.arch.nested_run_pending") and entry & d.VM_ENTRY_LOAD_IA32_EFER:
        efer = ctx.get("vmcs12.guest_ia32_efer")
    elif entry & d.VM_ENTRY_IA32E_MODE:
        efer |= x86.EFER_LMA | x86.EFER_LME
    else:
        efer &= ~(x86.EFER_LMA | x86.EFER_LME)
    ctx.set("vcpu.arch.efer", efer)
    return None


# vmx_get_segment() (arch/x86/kvm/vmx/vmx.c) reads a segment of vmcs02, which
# prepare_vmcs02_rare() filled from vmcs12's guest area, and decodes its access rights;
# "present" is !unusable, not AR bit 7 ("Since usable segment has to be present according
# to VMX spec we can use present property to amend userspace bug").  SEGMENT_RPL_MASK 3,
# SEGMENT_TI_MASK 4 (asm/segment.h); VMX_AR_TYPE_* (asm/vmx.h).
SEGMENT_RPL_MASK, SEGMENT_TI_MASK = 3, 4
VMX_AR_TYPE_ACCESSES_MASK, VMX_AR_TYPE_WRITEABLE_MASK, VMX_AR_TYPE_CODE_MASK = 1, 1 << 2, 1 << 3
GUEST_SEGMENT_READS = tuple(f"vmcs12.guest_{seg}_{part}" for seg in ("es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr")
                            for part in ("selector", "base", "limit", "ar_bytes"))


def vmx_get_segment(v, seg: str) -> dict:
    """vmx_get_segment() on vmcs12's copy of a guest segment (vm86 not active)."""
    ar = v(f"guest_{seg}_ar_bytes")
    unusable = bool((ar >> 16) & 1)
    return {"selector": v(f"guest_{seg}_selector"), "base": v(f"guest_{seg}_base"),
            "limit": v(f"guest_{seg}_limit"), "ar": ar, "unusable": unusable, "type": ar & 15,
            "s": (ar >> 4) & 1, "dpl": (ar >> 5) & 3, "present": not unusable}


def rmode_segment_valid(v, seg: str) -> bool:
    """rmode_segment_valid(): base == selector << 4, limit 0xffff, access rights 0xf3
    (DPL forced to 3, and CS's type to 3, before vmx_segment_access_rights())."""
    var = vmx_get_segment(v, seg)
    ar = (3 if seg == "cs" else var["type"]) | var["s"] << 4 | 3 << 5 | var["present"] << 7
    ar |= var["ar"] & (0xF << 12)                 # avl, l, db, g
    ar |= (var["unusable"] or not var["present"]) << 16
    return var["base"] == var["selector"] << 4 and var["limit"] == 0xFFFF and ar == 0xF3


def code_segment_valid(v) -> bool:
    """code_segment_valid()."""
    cs = vmx_get_segment(v, "cs")
    cs_rpl = cs["selector"] & SEGMENT_RPL_MASK
    if cs["unusable"]:
        return False
    if ~cs["type"] & (VMX_AR_TYPE_CODE_MASK | VMX_AR_TYPE_ACCESSES_MASK):
        return False
    if not cs["s"]:
        return False
    if cs["type"] & VMX_AR_TYPE_WRITEABLE_MASK:
        if cs["dpl"] > cs_rpl:
            return False
    elif cs["dpl"] != cs_rpl:
        return False
    return cs["present"]


def stack_segment_valid(v) -> bool:
    """stack_segment_valid()."""
    ss = vmx_get_segment(v, "ss")
    if ss["unusable"]:
        return True
    if ss["type"] not in (3, 7) or not ss["s"]:
        return False
    if ss["dpl"] != ss["selector"] & SEGMENT_RPL_MASK:
        return False
    return ss["present"]


def data_segment_valid(v, seg: str) -> bool:
    """data_segment_valid()."""
    var = vmx_get_segment(v, seg)
    if var["unusable"]:
        return True
    if not var["s"] or not var["present"]:
        return False
    if ~var["type"] & (VMX_AR_TYPE_CODE_MASK | VMX_AR_TYPE_WRITEABLE_MASK):
        if var["dpl"] < var["selector"] & SEGMENT_RPL_MASK:
            return False
    return True


def tr_valid(v) -> bool:
    """tr_valid()."""
    tr = vmx_get_segment(v, "tr")
    if tr["unusable"] or tr["selector"] & SEGMENT_TI_MASK:
        return False
    if tr["type"] not in (3, 11):
        return False
    return tr["present"]


def ldtr_valid(v) -> bool:
    """ldtr_valid()."""
    ldtr = vmx_get_segment(v, "ldtr")
    if ldtr["unusable"]:
        return True
    if ldtr["selector"] & SEGMENT_TI_MASK or ldtr["type"] != 2:
        return False
    return ldtr["present"]


def cs_ss_rpl_check(v) -> bool:
    """cs_ss_rpl_check(): CS.RPL == SS.RPL, whether or not SS is usable."""
    return (v("guest_cs_selector") & SEGMENT_RPL_MASK) == (v("guest_ss_selector") & SEGMENT_RPL_MASK)


def vmx_guest_state_invalid(v, cr0: int, rflags: int):
    """__vmx_guest_state_valid() (arch/x86/kvm/vmx/vmx.c): None, or the check that fails."""
    if not cr0 & x86.X86_CR0_PE or rflags & x86.X86_EFLAGS_VM:
        # "real mode guest state checks": if (!is_protmode(vcpu) || (vmx_get_rflags(vcpu) & X86_EFLAGS_VM))
        for seg in ("cs", "ss", "ds", "es", "fs", "gs"):
            if not rmode_segment_valid(v, seg):
                return f"rmode_segment_valid({seg.upper()})"
        return None
    # "protected mode guest state checks", in the kernel's order
    checks = (("cs_ss_rpl_check()", lambda: cs_ss_rpl_check(v)), ("code_segment_valid()", lambda: code_segment_valid(v)),
              ("stack_segment_valid()", lambda: stack_segment_valid(v)))
    checks += tuple((f"data_segment_valid({seg.upper()})", lambda seg=seg: data_segment_valid(v, seg))
                    for seg in ("ds", "es", "fs", "gs"))
    checks += (("tr_valid()", lambda: tr_valid(v)), ("ldtr_valid()", lambda: ldtr_valid(v)))
    for name, ok in checks:
        if not ok():
            return name
    return None


@step("vmx.prep.guest_state_valid", "vmx_guest_state_valid", VMX_C, "P10",
      reads=("cpu.unrestricted_guest", "vmcs12.cpu_based_vm_exec_control",
             "vmcs12.secondary_vm_exec_control", "vcpu.arch.cr0", "vcpu.arch.rflags") + GUEST_SEGMENT_READS,
      writes=("vmcs12.exit_qualification", "vmx.local.exit_reason"),
      reason="without unrestricted guest, real mode and odd segments cannot run: checked on "
             "the loaded CR0 and RFLAGS and vmcs02's segments", manual=SDM_GUEST)
def guest_state_valid(ctx):
    """Without unrestricted guest, KVM's own segment checks (VM exit 33)."""
    # prepare_vmcs02(): if (CC(from_vmentry && !vmx_guest_state_valid(vcpu))) { *entry_failure_code
    # = ENTRY_FAIL_DEFAULT; return -EINVAL; }, and vmx_guest_state_valid() (vmx.h) is
    # is_unrestricted_guest(vcpu) || __vmx_guest_state_valid(vcpu)
    urg = ctx.get("cpu.unrestricted_guest") and has2(vmcs12(ctx), d.SECONDARY_EXEC_UNRESTRICTED_GUEST)
    if urg:
        return None
    failed = vmx_guest_state_invalid(vmcs12(ctx), ctx.get("vcpu.arch.cr0"), ctx.get("vcpu.arch.rflags"))
    if not failed:
        ctx.note("__vmx_guest_state_valid(): the segments pass")
        return None
    ctx.set("vmx.local.exit_reason", d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE)
    ctx.set("vmcs12.exit_qualification", d.ENTRY_FAIL_DEFAULT)
    mode = "protected" if ctx.get("vcpu.arch.cr0") & x86.X86_CR0_PE and not ctx.get("vcpu.arch.rflags") & x86.X86_EFLAGS_VM else "real/vm86"
    ctx.note(f"no unrestricted guest, {mode} mode: __vmx_guest_state_valid() -> {failed} fails: VM exit 33")
    return "invalid"


def _load_cr3(prefix, cr3_path, on_entry):
    return kvm_mmu.load_cr3_steps(
        step, prefix, "nested_vmx_load_cr3", NESTED_C, cr3_path,
        nested_tdp=nested_ept if on_entry else None,
        tdp_reads=("vmcs12.cpu_based_vm_exec_control", "vmcs12.secondary_vm_exec_control") if on_entry else (),
        features=lambda ctx: frozenset(ctx.get("cpu.features")), feature_reads=("cpu.features",),
        who="L2" if on_entry else "L1", host_tdp="cpu.ept", manual=SDM_EPT)


ENTRY_LOAD_CR3 = _load_cr3("vmx.prep", "vmcs12.guest_cr3", on_entry=True)


def _entry_failure(qualification):
    def action(ctx):
        ctx.set("vmx.local.exit_reason", d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE)
        ctx.set("vmcs12.exit_qualification", qualification)
        return None
    action.__doc__ = f"exit_reason = 33 | FAILED_VMENTRY, exit_qualification = {qualification}."
    return action


for _sid, _qual, _why in (("vmx.prep.fail_cr3", d.ENTRY_FAIL_DEFAULT, "an illegal guest CR3"),
                          ("vmx.prep.fail_pdpte", d.ENTRY_FAIL_PDPTE, "a PDPTE that does not load")):
    step(_sid, "nested_vmx_enter_non_root_mode", NESTED_C, "P12", reads=(),
         writes=("vmcs12.exit_qualification", "vmx.local.exit_reason"),
         reason=f"{_why} is a VM exit 33 with qualification {_qual}, after guest mode was entered",
         manual=SDM_FAIL)(_entry_failure(_qual))


@step("vmx.prep.guest_cr3", "prepare_vmcs02", NESTED_C, "P12",
      reads=("cpu.ept", "vmcs12.guest_cr3", "vmcs12.cpu_based_vm_exec_control",
             "vmcs12.secondary_vm_exec_control", "vcpu.arch.cr0", "vcpu.arch.cr4", "vcpu.arch.efer",
             "vmcs12.guest_pdptr0", "vmcs12.guest_pdptr1", "vmcs12.guest_pdptr2", "vmcs12.guest_pdptr3"),
      writes=("vmcs02.guest_cr3", "vmcs02.guest_pdptr0", "vmcs02.guest_pdptr1", "vmcs02.guest_pdptr2",
              "vmcs02.guest_pdptr3"),
      reason="with L0 EPT, GUEST_CR3 goes straight into vmcs02; with nested EPT and PAE the "
             "PDPTRs come from vmcs12, decidable only now that EFER and CRs are set", manual=SDM_EPT)
def prep_guest_cr3(ctx):
    """GUEST_CR3 and (nested EPT, PAE) GUEST_PDPTR0-3 into vmcs02."""
    if ctx.get("cpu.ept"):
        ctx.set("vmcs02.guest_cr3", ctx.get("vmcs12.guest_cr3"))
    if nested_ept(ctx) and x86.is_pae_paging(ctx.get("vcpu.arch.cr0"), ctx.get("vcpu.arch.cr4"),
                                             ctx.get("vcpu.arch.efer")):
        for i in range(4):
            ctx.set(f"vmcs02.guest_pdptr{i}", ctx.get(f"vmcs12.guest_pdptr{i}"))
    return None


def has_perf_global_ctrl(ctx) -> bool:
    """kvm_pmu_has_perf_global_ctrl(): the model's vPMU is version 2, so it always has the MSR."""
    return True


def write_perf_global_ctrl(ctx, field: str, control: int, controls: str) -> None:
    """With the load control, __kvm_emulate_msr_write(MSR_CORE_PERF_GLOBAL_CTRL, vmcs12's value).

    The value was vetted by the host/guest-state checks at VMLAUNCH, so KVM only
    WARN_ON_ONCE()s a failure here."""
    if not (ctx.get(controls) & control and has_perf_global_ctrl(ctx)):
        return
    value = ctx.get(field)
    if not x86.kvm_valid_perf_global_ctrl(global_ctrl_rsvd(ctx), value):
        ctx.note(f"WARN_ON_ONCE: kvm_pmu_set_msr() refuses IA32_PERF_GLOBAL_CTRL = {value:#x}")
        return
    ctx.set("vcpu.arch.pmu.global_ctrl", value)
    ctx.note(f"IA32_PERF_GLOBAL_CTRL = {value:#x} ({field})")


@step("vmx.prep.rsp_rip", "prepare_vmcs02", NESTED_C, "P10",
      reads=("vmcs12.guest_rsp", "vmcs12.guest_rip", "vmcs12.vm_entry_controls",
             "vmcs12.guest_ia32_perf_global_ctrl") + PMU_READS,
      writes=("vcpu.arch.rsp", "vcpu.rip", "vcpu.arch.pmu.global_ctrl"),
      reason="the tail of prepare_vmcs02(): IA32_PERF_GLOBAL_CTRL with LOAD_IA32_PERF_GLOBAL_CTRL "
             "(whatever nested_run_pending says), then L2's RSP and RIP last", manual=SDM_GUEST)
def prep_rsp_rip(ctx):
    """PERF_GLOBAL_CTRL (LOAD_IA32_PERF_GLOBAL_CTRL), kvm_rsp_write(guest_rsp), kvm_rip_write(guest_rip)."""
    # A failure here is WARN_ON_ONCE + ENTRY_FAIL_DEFAULT in the kernel; check G5b refused any
    # such value first, so the upstream flow never gets here with one.
    write_perf_global_ctrl(ctx, "vmcs12.guest_ia32_perf_global_ctrl", d.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL,
                           "vmcs12.vm_entry_controls")
    ctx.set("vcpu.arch.rsp", ctx.get("vmcs12.guest_rsp"))
    ctx.set("vcpu.rip", ctx.get("vmcs12.guest_rip"))
    return None


# --- MSR lists -------------------------------------------------------------

def load_msr_check(ctx, index: int, reserved: int):
    """nested_vmx_load_msr_check() with nested_vmx_msr_check_common(): why an entry is refused."""
    if index in (d.MSR_FS_BASE, d.MSR_GS_BASE):
        return "MSR_FS_BASE/MSR_GS_BASE may not be loaded from the list"
    if index == d.MSR_IA32_SMM_MONITOR_CTL:
        return "SMM is not supported"
    if ctx.get("vcpu.arch.apic_base") & d.X2APIC_ENABLE and index >> 8 == 0x8:
        return "an x2APIC MSR while L1's APIC is in x2APIC mode"
    if index in (d.MSR_IA32_UCODE_WRITE, d.MSR_IA32_UCODE_REV):
        return "a microcode MSR (SDM table 35-2)"
    if reserved:
        return f"reserved bits 63:32 of the entry's first word are {reserved:#x}"
    return None


def _write_tsc(ctx, value: int) -> None:
    """kvm_set_msr_common(MSR_IA32_TSC), not host-initiated: L1's TSC becomes `value`.

    adj = kvm_compute_l1_tsc_offset(value) - l1_tsc_offset; adjust_tsc_offset_guest(adj)
    -> kvm_vcpu_write_tsc_offset(l1_tsc_offset + adj), which in guest mode adds L2's offset
    back (kvm_calc_nested_tsc_offset()) and writes TSC_OFFSET of the current VMCS."""
    l1_offset = (value - ctx.get("cpu.host_tsc")) & x86.MASK64     # kvm_compute_l1_tsc_offset(), ratio 1:1
    adj = (l1_offset - ctx.get("vcpu.arch.l1_tsc_offset")) & x86.MASK64
    ctx.set("vcpu.arch.l1_tsc_offset", l1_offset)
    offset = l1_offset
    if ctx.get("vcpu.guest_mode") and ctx.get("vmcs12.cpu_based_vm_exec_control") & d.CPU_BASED_USE_TSC_OFFSETTING:
        offset = (offset + ctx.get("vmcs12.tsc_offset")) & x86.MASK64     # vmx_get_l2_tsc_offset()
    ctx.set("vcpu.arch.tsc_offset", offset)
    ctx.set("vmx->loaded_vmcs.tsc_offset", offset)
    ctx.set("vcpu.arch.ia32_tsc_adjust_msr", (ctx.get("vcpu.arch.ia32_tsc_adjust_msr") + adj) & x86.MASK64)


def emulate_msr_write(ctx, index: int, value: int):
    """kvm_emulate_msr_write(): __kvm_set_msr(), then vmx_set_msr() / kvm_set_msr_common().

    Returns None when the MSR was written, else why the write fails.  Only the MSRs of
    d.WRITABLE_MSRS are emulated; any other index fails as an MSR KVM does not emulate."""
    bits = host_virt_addr_bits(ctx)
    guest_mode = ctx.get("vcpu.guest_mode")
    if index >> 8 == 0x8:
        return "kvm_x2apic_msr_write() fails: L1's APIC is not in x2APIC mode"
    if index not in d.WRITABLE_MSRS:
        return "not an MSR this model's vCPU emulates (KVM_MSR_RET_UNSUPPORTED)"
    if index in (d.MSR_KERNEL_GS_BASE, d.MSR_LSTAR, d.MSR_CSTAR):
        if x86.is_noncanonical_msr_address(value, bits):
            return f"__kvm_set_msr(): {value:#x} is not canonical at {bits} bits"
    elif index in (d.MSR_IA32_SYSENTER_ESP, d.MSR_IA32_SYSENTER_EIP):
        value = x86.canonical_address(value, bits)        # __kvm_set_msr() makes it canonical
        if guest_mode:
            if "LM" not in ctx.get("cpu.features"):       # nested_vmx_truncate_sysenter_addr()
                value &= 0xFFFFFFFF
            field = "guest_sysenter_esp" if index == d.MSR_IA32_SYSENTER_ESP else "guest_sysenter_eip"
            ctx.set(f"vmcs12.{field}", value)             # vmx_set_msr() keeps vmcs12 in step
    elif index == d.MSR_IA32_SYSENTER_CS:
        value &= 0xFFFFFFFF
        if guest_mode:
            ctx.set("vmcs12.guest_sysenter_cs", value)
    elif index == d.MSR_TSC_AUX:
        if not {"RDTSCP", "RDPID"} & set(ctx.get("cpu.features")):
            return "__kvm_set_msr(): MSR_TSC_AUX without RDTSCP or RDPID in L1's CPUID"
        if value >> 32:
            return "__kvm_set_msr(): MSR_TSC_AUX bits 63:32 are reserved on an Intel vCPU"
    elif index == d.MSR_IA32_CR_PAT:
        if not x86.pat_valid(value):
            return f"kvm_set_msr_common(): {value:#x} is not a valid PAT (kvm_pat_valid())"
        ctx.set("vcpu.arch.pat", value)
        if guest_mode and ctx.get("vmcs12.vm_exit_controls") & d.VM_EXIT_SAVE_IA32_PAT:
            ctx.set("vmcs12.guest_ia32_pat", value)      # vmx_set_msr()
        return None
    elif index == d.MSR_CORE_PERF_GLOBAL_CTRL:
        rsvd = global_ctrl_rsvd(ctx)
        if not x86.kvm_valid_perf_global_ctrl(rsvd, value):
            return f"kvm_pmu_set_msr(): reserved bits {value & rsvd:#x} (kvm_valid_perf_global_ctrl())"
        ctx.set("vcpu.arch.pmu.global_ctrl", value)
        return None
    elif index == d.MSR_IA32_TSC:
        _write_tsc(ctx, value)
        return None
    ctx.set(f"vcpu.msr.{index:#x}", value)
    return None


def load_msr_list(ctx, addr_field, count_field):
    """nested_vmx_load_msr(): 0, or the 1-based index of the entry that failed."""
    addr, count = ctx.get(addr_field), ctx.get(count_field)
    for i in range(count):
        if i >= caps.MAX_MSR_LIST:
            return i + 1
        low, value = ctx.read_guest(addr + 16 * i), ctx.read_guest(addr + 16 * i + 8)
        if low is None or value is None:
            ctx.note(f"entry {i + 1} at {addr + 16 * i:#x} cannot be read")
            return i + 1
        index, reserved = low & 0xFFFFFFFF, low >> 32
        refused = load_msr_check(ctx, index, reserved)
        if refused:
            ctx.note(f"entry {i + 1} ({index:#x}) is refused by nested_vmx_load_msr_check(): {refused}")
            return i + 1
        failed = emulate_msr_write(ctx, index, value)
        if failed:
            ctx.note(f"entry {i + 1}: writing MSR {index:#x} = {value:#x} fails: {failed}")
            return i + 1
        ctx.note(f"entry {i + 1}: MSR {index:#x} = {value:#x}")
    return 0


MSR_READS = ("guest_memory", "vcpu.arch.apic_base", "vcpu.guest_mode", "cpu.features", "cpu.host_la57",
             "cpu.host_tsc", "vcpu.arch.l1_tsc_offset", "vcpu.arch.ia32_tsc_adjust_msr",
             "vmcs12.cpu_based_vm_exec_control", "vmcs12.tsc_offset", "vmcs12.vm_exit_controls") + PMU_READS
MSR_WRITES = tuple(f"vcpu.msr.{m:#x}" for m in d.MODELLED_MSRS) + (
    "vcpu.arch.pat", "vcpu.arch.pmu.global_ctrl", "vcpu.arch.l1_tsc_offset", "vcpu.arch.tsc_offset",
    "vcpu.arch.ia32_tsc_adjust_msr", "vmx->loaded_vmcs.tsc_offset", "vmcs12.guest_ia32_pat",
    "vmcs12.guest_sysenter_cs", "vmcs12.guest_sysenter_esp", "vmcs12.guest_sysenter_eip")


@step("vmx.enter.load_msr", "nested_vmx_load_msr", NESTED_C, "P13",
      reads=("vmcs12.vm_entry_msr_load_addr", "vmcs12.vm_entry_msr_load_count") + MSR_READS,
      writes=MSR_WRITES + ("vmcs12.exit_qualification", "vmx.local.exit_reason"),
      reason="MSRs load after all guest state, in L2's context; entries before a failing one "
             "stay written", manual=SDM_MSR)
def load_entry_msrs(ctx):
    """Write each VM-entry MSR-load entry; VM exit 34 at the first that fails."""
    failed = load_msr_list(ctx, "vmcs12.vm_entry_msr_load_addr", "vmcs12.vm_entry_msr_load_count")
    if not failed:
        return None
    ctx.set("vmx.local.exit_reason", d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_MSR_LOAD_FAIL)
    ctx.set("vmcs12.exit_qualification", failed)
    return "msr_fail"


@step("vmx.run.activity_state", "nested_vmx_run", NESTED_C, "P15",
      reads=("vmcs12.guest_activity_state", "vmcs12.vm_entry_intr_info_field",
             "vmcs12.cpu_based_vm_exec_control", "vmcs12.guest_rflags"),
      writes=("vcpu.arch.nested_run_pending", "vcpu.arch.mp_state"),
      reason="a vmcs12 that enters HLT with nothing to wake it halts the vCPU in L2 at once")
def activity_state(ctx):
    """guest_activity_state HLT with no event pending: halt in L2."""
    if ctx.get("vmcs12.guest_activity_state") != d.GUEST_ACTIVITY_HLT:
        return None
    execs = ctx.get("vmcs12.cpu_based_vm_exec_control")
    wake = (ctx.get("vmcs12.vm_entry_intr_info_field") & d.INTR_INFO_VALID_MASK
            or execs & d.CPU_BASED_NMI_WINDOW_EXITING
            or (execs & d.CPU_BASED_INTR_WINDOW_EXITING and ctx.get("vmcs12.guest_rflags") & x86.X86_EFLAGS_IF))
    if wake:
        return None
    ctx.set("vcpu.arch.nested_run_pending", 0)
    ctx.set("vcpu.arch.mp_state", "HALTED")
    ctx.note("L2 starts halted: kvm_emulate_halt_noskip()")
    return "halted"


# --- the failure labels of nested_vmx_enter_non_root_mode() -------------------

@step("vmx.fail.tsc_unwind", "nested_vmx_enter_non_root_mode", NESTED_C, "P9",
      reads=("vmcs12.cpu_based_vm_exec_control", "vmcs12.tsc_offset", "vcpu.arch.tsc_offset"),
      writes=("vcpu.arch.tsc_offset",),
      reason="vmentry_fail_vmexit_guest_mode: L2's TSC offset was loaded, take vmcs12's part off")
def tsc_unwind(ctx):
    """tsc_offset -= vmcs12->tsc_offset (with USE_TSC_OFFSETTING)."""
    if ctx.get("vmcs12.cpu_based_vm_exec_control") & d.CPU_BASED_USE_TSC_OFFSETTING:
        ctx.set("vcpu.arch.tsc_offset", (ctx.get("vcpu.arch.tsc_offset") - ctx.get("vmcs12.tsc_offset")) & x86.MASK64)
    return None


step("vmx.fail.leave_guest_mode", "leave_guest_mode", GUEST_MODE_FILE, "P8",
     reads=(), writes=("vcpu.guest_mode",),
     reason="vmentry_fail_vmexit_guest_mode: out of guest mode before vmcs01 and the host "
            "state")(set_guest_mode(False))

step("vmx.fail.switch_vmcs01", "vmx_switch_vmcs", NESTED_C, "P7",
     reads=(), writes=("vmx.current_vmcs",),
     reason="vmentry_fail_vmexit: back to vmcs01 before L1's host state is written into it",
     manual=SDM_FAIL)(vmcs_switch("vmcs01"))


@step("vmx.fail.set_exit_reason", "nested_vmx_enter_non_root_mode", NESTED_C, "P5",
      reads=("vmx.local.exit_reason",), writes=("vmcs12.vm_exit_reason",),
      reason="only the exit reason and qualification are written: no prepare_vmcs12(), the "
             "guest area and launch state are left alone", manual=SDM_FAIL)
def set_exit_reason(ctx):
    """vmcs12->vm_exit_reason = exit_reason.full (0x80000021 or 0x80000022)."""
    ctx.set("vmcs12.vm_exit_reason", ctx.get("vmx.local.exit_reason"))
    return None


step("vmx.run.vmentry_failed", "nested_vmx_run", NESTED_C, "P15",
     reads=(), writes=("vcpu.arch.nested_run_pending",),
     reason="label vmentry_failed: the entry did not happen, no run is pending")(set_run_pending(0))


# --- load_vmcs12_host_state() -------------------------------------------------

@step("vmx.host.efer", "load_vmcs12_host_state", NESTED_C, "P10",
      reads=("vmcs12.vm_exit_controls", "vmcs12.host_ia32_efer", "vcpu.arch.efer"),
      writes=("vcpu.arch.efer",),
      reason="EFER first: vmx_set_cr0() consults it", manual=SDM_EXIT)
def host_efer(ctx):
    """EFER from host_ia32_efer, or LMA/LME from the address-space size."""
    exit_ctl = ctx.get("vmcs12.vm_exit_controls")
    efer = ctx.get("vcpu.arch.efer")
    if exit_ctl & d.VM_EXIT_LOAD_IA32_EFER:
        efer = ctx.get("vmcs12.host_ia32_efer")
    elif exit_ctl & d.VM_EXIT_HOST_ADDR_SPACE_SIZE:
        efer |= x86.EFER_LMA | x86.EFER_LME
    else:
        efer &= ~(x86.EFER_LMA | x86.EFER_LME)
    ctx.set("vcpu.arch.efer", efer)
    return None


@step("vmx.host.rip_rsp_rflags", "load_vmcs12_host_state", NESTED_C, "P10",
      reads=("vmcs12.host_rsp", "vmcs12.host_rip"),
      writes=("vcpu.arch.rsp", "vcpu.rip", "vcpu.arch.rflags", "vcpu.arch.interrupt_shadow"),
      reason="L1 resumes at host_rip with RFLAGS = 0x2: a VM exit, not a return from VMLAUNCH",
      manual=SDM_EXIT)
def host_rip(ctx):
    """RSP, RIP from the host area; RFLAGS = 0x2; no interrupt shadow."""
    ctx.set("vcpu.arch.rsp", ctx.get("vmcs12.host_rsp"))
    ctx.set("vcpu.rip", ctx.get("vmcs12.host_rip"))
    ctx.set("vcpu.arch.rflags", x86.X86_EFLAGS_FIXED)
    ctx.set("vcpu.arch.interrupt_shadow", "none")
    return None


@step("vmx.host.cr0_cr4", "load_vmcs12_host_state", NESTED_C, "P10",
      reads=("vmcs12.host_cr0", "vmcs12.host_cr4"), writes=("vcpu.arch.cr0", "vcpu.arch.cr4"),
      reason="L1's CR0 and CR4 from vmcs12's host area, before its CR3 is loaded", manual=SDM_EXIT)
def host_cr0_cr4(ctx):
    """vmx_set_cr0(host_cr0), vmx_set_cr4(host_cr4)."""
    ctx.set("vcpu.arch.cr0", ctx.get("vmcs12.host_cr0"))
    ctx.set("vcpu.arch.cr4", ctx.get("vmcs12.host_cr4"))
    return None


@step("vmx.host.ept_uninit_mmu_context", "nested_ept_uninit_mmu_context", NESTED_C, "P11",
      reads=(), writes=("vcpu.arch.mmu",),
      reason="L1 runs on root_mmu; before host CR3 so its role is L1's")
def ept_uninit_mmu_context(ctx):
    """vcpu->arch.mmu = &root_mmu."""
    ctx.set("vcpu.arch.mmu", "root_mmu")
    return None


HOST_LOAD_CR3 = _load_cr3("vmx.host", "vmcs12.host_cr3", on_entry=False)


@step("vmx.host.abort", "nested_vmx_abort", NESTED_C, "P12",
      reads=(), writes=("vcpu.requests",),
      reason="a VMX abort: KVM has no way to report it, so it resets the guest with a triple fault",
      manual="Intel SDM vol. 3C, 28.7 VMX Aborts")
def vmx_abort(ctx):
    """kvm_make_request(KVM_REQ_TRIPLE_FAULT)."""
    ctx.add_to("vcpu.requests", "KVM_REQ_TRIPLE_FAULT")
    return None


step("vmx.host.tlb_flush", "nested_vmx_transition_tlb_flush", NESTED_C, "P11",
     reads=TLB_READS, writes=("vcpu.requests",),
     reason="flush for the way back to L1", manual=SDM_EPT)(_tlb_flush(False))


@step("vmx.host.pat_dr7", "load_vmcs12_host_state", NESTED_C, "P10",
      reads=("vmcs12.vm_exit_controls", "vmcs12.host_ia32_pat", "vmcs12.host_ia32_perf_global_ctrl")
      + PMU_READS,
      writes=("vcpu.arch.pat", "vcpu.arch.pmu.global_ctrl", "vcpu.arch.dr7"),
      reason="host PAT with LOAD_IA32_PAT, host PERF_GLOBAL_CTRL with LOAD_IA32_PERF_GLOBAL_CTRL "
             "(both checked at VMLAUNCH); DR7 = 0x400 on every VM exit", manual=SDM_EXIT)
def host_pat_dr7(ctx):
    """PAT (LOAD_IA32_PAT), PERF_GLOBAL_CTRL (LOAD_IA32_PERF_GLOBAL_CTRL); DR7 = 0x400."""
    if ctx.get("vmcs12.vm_exit_controls") & d.VM_EXIT_LOAD_IA32_PAT:
        ctx.set("vcpu.arch.pat", ctx.get("vmcs12.host_ia32_pat"))
    write_perf_global_ctrl(ctx, "vmcs12.host_ia32_perf_global_ctrl", d.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL,
                           "vmcs12.vm_exit_controls")
    # (the host segment registers, loaded here in the kernel, are not modelled)
    ctx.set("vcpu.arch.dr7", x86.DR7_FIXED_1)
    return None


@step("vmx.host.exit_msr_load", "nested_vmx_load_msr", NESTED_C, "P13",
      reads=("vmcs12.vm_exit_msr_load_addr", "vmcs12.vm_exit_msr_load_count") + MSR_READS,
      writes=MSR_WRITES, reason="the VM-exit MSR-load list is the last part of L1's host state",
      manual=SDM_EXIT)
def load_exit_msrs(ctx):
    """Write the VM-exit MSR-load list; a failure is a VMX abort."""
    if load_msr_list(ctx, "vmcs12.vm_exit_msr_load_addr", "vmcs12.vm_exit_msr_load_count"):
        return "abort"
    return None


# --- L2 runs; a VM exit goes back to L1 -----------------------------------------

def hardware_entry_failure(v, maxphyaddr, pae_ept, virt_addr_bits=48):
    """What the CPU itself rejects when it enters vmcs02 (a subset of SDM 27.3.1); canonical
    means canonical at the CPU's linear-address width (57 bits on an LA57 host)."""
    rflags = v("guest_rflags")
    if not rflags & x86.X86_EFLAGS_FIXED or rflags & (x86.rsvd_bits(22, 63) | 1 << 15 | 1 << 5 | 1 << 3):
        return "guest RFLAGS reserved bits (bit 1 must be 1)", d.ENTRY_FAIL_DEFAULT
    if not (canonical(v("guest_sysenter_esp"), virt_addr_bits)
            and canonical(v("guest_sysenter_eip"), virt_addr_bits)):
        return "guest SYSENTER_ESP/EIP not canonical", d.ENTRY_FAIL_DEFAULT
    if not v("guest_ldtr_ar_bytes") & d.VMX_AR_UNUSABLE_MASK and v("guest_ldtr_selector") & 4:
        return "a usable LDTR with the TI flag set", d.ENTRY_FAIL_DEFAULT
    # SDM 27.3.1.2, "Base-address fields": TR, FS and GS bases canonical, LDTR's if usable;
    # bits 63:32 of CS's base zero, and of SS's, DS's and ES's if usable
    for seg in ("tr", "fs", "gs"):
        if not canonical(v(f"guest_{seg}_base"), virt_addr_bits):
            return f"guest {seg.upper()} base not canonical", d.ENTRY_FAIL_DEFAULT
    if not v("guest_ldtr_ar_bytes") & d.VMX_AR_UNUSABLE_MASK and not canonical(v("guest_ldtr_base"), virt_addr_bits):
        return "a usable LDTR whose base is not canonical", d.ENTRY_FAIL_DEFAULT
    if v("guest_cs_base") >> 32:
        return "guest CS base bits 63:32 not zero", d.ENTRY_FAIL_DEFAULT
    for seg in ("ss", "ds", "es"):
        if not v(f"guest_{seg}_ar_bytes") & d.VMX_AR_UNUSABLE_MASK and v(f"guest_{seg}_base") >> 32:
            return f"usable guest {seg.upper()} base bits 63:32 not zero", d.ENTRY_FAIL_DEFAULT
    # SDM 27.3.1.3, "Checks on Guest Descriptor-Table Registers": GDTR and IDTR bases
    # canonical, bits 31:16 of their limits zero
    for dt in ("gdtr", "idtr"):
        if not canonical(v(f"guest_{dt}_base"), virt_addr_bits):
            return f"guest {dt.upper()} base not canonical", d.ENTRY_FAIL_DEFAULT
        if v(f"guest_{dt}_limit") >> 16:
            return f"guest {dt.upper()} limit bits 31:16 not zero", d.ENTRY_FAIL_DEFAULT
    if pae_ept:
        for i in range(4):
            pdpte = v(f"guest_pdptr{i}")
            if pdpte & 1 and pdpte & x86.pdptr_rsvd_bits(maxphyaddr):
                return f"GUEST_PDPTR{i} has reserved bits", d.ENTRY_FAIL_PDPTE
    return None


def tpr_threshold_vmfail(ctx):
    """SDM 27.2.1.1: with "use TPR shadow" 1 and "virtualize APIC accesses" and "virtual-interrupt
    delivery" both 0, bits 3:0 of the TPR threshold must not exceed bits 7:4 of VTPR, byte 0x80
    of the virtual-APIC page.  KVM makes this check only with warn_on_missed_cc
    (nested_vmx_check_tpr_shadow_controls()), so the CPU makes it on vmcs02: prepare_vmcs02_early()
    copies vmcs12's TPR threshold into vmcs02 and nested_get_vmcs12_pages() maps L1's
    virtual-APIC page.  Returns why the CPU VMfails, or None."""
    v = vmcs12(ctx)
    if not has(v, d.CPU_BASED_TPR_SHADOW):
        return None
    if has2(v, d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) or has2(v, d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY):
        return None
    vtpr = ctx.read_guest(v("virtual_apic_page_addr") + 0x80, 1)
    if vtpr is None:
        # kvm_vcpu_map() of the page fails: not modelled (KVM clears the TPR shadow or writes an
        # illegal VIRTUAL_APIC_PAGE_ADDR); the model compares no vTPR then
        ctx.note("the virtual-APIC page has no memory: no vTPR to compare (not modelled)")
        return None
    threshold = v("tpr_threshold") & 0xF
    if threshold > vtpr >> 4:
        return (f"TPR threshold bits 3:0 ({threshold:#x}) exceed vTPR bits 7:4 ({vtpr >> 4:#x}, vTPR {vtpr:#x} "
                f"at {v('virtual_apic_page_addr') + 0x80:#x}), SDM 27.2.1.1")
    return None


@step("vmx.l2.vcpu_run", "vmx_vcpu_run", VMX_C, "P15",
      reads=("vmcs12.*", "guest_memory", "l2.exit", "cpu.maxphyaddr", "vcpu.arch.cr0", "vcpu.arch.cr4",
             "vcpu.arch.efer", "vcpu.rip", "cpu.vmcs02_vmfail", "cpu.host_la57", "cpu.features"),
      writes=("vcpu.arch.nested_run_pending", "vmcs02.vm_exit_reason", "vmcs02.exit_qualification",
              "vcpu.requests"),
      reason="the CPU enters vmcs02 and makes its own checks; only after this first run is "
             "nested_run_pending cleared", manual=SDM_GUEST)
def l2_vcpu_run(ctx):
    """The CPU enters L2 from vmcs02 (or refuses it), then L2 runs until VMCALL."""
    ctx.set("vcpu.arch.nested_run_pending", 0)
    ctx.remove_from("vcpu.requests", "KVM_REQ_TLB_FLUSH_GUEST", "KVM_REQ_TLB_FLUSH_CURRENT")
    pae_ept = nested_ept(ctx) and x86.is_pae_paging(ctx.get("vcpu.arch.cr0"), ctx.get("vcpu.arch.cr4"),
                                                    ctx.get("vcpu.arch.efer"))
    if ctx.get("cpu.vmcs02_vmfail"):
        ctx.note("the CPU VMfails vmcs02 (error 7): a misconfiguration KVM's checks missed")
        return "hw_vmfail"
    missed = tpr_threshold_vmfail(ctx)
    if missed:
        ctx.note(f"the CPU VMfails vmcs02 (error 7): {missed}")
        return "hw_vmfail"
    failure = hardware_entry_failure(vmcs12(ctx), ctx.get("cpu.maxphyaddr"), pae_ept, host_virt_addr_bits(ctx))
    if failure:
        why, qual = failure
        ctx.set("vmcs02.vm_exit_reason", d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE)
        ctx.set("vmcs02.exit_qualification", qual)
        ctx.note(f"the CPU rejects vmcs02 ({why}): failed VM entry, reason 33")
        return None
    if ctx.get("l2.exit") == "none":
        ctx.note("L2 is running; set l2.exit='VMCALL' to follow it back to L1")
        return "running"
    ctx.set("vmcs02.vm_exit_reason", d.EXIT_REASON_VMCALL)
    ctx.set("vmcs02.exit_qualification", 0)
    ctx.note(f"L2 executes VMCALL at {ctx.get('vcpu.rip'):#x}: VM exit 18 to L0")
    return None


@step("vmx.l2.reflect_vmexit", "nested_vmx_reflect_vmexit", NESTED_C, "P15",
      reads=("vmcs02.vm_exit_reason",), writes=(),
      reason="VMCALL and a failed VM entry always go to L1", manual=SDM_EXIT)
def reflect_vmexit(ctx):
    """nested_vmx_l1_wants_exit(): reflect the exit to L1."""
    reason = ctx.get("vmcs02.vm_exit_reason")
    ctx.note(f"exit reason {reason & 0xFFFF}{' (failed VM entry)' if reason >> 31 else ''}: L1 handles it")
    return None


step("vmx.exit.service_tlb_flush", "kvm_service_local_tlb_flush_requests", X86_C, "P8",
     reads=("vcpu.requests",), writes=("vcpu.requests",),
     reason="the flushes requested while L2 ran target L2's context, so they are done before "
            "leave_guest_mode() and the switch to L1")(service_local_tlb_flush_requests("L2"))


step("vmx.exit.leave_guest_mode", "leave_guest_mode", GUEST_MODE_FILE, "P8",
     reads=(), writes=("vcpu.guest_mode",),
     reason="out of guest mode before vmcs01 and the host state")(set_guest_mode(False))


@step("vmx.exit.restore_tsc", "__nested_vmx_vmexit", NESTED_C, "P9",
      reads=("vmcs12.cpu_based_vm_exec_control", "vcpu.arch.l1_tsc_offset"),
      writes=("vcpu.arch.tsc_offset",), reason="L1's TSC offset comes back")
def exit_restore_tsc(ctx):
    """tsc_offset = l1_tsc_offset (with USE_TSC_OFFSETTING)."""
    if ctx.get("vmcs12.cpu_based_vm_exec_control") & d.CPU_BASED_USE_TSC_OFFSETTING:
        ctx.set("vcpu.arch.tsc_offset", ctx.get("vcpu.arch.l1_tsc_offset"))
    return None


@step("vmx.exit.sync_vmcs02_to_vmcs12", "sync_vmcs02_to_vmcs12", NESTED_C, "P10",
      reads=("vcpu.arch.cr0", "vcpu.arch.cr4", "vcpu.arch.rsp", "vcpu.rip", "vcpu.arch.rflags",
             "vcpu.arch.cr3", "cpu.ept"),
      writes=("vmcs12.guest_cr0", "vmcs12.guest_cr4", "vmcs12.guest_rsp", "vmcs12.guest_rip",
              "vmcs12.guest_rflags", "vmcs12.guest_cr3"),
      reason="L2's state goes back into vmcs12 while the vCPU still holds it", manual=SDM_EXIT)
def sync_vmcs02_to_vmcs12(ctx):
    """Copy L2's CR0, CR4, RSP, RIP, RFLAGS (and CR3 with EPT) into vmcs12."""
    for src, dst in (("vcpu.arch.cr0", "guest_cr0"), ("vcpu.arch.cr4", "guest_cr4"),
                     ("vcpu.arch.rsp", "guest_rsp"), ("vcpu.rip", "guest_rip"),
                     ("vcpu.arch.rflags", "guest_rflags")):
        ctx.set(f"vmcs12.{dst}", ctx.get(src))
    if ctx.get("cpu.ept"):
        ctx.set("vmcs12.guest_cr3", ctx.get("vcpu.arch.cr3"))
    return None


@step("vmx.exit.prepare_vmcs12", "prepare_vmcs12", NESTED_C, "P2",
      reads=("vmcs02.vm_exit_reason", "vmcs02.exit_qualification", "vmcs12.vm_entry_intr_info_field"),
      writes=("vmcs12.vm_exit_reason", "vmcs12.exit_qualification", "vmcs12.launch_state",
              "vmcs12.vm_entry_intr_info_field"),
      reason="the exit reason and qualification for L1; launch_state becomes 1 only on a "
             "VM exit that is not a failed VM entry", manual=SDM_EXIT)
def prepare_vmcs12(ctx):
    """vm_exit_reason, exit_qualification; launch_state = 1 unless the entry failed."""
    reason = ctx.get("vmcs02.vm_exit_reason")
    ctx.set("vmcs12.vm_exit_reason", reason)
    ctx.set("vmcs12.exit_qualification", ctx.get("vmcs02.exit_qualification"))
    if not reason & d.VMX_EXIT_REASONS_FAILED_VMENTRY:
        ctx.set("vmcs12.launch_state", 1)
        ctx.set("vmcs12.vm_entry_intr_info_field",
                ctx.get("vmcs12.vm_entry_intr_info_field") & ~d.INTR_INFO_VALID_MASK)
    return None


@step("vmx.exit.drop_events", "__nested_vmx_vmexit", NESTED_C, "P14",
      reads=(), writes=("vcpu.arch.nmi_injected", "vcpu.arch.exception"),
      reason="after prepare_vmcs12() captured them: events picked up for L2 must not reach L1")
def exit_drop_events(ctx):
    """nmi_injected = false; clear the exception and interrupt queues."""
    ctx.set("vcpu.arch.nmi_injected", False)
    ctx.set("vcpu.arch.exception", "none")
    return None


step("vmx.exit.switch_vmcs01", "vmx_switch_vmcs", NESTED_C, "P7",
     reads=(), writes=("vmx.current_vmcs",),
     reason="after vmcs02 was read into vmcs12, before L1's host state is loaded",
     manual=SDM_EXIT)(vmcs_switch("vmcs01"))


step("vmx.run.check_triple_fault", "vcpu_enter_guest", "arch/x86/kvm/x86.c", "P15",
     reads=("vcpu.requests",), writes=("kvm_run.exit_reason", "vcpu.requests"),
     reason="a VMX abort's triple fault outside guest mode shuts the VM down")(check_triple_fault)


# --- a late VMfail: the CPU rejects vmcs02 after KVM's checks passed ------------------

@step("vmx.late.vmfail", "nested_vmx_fail", NESTED_C, "P15",
      reads=("vmcs01.guest_rip", "vmcs01.guest_rsp", "vmcs01.guest_rflags"),
      writes=("vcpu.rip", "vcpu.arch.rsp", "vcpu.arch.rflags", "vmcs12.vm_instruction_error",
              "vcpu.arch.exception"),
      reason="L2's state is already loaded, so the VMfail is reported through the exit path: "
             "back on vmcs01, L1's RIP and RFLAGS are vmcs01's, and RIP moves past VMLAUNCH",
      manual=SDM_ENTRY)
def late_vmfail(ctx):
    """nested_vmx_fail(7) on vmcs01's registers: ZF=1, error 7, RIP past VMLAUNCH."""
    flags = fail_valid_flags(ctx.get("vmcs01.guest_rflags"))
    ctx.set("vcpu.arch.rflags", flags)
    ctx.set("vcpu.arch.rsp", ctx.get("vmcs01.guest_rsp"))
    ctx.set("vmcs12.vm_instruction_error", d.VMXERR_ENTRY_INVALID_CONTROL_FIELD)
    ctx.set("vcpu.rip", (ctx.get("vmcs01.guest_rip") + d.VMLAUNCH_INSN_LEN) & x86.MASK64)
    if flags & x86.X86_EFLAGS_TF:
        ctx.set("vcpu.arch.exception", "#DB")
    return None


@step("vmx.late.restore_host_state", "nested_vmx_restore_host_state", NESTED_C, "P12",
      reads=("vmcs01.guest_ia32_efer", "vmcs01.cr0_read_shadow", "vmcs01.cr4_read_shadow",
             "vmx.nested.pre_vmenter_cr3"),
      writes=("vcpu.arch.efer", "vcpu.arch.cr0", "vcpu.arch.cr4", "vcpu.arch.cr3", "vcpu.arch.mmu",
              "vcpu.arch.gva_walk.cpu_role", "vcpu.arch.root_mmu.root_role.guest_mode",
              "vcpu.arch.root_mmu.root.pgd"),
      reason="a late VMfail restores L1 as it was before VMLAUNCH, not vmcs12's host state: "
             "CR0/CR4 from vmcs01's read shadows, EFER from vmcs01, CR3 from pre_vmenter_cr3")
def restore_host_state(ctx):
    """L1's EFER, CR0, CR4 from vmcs01; CR3 = pre_vmenter_cr3; the MMU reset for L1."""
    efer, cr0, cr4 = (ctx.get("vmcs01.guest_ia32_efer"), ctx.get("vmcs01.cr0_read_shadow"),
                      ctx.get("vmcs01.cr4_read_shadow"))
    for reg, value in (("efer", efer), ("cr0", cr0), ("cr4", cr4)):
        ctx.set(f"vcpu.arch.{reg}", value)
    cr3 = ctx.get("vmx.nested.pre_vmenter_cr3")
    ctx.set("vcpu.arch.cr3", cr3)
    mode = x86.paging_mode(cr0, cr4, efer)
    ctx.set("vcpu.arch.mmu", "root_mmu")
    ctx.set("vcpu.arch.gva_walk.cpu_role", mode)
    ctx.set("vcpu.arch.root_mmu.root_role.guest_mode", 0)
    ctx.set("vcpu.arch.root_mmu.root.pgd", cr3)
    ctx.note(f"kvm_mmu_reset_context(): root_mmu back on L1's CR3 {cr3:#x} ({mode} paging)")
    return None
