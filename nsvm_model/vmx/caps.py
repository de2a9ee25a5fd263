"""The VMX capabilities KVM offers L1 (nested_vmx_setup_ctls_msrs() defaults).

low = bits that must be 1 (the TRUE capability MSRs), high = bits that may
be 1.  The high masks assume a host that has every feature KVM can expose
(the real values are the host's capabilities ANDed with KVM's list).
"""

from __future__ import annotations

from . import defs as d

FEATURES = ("VMX", "LM", "NX", "XSAVE", "SMEP", "SMAP", "FSGSBASE", "UMIP", "PCID", "LA57",
            "PKU", "LAM", "FRED", "SHSTK", "IBT", "FXSR_OPT", "AUTOIBRS", "RDTSCP", "RDPID")

PINBASED_LOW = d.PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR
PINBASED_HIGH = (PINBASED_LOW | d.PIN_BASED_EXT_INTR_MASK | d.PIN_BASED_NMI_EXITING
                 | d.PIN_BASED_VIRTUAL_NMIS | d.PIN_BASED_POSTED_INTR | d.PIN_BASED_VMX_PREEMPTION_TIMER)

PROCBASED_LOW = d.CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR & ~(d.CPU_BASED_CR3_LOAD_EXITING
                                                        | d.CPU_BASED_CR3_STORE_EXITING)
PROCBASED_HIGH = (d.CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR | d.CPU_BASED_INTR_WINDOW_EXITING
                  | d.CPU_BASED_NMI_WINDOW_EXITING | d.CPU_BASED_USE_TSC_OFFSETTING
                  | d.CPU_BASED_HLT_EXITING | d.CPU_BASED_INVLPG_EXITING | d.CPU_BASED_MWAIT_EXITING
                  | d.CPU_BASED_CR3_LOAD_EXITING | d.CPU_BASED_CR3_STORE_EXITING
                  | d.CPU_BASED_CR8_LOAD_EXITING | d.CPU_BASED_CR8_STORE_EXITING
                  | d.CPU_BASED_MOV_DR_EXITING | d.CPU_BASED_UNCOND_IO_EXITING
                  | d.CPU_BASED_USE_IO_BITMAPS | d.CPU_BASED_MONITOR_TRAP_FLAG
                  | d.CPU_BASED_MONITOR_EXITING | d.CPU_BASED_RDPMC_EXITING | d.CPU_BASED_RDTSC_EXITING
                  | d.CPU_BASED_PAUSE_EXITING | d.CPU_BASED_TPR_SHADOW
                  | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS | d.CPU_BASED_USE_MSR_BITMAPS)

SECONDARY_LOW = 0
SECONDARY_ALWAYS = (d.SECONDARY_EXEC_DESC | d.SECONDARY_EXEC_ENABLE_RDTSCP
                    | d.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | d.SECONDARY_EXEC_WBINVD_EXITING
                    | d.SECONDARY_EXEC_APIC_REGISTER_VIRT | d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
                    | d.SECONDARY_EXEC_RDRAND_EXITING | d.SECONDARY_EXEC_ENABLE_INVPCID
                    | d.SECONDARY_EXEC_ENABLE_VMFUNC | d.SECONDARY_EXEC_RDSEED_EXITING
                    | d.SECONDARY_EXEC_XSAVES | d.SECONDARY_EXEC_TSC_SCALING
                    | d.SECONDARY_EXEC_SHADOW_VMCS | d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)


def secondary_high(ept: bool, vpid: bool, unrestricted_guest: bool) -> int:
    high = SECONDARY_ALWAYS
    if ept:
        high |= d.SECONDARY_EXEC_ENABLE_EPT | d.SECONDARY_EXEC_ENABLE_PML | d.SECONDARY_EXEC_MODE_BASED_EPT_EXEC
    if vpid:
        high |= d.SECONDARY_EXEC_ENABLE_VPID
    if unrestricted_guest:
        high |= d.SECONDARY_EXEC_UNRESTRICTED_GUEST
    return high


