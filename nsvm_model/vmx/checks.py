"""The nVMX consistency checks, in the kernel's order, bit-exact.

nested_vmx_check_controls() (VMfail 7), nested_vmx_check_address_space_size()
and nested_vmx_check_host_state() (VMfail 8), nested_vmx_check_guest_state()
(VM exit 33 with qualification 0 or 4), from arch/x86/kvm/vmx/nested.c at
the pinned commit.  A check is (id, text, valid(v, env)); ``v`` reads vmcs12
fields by their struct vmcs12 names; ``kernel`` (where set) quotes the kernel's
condition.  Checks KVM makes that this model does not (the vTPR against TPR
threshold check, which KVM leaves to the CPU unless it is configured to warn on
missed checks; VMFUNC, DEBUGCTL bits) are listed in NOT_MODELLED.

Canonical-address checks follow the helpers the pinned commit calls:
is_noncanonical_msr_address() and is_noncanonical_base_address() check at
max_host_virt_addr_bits() (57 when KVM itself has LA57: ``Env.host_virt_addr_bits``),
host RIP at HOST_CR4.LA57 (is_l1_noncanonical_address_on_vmexit()).
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional

from .. import x86
from . import caps, defs as d

NOT_MODELLED = ("vTPR against the TPR threshold (left to the CPU)", "VMFUNC/EPTP list",
                "TSC multiplier", "DEBUGCTL bits")


class Check(NamedTuple):
    id: str
    text: str
    valid: Callable
    qualification: int = d.ENTRY_FAIL_DEFAULT     # for guest-state checks
    kernel: str = ""                              # the kernel's condition, where quoted


class Env(NamedTuple):
    maxphyaddr: int
    features: frozenset
    l1_efer: int
    ept: bool
    vpid: bool
    unrestricted_guest: bool
    nested_run_pending: bool
    memory: object = None       # for the VMCS link pointer's header
    host_virt_addr_bits: int = 48                 # max_host_virt_addr_bits()
    global_ctrl_rsvd: int = x86.intel_global_ctrl_rsvd(8, 3)   # vcpu_to_pmu(vcpu)->global_ctrl_rsvd
    apicv: bool = True                            # enable_apicv
    mpx: bool = True                              # the CPU has MPX (kvm_mpx_supported())
    cet: bool = True                              # KVM supports SHSTK or IBT


def fixed_bits_valid(value: int, fixed0: int, fixed1: int) -> bool:
    """Bits set in fixed0 must be 1; bits clear in fixed1 must be 0."""
    return ((value & fixed1) | fixed0) == value


def control_valid(value: int, low: int, high: int) -> bool:
    """vmx_control_verify()."""
    return fixed_bits_valid(value, low, high)


def has(v, bit) -> bool:
    return bool(v("cpu_based_vm_exec_control") & bit)


def has2(v, bit) -> bool:
    """nested_cpu_has2(): a secondary control counts only with ACTIVATE_SECONDARY."""
    return has(v, d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) and bool(v("secondary_vm_exec_control") & bit)


def page_valid(gpa, e) -> bool:
    return x86.page_address_valid(gpa, e.maxphyaddr)


def canonical(addr: int, bits: int = 48) -> bool:
    """An address whose bits 63:bits-1 are all equal."""
    top = addr >> (bits - 1)
    return top in (0, (1 << (65 - bits)) - 1)


def msr_switch_valid(count, addr, e) -> bool:
    """nested_vmx_check_msr_switch(): count within the maximum, 16-byte aligned, in range."""
    if count == 0:
        return True
    if count > caps.MAX_MSR_LIST:
        return False
    return (addr % 16 == 0 and x86.is_legal_gpa(addr, e.maxphyaddr)
            and x86.is_legal_gpa(addr + count * 16 - 1, e.maxphyaddr))


def eptp_valid(eptp, e) -> bool:
    """nested_vmx_check_eptp()."""
    mt = eptp & d.VMX_EPTP_MT_MASK
    if mt == d.VMX_EPTP_MT_UC and not caps.EPT_CAPS & caps.EPT_CAP_UC:
        return False
    if mt == d.VMX_EPTP_MT_WB and not caps.EPT_CAPS & caps.EPT_CAP_WB:
        return False
    if mt not in (d.VMX_EPTP_MT_UC, d.VMX_EPTP_MT_WB):
        return False
    pwl = eptp & d.VMX_EPTP_PWL_MASK
    if pwl == d.VMX_EPTP_PWL_5:
        ok = bool(caps.EPT_CAPS & caps.EPT_CAP_PAGE_WALK_5)
    elif pwl == d.VMX_EPTP_PWL_4:
        ok = bool(caps.EPT_CAPS & caps.EPT_CAP_PAGE_WALK_4)
    else:
        ok = False
    if not ok or not x86.is_legal_gpa(eptp, e.maxphyaddr) or (eptp >> 7) & 0x1F:
        return False
    return not (eptp & d.VMX_EPTP_AD_ENABLE_BIT) or bool(caps.EPT_CAPS & caps.EPT_CAP_AD)


ERROR_CODE_VECTORS = (1 << x86.DF_VECTOR | 1 << x86.TS_VECTOR | 1 << x86.NP_VECTOR | 1 << x86.SS_VECTOR
                      | 1 << x86.GP_VECTOR | 1 << x86.PF_VECTOR | 1 << x86.AC_VECTOR)


def event_injection_valid(v, e) -> bool:
    """The injection checks inside nested_check_vm_entry_controls()."""
    info = v("vm_entry_intr_info_field")
    if not info & d.INTR_INFO_VALID_MASK:
        return True
    vector = info & d.INTR_INFO_VECTOR_MASK
    kind = info & d.INTR_INFO_INTR_TYPE_MASK
    has_error_code = bool(info & d.INTR_INFO_DELIVER_CODE_MASK)
    urg = has2(v, d.SECONDARY_EXEC_UNRESTRICTED_GUEST)
    prot_mode = not urg or bool(v("guest_cr0") & x86.X86_CR0_PE)
    if kind == d.INTR_TYPE_RESERVED:
        return False
    if kind == d.INTR_TYPE_OTHER_EVENT and not caps.PROCBASED_HIGH & d.CPU_BASED_MONITOR_TRAP_FLAG:
        return False
    if kind == d.INTR_TYPE_NMI_INTR and vector != x86.NMI_VECTOR:
        return False
    if kind == d.INTR_TYPE_HARD_EXCEPTION and vector > 31:
        return False
    if kind == d.INTR_TYPE_OTHER_EVENT and vector != 0:
        return False
    if not prot_mode or kind != d.INTR_TYPE_HARD_EXCEPTION:
        if has_error_code:
            return False
    elif has_error_code != bool(ERROR_CODE_VECTORS & (1 << vector)):
        return False
    if has_error_code and v("vm_entry_exception_error_code") & 0xFFFF0000:
        return False
    if info & d.INTR_INFO_RESVD_BITS_MASK:
        return False
    if kind in (d.INTR_TYPE_SOFT_EXCEPTION, d.INTR_TYPE_SOFT_INTR, d.INTR_TYPE_PRIV_SW_EXCEPTION):
        length = v("vm_entry_instruction_len")
        if length > 15 or (length == 0 and not caps.ZERO_LEN_INJECTION):
            return False
    return True


def _uses_apicv(v) -> bool:
    """nested_vmx_check_apicv_controls() applies when any APICv feature is on."""
    return (has2(v, d.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE) or has2(v, d.SECONDARY_EXEC_APIC_REGISTER_VIRT)
            or has2(v, d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
            or bool(v("pin_based_vm_exec_control") & d.PIN_BASED_POSTED_INTR))


def _sec_high(e):
    return caps.secondary_high(e.ept, e.vpid, e.unrestricted_guest)


CONTROL_CHECKS = (
    Check("X1", "pin-based controls within the allowed 0/1 settings",
          lambda v, e: control_valid(v("pin_based_vm_exec_control"), caps.PINBASED_LOW,
                                     caps.pinbased_high(e.apicv))),
    Check("X2", "primary processor-based controls within the allowed 0/1 settings",
          lambda v, e: control_valid(v("cpu_based_vm_exec_control"), caps.PROCBASED_LOW, caps.PROCBASED_HIGH)),
    Check("X3", "secondary controls within the allowed settings (when activated)",
          lambda v, e: not has(v, d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)
          or control_valid(v("secondary_vm_exec_control"), caps.SECONDARY_LOW, _sec_high(e))),
    Check("X4", "CR3-target count no larger than IA32_VMX_MISC allows (0)",
          lambda v, e: v("cr3_target_count") <= caps.MISC_CR3_TARGETS),
    Check("X5", "I/O bitmap addresses page aligned and legal (with USE_IO_BITMAPS)",
          lambda v, e: not has(v, d.CPU_BASED_USE_IO_BITMAPS)
          or (page_valid(v("io_bitmap_a"), e) and page_valid(v("io_bitmap_b"), e))),
    Check("X6", "MSR bitmap address page aligned and legal (with USE_MSR_BITMAPS)",
          lambda v, e: not has(v, d.CPU_BASED_USE_MSR_BITMAPS) or page_valid(v("msr_bitmap"), e)),
    Check("X7", "virtual-APIC page address valid (with TPR shadow)",
          lambda v, e: not has(v, d.CPU_BASED_TPR_SHADOW) or page_valid(v("virtual_apic_page_addr"), e)),
    Check("X7b", "TPR threshold bits 31:4 clear unless virtual-interrupt delivery (with TPR shadow)",
          lambda v, e: not has(v, d.CPU_BASED_TPR_SHADOW)
          or has2(v, d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) or not v("tpr_threshold") >> 4),
    Check("X8", "APIC-access address valid (with virtualized APIC accesses)",
          lambda v, e: not has2(v, d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES)
          or page_valid(v("apic_access_addr"), e)),
    Check("X9", "x2APIC virtualization and APIC-access virtualization are exclusive",
          lambda v, e: not (has2(v, d.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE)
                            and has2(v, d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES))),
    Check("X9b", "virtual-interrupt delivery needs external-interrupt exiting",
          lambda v, e: not (has2(v, d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
                            and not v("pin_based_vm_exec_control") & d.PIN_BASED_EXT_INTR_MASK)),
    Check("X9c", "posted interrupts need virtual-interrupt delivery, acknowledge-interrupt-on-exit, "
                 "a notification vector with bits 15:8 clear and a legal 64-byte aligned descriptor",
          lambda v, e: not v("pin_based_vm_exec_control") & d.PIN_BASED_POSTED_INTR or (
              has2(v, d.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)
              and bool(v("vm_exit_controls") & d.VM_EXIT_ACK_INTR_ON_EXIT)
              and not v("posted_intr_nv") & 0xFF00
              and v("posted_intr_desc_addr") % 64 == 0 and x86.is_legal_gpa(v("posted_intr_desc_addr"), e.maxphyaddr))),
    Check("X9d", "every APIC-virtualization feature needs the TPR shadow",
          lambda v, e: not _uses_apicv(v) or has(v, d.CPU_BASED_TPR_SHADOW)),
    Check("X10", "virtual NMIs need NMI exiting; NMI-window exiting needs virtual NMIs",
          lambda v, e: not (not v("pin_based_vm_exec_control") & d.PIN_BASED_NMI_EXITING
                            and v("pin_based_vm_exec_control") & d.PIN_BASED_VIRTUAL_NMIS)
          and not (not v("pin_based_vm_exec_control") & d.PIN_BASED_VIRTUAL_NMIS
                   and has(v, d.CPU_BASED_NMI_WINDOW_EXITING))),
    Check("X11", "PML needs EPT and a valid PML address",
          lambda v, e: not has2(v, d.SECONDARY_EXEC_ENABLE_PML)
          or (has2(v, d.SECONDARY_EXEC_ENABLE_EPT) and page_valid(v("pml_address"), e))),
    Check("X12", "unrestricted guest needs EPT",
          lambda v, e: not (has2(v, d.SECONDARY_EXEC_UNRESTRICTED_GUEST)
                            and not has2(v, d.SECONDARY_EXEC_ENABLE_EPT))),
    Check("X13", "mode-based EPT execute control needs EPT",
          lambda v, e: not (has2(v, d.SECONDARY_EXEC_MODE_BASED_EPT_EXEC)
                            and not has2(v, d.SECONDARY_EXEC_ENABLE_EPT))),
    Check("X14", "VMCS shadowing needs valid VMREAD/VMWRITE bitmaps",
          lambda v, e: not has2(v, d.SECONDARY_EXEC_SHADOW_VMCS)
          or (page_valid(v("vmread_bitmap"), e) and page_valid(v("vmwrite_bitmap"), e))),
    Check("X15", "VPID enabled with VPID 0",
          lambda v, e: not (has2(v, d.SECONDARY_EXEC_ENABLE_VPID) and not v("virtual_processor_id"))),
    Check("X16", "saving the preemption timer needs the preemption timer",
          lambda v, e: not (not v("pin_based_vm_exec_control") & d.PIN_BASED_VMX_PREEMPTION_TIMER
                            and v("vm_exit_controls") & d.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER)),
    Check("X17", "a valid EPT pointer (memory type WB, 4/5-level walk, legal, bits 11:7 clear)",
          lambda v, e: not has2(v, d.SECONDARY_EXEC_ENABLE_EPT) or eptp_valid(v("ept_pointer"), e)),
    Check("X18", "VM-exit controls within the allowed 0/1 settings",
          lambda v, e: control_valid(v("vm_exit_controls"), caps.EXIT_LOW, caps.exit_high(e.mpx, e.cet))),
    Check("X19", "VM-exit MSR-load and MSR-store lists: count <= 512, 16-byte aligned, legal",
          lambda v, e: msr_switch_valid(v("vm_exit_msr_load_count"), v("vm_exit_msr_load_addr"), e)
          and msr_switch_valid(v("vm_exit_msr_store_count"), v("vm_exit_msr_store_addr"), e)),
    Check("X20", "VM-entry controls within the allowed 0/1 settings",
          lambda v, e: control_valid(v("vm_entry_controls"), caps.ENTRY_LOW, caps.entry_high(e.mpx, e.cet))),
    Check("X21", "a valid event to inject (type, vector, error code, length)",
          event_injection_valid),
    Check("X22", "VM-entry MSR-load list: count <= 512, 16-byte aligned, legal",
          lambda v, e: msr_switch_valid(v("vm_entry_msr_load_count"), v("vm_entry_msr_load_addr"), e)),
)


def _ia32e_host(v):
    return bool(v("vm_exit_controls") & d.VM_EXIT_HOST_ADDR_SPACE_SIZE)


def _host_selectors_valid(v):
    sels = [v(f"host_{s}_selector") for s in ("cs", "ss", "ds", "es", "fs", "gs", "tr")]
    if any(sel & 7 for sel in sels):
        return False
    if v("host_cs_selector") == 0 or v("host_tr_selector") == 0:
        return False
    return not (v("host_ss_selector") == 0 and not _ia32e_host(v))


def _host_efer_valid(v, e):
    if not v("vm_exit_controls") & d.VM_EXIT_LOAD_IA32_EFER:
        return True
    efer = v("host_ia32_efer")
    ia32e = _ia32e_host(v)
    return (x86.efer_valid(efer, e.features) and ia32e == bool(efer & x86.EFER_LMA)
            and ia32e == bool(efer & x86.EFER_LME))


def _cr4_valid(cr4, e):
    return fixed_bits_valid(cr4, caps.CR4_FIXED0, x86.MASK64) and x86.cr4_valid(cr4, e.features)


def _noncanon_msr(addr, e) -> bool:
    return x86.is_noncanonical_msr_address(addr, e.host_virt_addr_bits)


def _cet_state_common_valid(s_cet, ssp, ssp_tbl, e) -> bool:
    """nested_vmx_check_cet_state_common()."""
    return (x86.kvm_is_valid_u_s_cet(s_cet, e.features) and ssp % 4 == 0
            and not _noncanon_msr(ssp_tbl, e))


def _host_cet_valid(v, e) -> bool:
    """nested_vmx_check_host_state(), with VM_EXIT_LOAD_CET_STATE."""
    if not v("vm_exit_controls") & d.VM_EXIT_LOAD_CET_STATE:
        return True
    s_cet, ssp = v("host_s_cet"), v("host_ssp")
    if not _cet_state_common_valid(s_cet, ssp, v("host_ssp_tbl"), e):
        return False
    if _ia32e_host(v):
        return not (_noncanon_msr(s_cet, e) or _noncanon_msr(ssp, e))
    return not (s_cet >> 32 or ssp >> 32)


def _guest_cet_valid(v, e) -> bool:
    """nested_vmx_check_guest_state(), with VM_ENTRY_LOAD_CET_STATE."""
    if not v("vm_entry_controls") & d.VM_ENTRY_LOAD_CET_STATE:
        return True
    ssp = v("guest_ssp")
    if not _cet_state_common_valid(v("guest_s_cet"), ssp, v("guest_ssp_tbl"), e):
        return False
    # 63:N identical, N the host's linear-address width: canonical at N + 1 bits
    return x86.is_canonical_address(ssp, e.host_virt_addr_bits + 1)


HOST_CHECKS = (
    Check("H0", "the host address-space size control matches L1's EFER.LMA",
          lambda v, e: _ia32e_host(v) == bool(e.l1_efer & x86.EFER_LMA)),
    Check("H1", "host CR0 has its fixed bits (PE, NE, PG) and bits 63:32 clear (cr0_fixed1 = 0xffffffff)",
          lambda v, e: fixed_bits_valid(v("host_cr0"), caps.CR0_FIXED0, caps.CR0_FIXED1),
          kernel="nested_vmx_check_host_state(): CC(!nested_host_cr0_valid(vcpu, vmcs12->host_cr0))"),
    Check("H2", "host CR4 has VMXE and no reserved bit",
          lambda v, e: _cr4_valid(v("host_cr4"), e)),
    Check("H3", "host CR3 is legal (no bit at or above MAXPHYADDR)",
          lambda v, e: x86.is_legal_cr3(v("host_cr3"), e.maxphyaddr, e.features)),
    Check("H4", "host CR4.CET needs CR0.WP",
          lambda v, e: not (v("host_cr4") & x86.X86_CR4_CET and not v("host_cr0") & x86.X86_CR0_WP)),
    Check("H5", "host SYSENTER_ESP and SYSENTER_EIP are canonical at the host's address width",
          lambda v, e: not (_noncanon_msr(v("host_ia32_sysenter_esp"), e)
                            or _noncanon_msr(v("host_ia32_sysenter_eip"), e)),
          kernel="nested_vmx_check_host_state(): CC(is_noncanonical_msr_address("
                 "vmcs12->host_ia32_sysenter_esp/eip, vcpu))"),
    Check("H6", "host PAT is valid (with LOAD_IA32_PAT)",
          lambda v, e: not v("vm_exit_controls") & d.VM_EXIT_LOAD_IA32_PAT or x86.pat_valid(v("host_ia32_pat"))),
    Check("H6b", "host IA32_PERF_GLOBAL_CTRL sets no bit the vPMU reserves (with LOAD_IA32_PERF_GLOBAL_CTRL)",
          lambda v, e: not v("vm_exit_controls") & d.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL
          or x86.kvm_valid_perf_global_ctrl(e.global_ctrl_rsvd, v("host_ia32_perf_global_ctrl")),
          kernel="nested_vmx_check_host_state(): (vm_exit_controls & VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL) && "
                 "CC(!kvm_valid_perf_global_ctrl(vcpu_to_pmu(vcpu), vmcs12->host_ia32_perf_global_ctrl))"),
    Check("H7", "a 64-bit host needs CR4.PAE; a 32-bit host forbids IA-32e entry, CR4.PCIDE and RIP above 4G",
          lambda v, e: bool(v("host_cr4") & x86.X86_CR4_PAE) if _ia32e_host(v) else not (
              v("vm_entry_controls") & d.VM_ENTRY_IA32E_MODE or v("host_cr4") & x86.X86_CR4_PCIDE
              or v("host_rip") >> 32)),
    Check("H8", "host selectors: RPL and TI clear, CS and TR not 0, SS not 0 for a 32-bit host",
          lambda v, e: _host_selectors_valid(v)),
    Check("H9", "host FS, GS, GDTR, IDTR and TR bases canonical at the host's address width; host RIP "
                "canonical at the width HOST_CR4.LA57 gives L1",
          lambda v, e: not any(x86.is_noncanonical_base_address(v(f), e.host_virt_addr_bits)
                               for f in ("host_fs_base", "host_gs_base", "host_gdtr_base",
                                         "host_idtr_base", "host_tr_base"))
          and x86.is_canonical_address(v("host_rip"), x86.vcpu_virt_addr_bits(v("host_cr4"))),
          kernel="nested_vmx_check_host_state(): CC(is_noncanonical_base_address(vmcs12->host_{fs,gs,gdtr,"
                 "idtr,tr}_base, vcpu)) || CC(is_l1_noncanonical_address_on_vmexit(vmcs12->host_rip, vmcs12))"),
    Check("H10", "host EFER valid and LMA/LME matching the address-space size (with LOAD_IA32_EFER)",
          _host_efer_valid),
    Check("H11", "host CET state (with LOAD_CET_STATE): S_CET valid for L1's CPUID, SSP 4-byte aligned, "
                 "SSP table canonical; S_CET and SSP canonical (64-bit host) or bits 63:32 clear",
          _host_cet_valid,
          kernel="nested_vmx_check_host_state(): nested_vmx_check_cet_state_common(vcpu, vmcs12->host_s_cet, "
                 "host_ssp, host_ssp_tbl), then is_noncanonical_msr_address() of host_s_cet and host_ssp "
                 "(ia32e) or their bits 63:32"),
)


def _guest_cr0_valid(v, e):
    """nested_guest_cr0_valid(): cr0_fixed1 = 0xffffffff, so bits 63:32 must be clear."""
    fixed0 = caps.CR0_FIXED0
    if e.unrestricted_guest and has2(v, d.SECONDARY_EXEC_UNRESTRICTED_GUEST):
        fixed0 &= ~(x86.X86_CR0_PE | x86.X86_CR0_PG)
    return fixed_bits_valid(v("guest_cr0"), fixed0, caps.CR0_FIXED1)


def link_pointer_valid(v, e) -> bool:
    """nested_vmx_check_vmcs_link_ptr(): all ones, or a page holding a VMCS of the right kind."""
    ptr = v("vmcs_link_pointer")
    if ptr == d.INVALID_GPA:
        return True
    if not page_valid(ptr, e):
        return False
    header = e.memory.read(ptr, 4) if e.memory else None
    if header is None:
        return False
    revision, shadow = header & 0x7FFFFFFF, bool(header >> 31)
    return revision == caps.VMCS12_REVISION and shadow == has2(v, d.SECONDARY_EXEC_SHADOW_VMCS)


def _guest_efer_valid(v, e):
    if not (e.nested_run_pending and v("vm_entry_controls") & d.VM_ENTRY_LOAD_IA32_EFER):
        return True
    efer = v("guest_ia32_efer")
    ia32e = bool(v("vm_entry_controls") & d.VM_ENTRY_IA32E_MODE)
    if not x86.efer_valid(efer, e.features) or ia32e != bool(efer & x86.EFER_LMA):
        return False
    return not (v("guest_cr0") & x86.X86_CR0_PG) or ia32e == bool(efer & x86.EFER_LME)


GUEST_CHECKS = (
    Check("G1", "guest CR0 and CR4 have their fixed bits (PE/PG relaxed for unrestricted guest)",
          lambda v, e: _guest_cr0_valid(v, e) and _cr4_valid(v("guest_cr4"), e)),
    Check("G2", "guest CR4.CET needs CR0.WP",
          lambda v, e: not (v("guest_cr4") & x86.X86_CR4_CET and not v("guest_cr0") & x86.X86_CR0_WP)),
    Check("G3", "guest DR7[63:32] clear (with LOAD_DEBUG_CONTROLS)",
          lambda v, e: not v("vm_entry_controls") & d.VM_ENTRY_LOAD_DEBUG_CONTROLS
          or x86.dr7_valid(v("guest_dr7"))),
    Check("G4", "guest PAT valid (with LOAD_IA32_PAT)",
          lambda v, e: not v("vm_entry_controls") & d.VM_ENTRY_LOAD_IA32_PAT
          or x86.pat_valid(v("guest_ia32_pat"))),
    Check("G5", "the VMCS link pointer is ~0 or points at a VMCS of the right kind",
          link_pointer_valid, d.ENTRY_FAIL_VMCS_LINK_PTR),
    Check("G5b", "guest IA32_PERF_GLOBAL_CTRL sets no bit the vPMU reserves (with LOAD_IA32_PERF_GLOBAL_CTRL)",
          lambda v, e: not v("vm_entry_controls") & d.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL
          or x86.kvm_valid_perf_global_ctrl(e.global_ctrl_rsvd, v("guest_ia32_perf_global_ctrl")),
          kernel="nested_vmx_check_guest_state(): (vm_entry_controls & VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL) && "
                 "CC(!kvm_valid_perf_global_ctrl(vcpu_to_pmu(vcpu), vmcs12->guest_ia32_perf_global_ctrl))"),
    Check("G6", "guest CR0.PG needs CR0.PE",
          lambda v, e: (v("guest_cr0") & (x86.X86_CR0_PG | x86.X86_CR0_PE)) != x86.X86_CR0_PG),
    Check("G7", "an IA-32e guest needs CR4.PAE and CR0.PG",
          lambda v, e: not v("vm_entry_controls") & d.VM_ENTRY_IA32E_MODE
          or (v("guest_cr4") & x86.X86_CR4_PAE and v("guest_cr0") & x86.X86_CR0_PG)),
    Check("G8", "guest EFER valid, LMA = IA-32e mode, LME = IA-32e mode when paging (with LOAD_IA32_EFER)",
          _guest_efer_valid),
    Check("G8b", "guest BNDCFGS (with LOAD_BNDCFGS): bits 11:2 clear, base canonical at the host's width",
          lambda v, e: not v("vm_entry_controls") & d.VM_ENTRY_LOAD_BNDCFGS
          or not (_noncanon_msr(v("guest_bndcfgs") & x86.PAGE_MASK, e)
                  or v("guest_bndcfgs") & d.MSR_IA32_BNDCFGS_RSVD),
          kernel="nested_vmx_check_guest_state(): (vm_entry_controls & VM_ENTRY_LOAD_BNDCFGS) && "
                 "(CC(is_noncanonical_msr_address(vmcs12->guest_bndcfgs & PAGE_MASK, vcpu)) || "
                 "CC(vmcs12->guest_bndcfgs & MSR_IA32_BNDCFGS_RSVD))"),
    Check("G8c", "guest CET state (with LOAD_CET_STATE): S_CET valid for L1's CPUID, SSP 4-byte aligned, "
                 "SSP table canonical, SSP bits 63:N identical (N = the host's address width)",
          _guest_cet_valid,
          kernel="nested_vmx_check_guest_state(): nested_vmx_check_cet_state_common(vcpu, vmcs12->guest_s_cet, "
                 "guest_ssp, guest_ssp_tbl), then CC(!__is_canonical_address(vmcs12->guest_ssp, "
                 "max_host_virt_addr_bits() + 1))"),
    Check("G9", "guest activity state is ACTIVE, HLT or WAIT_SIPI",
          lambda v, e: v("guest_activity_state") in (0, 1, 3)),
)


def first_failure(checks, v, env) -> Optional[Check]:
    for check in checks:
        if not check.valid(v, env):
            return check
    return None


def reader(values: Mapping):
    """v("guest_cr0") -> values["vmcs12.guest_cr0"]."""
    return lambda name: values[f"vmcs12.{name}"]
