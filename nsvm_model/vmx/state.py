"""The nVMX vCPU state at the moment L1's VMLAUNCH/VMRESUME exits to KVM.

vmcs12 is KVM's cached copy (vmx->nested.cached_vmcs12), with struct
vmcs12 field names; vmcs01/vmcs02 hold the fields the flow touches;
vmx.current_vmcs is vmx->loaded_vmcs.  vmx.local.* are kernel locals the
flow branches on (the `launch` argument, the error number, the exit reason).
"""

from __future__ import annotations

from .. import kvm_mmu, x86
from ..transitions import vcpu_state
from . import caps, defs as d
from .scenarios import DEFAULT_PAT

VMCS_FIELDS = ("guest_rip", "guest_rsp", "guest_rflags", "guest_ia32_efer", "pin_based_vm_exec_control", "cpu_based_vm_exec_control", "secondary_vm_exec_control",
               "vm_entry_controls", "vm_exit_controls", "vm_entry_intr_info_field", "tsc_offset",
               "guest_cr3", "guest_pdptr0", "guest_pdptr1", "guest_pdptr2", "guest_pdptr3",
               "msr_bitmap", "cr0_read_shadow", "cr4_read_shadow", "vm_exit_reason", "exit_qualification")


def _vmcs01(v) -> dict:
    """What L0 itself runs L1 with (representative values)."""
    secondary = 0
    if v["cpu.ept"]:
        secondary |= d.SECONDARY_EXEC_ENABLE_EPT
    if v["cpu.vpid"]:
        secondary |= d.SECONDARY_EXEC_ENABLE_VPID
    if v["cpu.unrestricted_guest"]:
        secondary |= d.SECONDARY_EXEC_UNRESTRICTED_GUEST
    return {
        "vmcs01.pin_based_vm_exec_control": caps.PINBASED_LOW | d.PIN_BASED_EXT_INTR_MASK
        | d.PIN_BASED_NMI_EXITING | d.PIN_BASED_VIRTUAL_NMIS,
        "vmcs01.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_USE_MSR_BITMAPS
        | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS | d.CPU_BASED_HLT_EXITING,
        "vmcs01.secondary_vm_exec_control": secondary,
        "vmcs01.vm_exit_controls": caps.EXIT_LOW | d.VM_EXIT_HOST_ADDR_SPACE_SIZE | d.VM_EXIT_LOAD_IA32_EFER,
        "vmcs01.vm_entry_controls": caps.ENTRY_LOW | d.VM_ENTRY_IA32E_MODE | d.VM_ENTRY_LOAD_IA32_EFER,
        "vmcs01.guest_cr3": v["l1.cr3"],
        "vmcs01.msr_bitmap": "__pa(vmx->vmcs01.msr_bitmap)",
        "vmcs01.cr0_read_shadow": v["l1.cr0"], "vmcs01.cr4_read_shadow": v["l1.cr4"],
        "vmcs01.vm_exit_reason": 20 if v["l1.instruction"] == "VMLAUNCH" else 24,
        # L1's registers as the CPU saved them when VMLAUNCH exited to L0
        "vmcs01.guest_rip": v["l1.rip"], "vmcs01.guest_rsp": v["l1.rsp"],
        "vmcs01.guest_rflags": v["l1.rflags"], "vmcs01.guest_ia32_efer": v["l1.efer"],
    }


def initial_state(sc) -> dict:
    v = sc.values
    state = {p: val for p, val in v.items() if p.startswith(("vmcs12.", "cpu.", "l2."))}
    state.update({f"{vmcs}.{f}": 0 for vmcs in ("vmcs01", "vmcs02") for f in VMCS_FIELDS})
    state.update(_vmcs01(v))
    state.update({
        "vmx.current_vmcs": "vmcs01",
        "vmx.nested.vmxon": v["l1.vmxon"],
        "vmx.nested.current_vmptr": v["l1.current_vmptr"],
        "vmx.nested.pre_vmenter_cr3": 0,
        "vmx.nested.last_vpid": 0,
        "vmx.local.launch": int(v["l1.instruction"] == "VMLAUNCH"),
        "vmx.local.vm_instruction_error": 0,
        "vmx.local.exit_reason": 0,
        "vcpu.cpl": v["l1.cpl"],
        "vcpu.arch.interrupt_shadow": "MOV_SS" if v["l1.mov_ss_blocking"] else "none",
        "vcpu.arch.rax": 0,
        "vcpu.arch.dr7": x86.DR7_FIXED_1,
        "vcpu.arch.pat": v["l1.pat"],
        "vcpu.arch.mp_state": "RUNNABLE",
        "vcpu.arch.apic_base": v["l1.apic_base"],
        "vcpu.arch.ia32_tsc_adjust_msr": 0,
        # kvm_pmu_refresh(): at RESET every general-purpose counter is enabled
        "vcpu.arch.pmu.global_ctrl": (1 << v["cpu.pmu_gp_counters"]) - 1,
    })
    state.update(vcpu_state(v))
    state.update({f"vcpu.msr.{m:#x}": 0 for m in d.MODELLED_MSRS})
    state.update(kvm_mmu.mmu_state(v["cpu.ept"], x86.paging_mode(v["l1.cr0"], v["l1.cr4"], v["l1.efer"]),
                                   v["l1.cr3"]))
    return state


def derive(state) -> dict:
    return {}


def classify(end: str, final) -> tuple:
    kind, _, failure = end[len("end:"):].partition("/")
    reason = final["vmcs12.vm_exit_reason"]
    if kind == "vmfail_valid":
        return f"vmfail_valid:{final['vmcs12.vm_instruction_error']}", failure or None
    if kind == "vmexit":
        return f"vmexit:{reason & 0xFFFF}", failure or None
    if kind == "entered" and reason & d.VMX_EXIT_REASONS_FAILED_VMENTRY:
        return f"vmexit:{reason & 0xFFFF}", "hardware"
    if kind == "entered":
        return "l2_runs", None
    return kind, failure or None