EXIT_LOW = d.VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR & ~d.VM_EXIT_SAVE_DEBUG_CONTROLS
# nested_vmx_setup_exit_ctls()/nested_vmx_setup_entry_ctls(): LOAD_IA32_PERF_GLOBAL_CTRL is
# always offered; LOAD_CET_STATE whenever KVM supports SHSTK or IBT (the model's host does).
EXIT_HIGH = (d.VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR | d.VM_EXIT_HOST_ADDR_SPACE_SIZE | d.VM_EXIT_LOAD_IA32_PAT
             | d.VM_EXIT_SAVE_IA32_PAT | d.VM_EXIT_CLEAR_BNDCFGS | d.VM_EXIT_LOAD_IA32_EFER
             | d.VM_EXIT_SAVE_IA32_EFER | d.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER | d.VM_EXIT_ACK_INTR_ON_EXIT
             | d.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL | d.VM_EXIT_LOAD_CET_STATE)

ENTRY_LOW = d.VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR & ~d.VM_ENTRY_LOAD_DEBUG_CONTROLS
ENTRY_HIGH = (d.VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR | d.VM_ENTRY_IA32E_MODE | d.VM_ENTRY_LOAD_IA32_PAT
              | d.VM_ENTRY_LOAD_BNDCFGS | d.VM_ENTRY_LOAD_IA32_EFER | d.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL
              | d.VM_ENTRY_LOAD_CET_STATE)


# What the host takes away (nested_vmx_setup_{pinbased,exit,entry}_ctls() at the pinned commit):
# posted interrupts need enable_apicv; the BNDCFGS controls exist only on a CPU with MPX (they
# come from vmcs_config); the CET-state controls need KVM to support SHSTK or IBT.
def pinbased_high(apicv: bool) -> int:
    return PINBASED_HIGH if apicv else PINBASED_HIGH & ~d.PIN_BASED_POSTED_INTR


def exit_high(mpx: bool, cet: bool) -> int:
    return (EXIT_HIGH & ~(0 if mpx else d.VM_EXIT_CLEAR_BNDCFGS)
            & ~(0 if cet else d.VM_EXIT_LOAD_CET_STATE))


def entry_high(mpx: bool, cet: bool) -> int:
    return (ENTRY_HIGH & ~(0 if mpx else d.VM_ENTRY_LOAD_BNDCFGS)
            & ~(0 if cet else d.VM_ENTRY_LOAD_CET_STATE))

# EPT capabilities: 4- and 5-level walks, WB memory type, A/D bits; never UC.
EPT_CAP_PAGE_WALK_4 = 1 << 6
EPT_CAP_PAGE_WALK_5 = 1 << 7
EPT_CAP_UC = 1 << 8
EPT_CAP_WB = 1 << 14
EPT_CAP_AD = 1 << 21
EPT_CAPS = EPT_CAP_PAGE_WALK_4 | EPT_CAP_PAGE_WALK_5 | EPT_CAP_WB | EPT_CAP_AD

MISC_CR3_TARGETS = 0                    # IA32_VMX_MISC[24:16]
MAX_MSR_LIST = (0 + 1) * d.VMX_MISC_MSR_LIST_MULTIPLIER   # (MISC[27:25] + 1) * 512
ZERO_LEN_INJECTION = False              # IA32_VMX_MISC[30]

CR0_FIXED0 = 0x80000021                 # PE | NE | PG
# nested_vmx_cr_fixed1_bits_update() (vmx.c): cr0_fixed1 = 0xffffffff, so CR0 bits 63:32 must be 0
# for nested_host_cr0_valid() and nested_guest_cr0_valid() (fixed_bits_valid(), nested.h).
CR0_FIXED1 = 0xFFFFFFFF
CR4_FIXED0 = 1 << 13                    # VMXE
VMCS12_REVISION = 0x11E57ED0
