"""The vmx cases of oracle-public.jsonl, translated into model scenarios."""

from nsvm_model import x86
from nsvm_model.vmx import caps, defs as d
from nsvm_model.vmx.scenarios import (EPT_ROOT, L1_CR0, L1_CR3, L1_CR4, L1_EFER, MSR_LOAD_GPA, PAE_PD,
                                      PAE_PDPT, msr_entries)

BASE = "kut_init_vmcs"
RFLAGS0 = {"vmcs12.guest_rflags": 0}        # kut_init_vmcs+GUEST_RFLAGS=0
SECONDARY = caps.PROCBASED_LOW | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS
EXIT_DEFAULT = caps.EXIT_LOW | d.VM_EXIT_LOAD_IA32_EFER | d.VM_EXIT_HOST_ADDR_SPACE_SIZE | d.VM_EXIT_LOAD_IA32_PAT
ENTRY_DEFAULT = caps.ENTRY_LOW | d.VM_ENTRY_LOAD_IA32_EFER | d.VM_ENTRY_IA32E_MODE

# id -> (l2_mode, field changes, guest-memory writes)
TRANSLATION = {
    "vmx-ctl-cr3-target-count-ffffffff": ("long", {**RFLAGS0, "vmcs12.cr3_target_count": 0xFFFFFFFF}, {}),
    "vmx-ctl-io-bitmap-a-unaligned": ("long", {
        **RFLAGS0, "vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_USE_IO_BITMAPS,
        "vmcs12.io_bitmap_a": 0xFFF}, {}),
    "vmx-ctl-eptp-memtype-2": ("long", {
        **RFLAGS0, "vmcs12.cpu_based_vm_exec_control": SECONDARY,
        "vmcs12.secondary_vm_exec_control": d.SECONDARY_EXEC_ENABLE_EPT,
        "vmcs12.ept_pointer": EPT_ROOT | d.VMX_EPTP_PWL_4 | 2}, {}),
    "vmx-ctl-unrestricted-guest-without-ept": ("long", {
        **RFLAGS0, "vmcs12.cpu_based_vm_exec_control": SECONDARY,
        "vmcs12.secondary_vm_exec_control": d.SECONDARY_EXEC_UNRESTRICTED_GUEST}, {}),
    "vmx-ctl-evinj-nmi-wrong-vector": ("long", {
        **RFLAGS0, "vmcs12.vm_entry_intr_info_field": d.INTR_INFO_VALID_MASK | d.INTR_TYPE_NMI_INTR | 0}, {}),
    "vmx-ctl-entry-msr-load-addr-unaligned": ("long", {
        **RFLAGS0, "vmcs12.vm_entry_msr_load_count": 1, "vmcs12.vm_entry_msr_load_addr": MSR_LOAD_GPA | 1}, {}),
    "vmx-host-cr0-pe-clear": ("long", {**RFLAGS0, "vmcs12.host_cr0": L1_CR0 & ~x86.X86_CR0_PE}, {}),
    "vmx-host-cr4-vmxe-clear": ("long", {**RFLAGS0, "vmcs12.host_cr4": L1_CR4 & ~x86.X86_CR4_VMXE}, {}),
    "vmx-host-cr3-bit63": ("long", {**RFLAGS0, "vmcs12.host_cr3": L1_CR3 | 1 << 63}, {}),
    "vmx-host-pat-pa0-2": ("long", {**RFLAGS0, "vmcs12.vm_exit_controls": EXIT_DEFAULT | d.VM_EXIT_LOAD_IA32_PAT,
                                    "vmcs12.host_ia32_pat": 0x2}, {}),
    "vmx-host-efer-reserved-bit1": ("long", {**RFLAGS0, "vmcs12.vm_exit_controls": EXIT_DEFAULT | d.VM_EXIT_LOAD_IA32_EFER,
                                             "vmcs12.host_ia32_efer": L1_EFER | 0x2}, {}),
    "vmx-host-sel-tr-zero": ("long", {**RFLAGS0, "vmcs12.host_tr_selector": 0}, {}),
    "vmx-host-sel-ss-zero-64bit-host": ("long", {**RFLAGS0, "vmcs12.host_ss_selector": 0}, {}),
    "vmx-host-rip-noncanonical": ("long", {**RFLAGS0, "vmcs12.host_rip": 0xAAAAAAAAAAAAAAAA}, {}),
    "vmx-guest-dr7-bit32-load-dbgctls": ("long", {
        "vmcs12.vm_entry_controls": ENTRY_DEFAULT | d.VM_ENTRY_LOAD_DEBUG_CONTROLS, "vmcs12.guest_dr7": 1 << 32}, {}),
    "vmx-guest-sysenter-esp-noncanonical": ("long", {"vmcs12.guest_sysenter_esp": 0xAAAAAAAAAAAAAAAA}, {}),
    "vmx-guest-ldtr-ti-unusable": ("long", {"vmcs12.guest_ldtr_ar_bytes": 0x82 | d.VMX_AR_UNUSABLE_MASK,
                                            "vmcs12.guest_ldtr_selector": 0x4}, {}),
    "vmx-pae-pdpte0-bit52-no-ept": ("pae", {}, {PAE_PDPT: PAE_PD | 1 | 1 << 52}),
    "vmx-msr-load-fs-base": ("long", {"vmcs12.vm_entry_msr_load_count": 1,
                                      "vmcs12.vm_entry_msr_load_addr": MSR_LOAD_GPA},
                             msr_entries(MSR_LOAD_GPA, [(d.MSR_FS_BASE, 0)])),
}
