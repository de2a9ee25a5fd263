"""nVMX scenario fields, the default (kvm-unit-tests init_vmcs) and presets.

The default mirrors kvm-unit-tests x86/vmx.c init_vmcs(): a 64-bit L1,
after VMXON and VMPTRLD, executes VMLAUNCH on a vmcs12 whose guest state
is a copy of L1 (CR0|PG|PE, CR4|PAE), with only the must-be-1 control
bits plus pin EXTINT|NMI|VIRT_NMI, exit LOAD_EFER|HOST_64|LOAD_PAT and
entry LOAD_EFER|GUEST_64; the VMCS link pointer is ~0.  vmcs12 fields use
the names of KVM's struct vmcs12.
"""

from __future__ import annotations

from ..engine.fields import B, E, S, U, named_constants
from ..engine.memory import GuestMemory
from ..engine.scenario import Scenario, preset_maker
from .. import x86
from . import caps, defs

GiB = 1 << 30
VMCS12_GPA = 0x20000
MSR_BITMAP_GPA = 0x21000
MSR_LOAD_GPA = 0x22000        # VM-entry MSR-load list (16-byte entries)
EXIT_MSR_LOAD_GPA = 0x23000   # VM-exit MSR-load list
L1_CR3 = 0x100000
EPT_ROOT = 0x200000
PAE_PDPT = 0x300000
PAE_PD = 0x301000
PSE_PD = 0x305000
L1_VMLAUNCH_RIP = 0x401000
L1_HOST_RIP = 0x401800        # L1's VM-exit handler
L2_RIP = 0x402000

SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr")
HOST_SELECTORS = ("es", "cs", "ss", "ds", "fs", "gs", "tr")

CONTROL_FIELDS = (
    ("pin_based_vm_exec_control", 32), ("cpu_based_vm_exec_control", 32),
    ("secondary_vm_exec_control", 32), ("vm_exit_controls", 32), ("vm_entry_controls", 32),
    ("cr3_target_count", 32), ("io_bitmap_a", 64), ("io_bitmap_b", 64), ("msr_bitmap", 64),
    ("virtual_apic_page_addr", 64), ("apic_access_addr", 64), ("ept_pointer", 64),
    ("tpr_threshold", 32), ("posted_intr_nv", 16), ("posted_intr_desc_addr", 64),
    ("pml_address", 64), ("vmread_bitmap", 64), ("vmwrite_bitmap", 64),
    ("virtual_processor_id", 16), ("tsc_offset", 64), ("exception_bitmap", 32),
    ("vm_entry_intr_info_field", 32), ("vm_entry_exception_error_code", 32),
    ("vm_entry_instruction_len", 32), ("vm_entry_msr_load_count", 32),
    ("vm_entry_msr_load_addr", 64), ("vm_exit_msr_load_count", 32), ("vm_exit_msr_load_addr", 64),
    ("vm_exit_msr_store_count", 32), ("vm_exit_msr_store_addr", 64), ("vmcs_link_pointer", 64),
    ("cr0_guest_host_mask", 64), ("cr4_guest_host_mask", 64),
    ("cr0_read_shadow", 64), ("cr4_read_shadow", 64),
)
HOST_FIELDS = (
    ("host_cr0", 64), ("host_cr3", 64), ("host_cr4", 64), ("host_ia32_efer", 64),
    ("host_ia32_pat", 64), ("host_rip", 64), ("host_rsp", 64), ("host_fs_base", 64),
    ("host_gs_base", 64), ("host_tr_base", 64), ("host_gdtr_base", 64), ("host_idtr_base", 64),
    ("host_ia32_sysenter_cs", 32), ("host_ia32_sysenter_esp", 64), ("host_ia32_sysenter_eip", 64),
    ("host_ia32_perf_global_ctrl", 64), ("host_s_cet", 64), ("host_ssp", 64), ("host_ssp_tbl", 64),
) + tuple((f"host_{s}_selector", 16) for s in HOST_SELECTORS)
GUEST_FIELDS = (
    ("guest_cr0", 64), ("guest_cr3", 64), ("guest_cr4", 64), ("guest_ia32_efer", 64),
    ("guest_ia32_pat", 64), ("guest_ia32_debugctl", 64), ("guest_dr7", 64), ("guest_rflags", 64),
    ("guest_rip", 64), ("guest_rsp", 64), ("guest_gdtr_base", 64), ("guest_gdtr_limit", 32),
    ("guest_idtr_base", 64), ("guest_idtr_limit", 32), ("guest_sysenter_cs", 32),
    ("guest_sysenter_esp", 64), ("guest_sysenter_eip", 64), ("guest_activity_state", 32),
    ("guest_interruptibility_info", 32),
    ("guest_pdptr0", 64), ("guest_pdptr1", 64), ("guest_pdptr2", 64), ("guest_pdptr3", 64),
    ("guest_ia32_perf_global_ctrl", 64), ("guest_bndcfgs", 64),
    ("guest_s_cet", 64), ("guest_ssp", 64), ("guest_ssp_tbl", 64),
) + tuple((f"guest_{s}_{p}", w) for s in SEGMENTS
          for p, w in (("selector", 16), ("base", 64), ("limit", 32), ("ar_bytes", 32)))
EXIT_INFO_FIELDS = (("vm_instruction_error", 32), ("vm_exit_reason", 32), ("exit_qualification", 64),
                    ("launch_state", 32))
VMCS12_FIELDS = CONTROL_FIELDS + HOST_FIELDS + GUEST_FIELDS + EXIT_INFO_FIELDS

FIELDS = {f.path: f for f in (
    [U(f"vmcs12.{name}", width) for name, width in VMCS12_FIELDS] + [
        B("vmcs12.hdr.shadow_vmcs", "the vmcs12 header marks it a shadow VMCS"),
        B("l1.vmxon", "L1 executed VMXON"), U("l1.cpl", 2),
        U("l1.current_vmptr", 64, "the GPA of the current VMCS (all ones: none)"),
        E("l1.instruction", ("VMLAUNCH", "VMRESUME")),
        B("l1.mov_ss_blocking", "VMLAUNCH sits in a MOV-SS shadow"),
        U("l1.efer", 64), U("l1.cr0", 64), U("l1.cr3", 64), U("l1.cr4", 64), U("l1.rip", 64),
        U("l1.rsp", 64), U("l1.rflags", 64), U("l1.pat", 64),
        U("l1.apic_base", 64, "L1's IA32_APIC_BASE (vcpu->arch.apic_base); bit 10 (X2APIC_ENABLE) "
                              "puts the APIC in x2APIC mode"),
        U("cpu.maxphyaddr", 8, "the guest's MAXPHYADDR"),
        B("cpu.ept", "host EPT (KVM's enable_ept)"),
        B("cpu.unrestricted_guest", "KVM's enable_unrestricted_guest"),
        B("cpu.vpid", "KVM's enable_vpid"),
        B("cpu.apicv", "KVM's enable_apicv: without it the posted-interrupt control is not offered"),
        B("cpu.mpx", "the CPU has MPX: only then are LOAD_BNDCFGS and CLEAR_BNDCFGS offered"),
        B("cpu.cet", "KVM supports SHSTK or IBT: only then are the CET-state load controls offered"),
        S("cpu.features", caps.FEATURES, "the CPUID features L1 sees"),
        U("cpu.pmu_gp_counters", 5, "general-purpose counters of L1's vPMU (CPUID.0AH:EAX[15:8] after "
                                    "KVM's clamp); with cpu.pmu_fixed_counters it fixes global_ctrl_rsvd"),
        U("cpu.pmu_fixed_counters", 5, "fixed counters of L1's vPMU (CPUID.0AH:EDX[4:0] after KVM's clamp)"),
        B("cpu.host_la57", "KVM itself supports 5-level paging (kvm_cpu_cap_has(X86_FEATURE_LA57)): "
                           "max_host_virt_addr_bits() is 57; implied when cpu.features has LA57"),
        U("cpu.host_tsc", 64, "the host TSC (rdtsc()) when KVM emulates a write of IA32_TSC; "
                              "L1's TSC scaling ratio is the default (1:1)"),
        E("l2.exit", ("none", "VMCALL"), "what L2 does once it runs: nothing yet, or VMCALL"),
        B("cpu.vmcs02_vmfail", "the CPU itself VMfails vmcs02: a misconfiguration KVM's checks missed"),
    ])}

CONSTANTS = named_constants(x86, defs)
CONSTANTS["MAXPHYADDR"] = 48

L1_EFER = x86.EFER_SCE | x86.EFER_LME | x86.EFER_LMA | x86.EFER_NX
L1_CR0 = x86.X86_CR0_PG | x86.X86_CR0_WP | x86.X86_CR0_NE | x86.X86_CR0_ET | x86.X86_CR0_PE
L1_CR4 = x86.X86_CR4_PAE | x86.X86_CR4_OSFXSR | x86.X86_CR4_OSXMMEXCPT | x86.X86_CR4_VMXE
DEFAULT_PAT = 0x0007040600070406
# A modern host, with every feature the model knows offered to L1 (LA57, PKU, LAM, FRED, CET,
# ...), APICv, MPX and KVM's LA57.  kvm-unit-tests' host is narrower: tests/kut_vmx.py says which.
DEFAULT_FEATURES = frozenset(caps.FEATURES)
# L1's vPMU (a modelling choice, not read from the kernel): a version-2 architectural PMU,
# so IA32_PERF_GLOBAL_CTRL exists, with 8 general-purpose counters (KVM's Intel maximum) and
# 3 fixed counters, what a typical vPMU reports.  intel_pmu_refresh() then sets
# global_ctrl_rsvd to every bit but 7:0 and 34:32: x86.intel_global_ctrl_rsvd(8, 3).
PMU_GP_COUNTERS = 8
PMU_FIXED_COUNTERS = 3
L1_APIC_BASE = defs.APIC_DEFAULT_PHYS_BASE | defs.MSR_IA32_APICBASE_ENABLE | defs.MSR_IA32_APICBASE_BSP
CODE64_AR = 0xA09B
DATA_AR = 0xC093
CODE32_AR = 0xC09B
KERNEL_CS, KERNEL_DS, TSS_SEL = 0x08, 0x10, 0x48


def _init_vmcs() -> dict:
    v = {f"vmcs12.{name}": 0 for name, _ in VMCS12_FIELDS}
    v["vmcs12.hdr.shadow_vmcs"] = False
    v.update({
        "vmcs12.pin_based_vm_exec_control": caps.PINBASED_LOW | defs.PIN_BASED_EXT_INTR_MASK
        | defs.PIN_BASED_NMI_EXITING | defs.PIN_BASED_VIRTUAL_NMIS,
        "vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW,
        "vmcs12.vm_exit_controls": caps.EXIT_LOW | defs.VM_EXIT_LOAD_IA32_EFER
        | defs.VM_EXIT_HOST_ADDR_SPACE_SIZE | defs.VM_EXIT_LOAD_IA32_PAT,
        "vmcs12.vm_entry_controls": caps.ENTRY_LOW | defs.VM_ENTRY_LOAD_IA32_EFER | defs.VM_ENTRY_IA32E_MODE,
        "vmcs12.virtual_processor_id": 1,
        "vmcs12.vmcs_link_pointer": defs.INVALID_GPA,
        "vmcs12.ept_pointer": EPT_ROOT | defs.VMX_EPTP_MT_WB | defs.VMX_EPTP_PWL_4,
        # host state: L1's own
        "vmcs12.host_cr0": L1_CR0, "vmcs12.host_cr3": L1_CR3, "vmcs12.host_cr4": L1_CR4,
        "vmcs12.host_ia32_efer": L1_EFER, "vmcs12.host_ia32_pat": DEFAULT_PAT,
        "vmcs12.host_rip": L1_HOST_RIP, "vmcs12.host_rsp": 0x6FF000,
        "vmcs12.host_gdtr_base": 0x9000, "vmcs12.host_idtr_base": 0xA000, "vmcs12.host_tr_base": 0xB000,
        "vmcs12.host_cs_selector": KERNEL_CS, "vmcs12.host_tr_selector": TSS_SEL,
        # guest state: a copy of L1
        "vmcs12.guest_cr0": L1_CR0 | x86.X86_CR0_PG | x86.X86_CR0_PE,
        "vmcs12.guest_cr3": L1_CR3, "vmcs12.guest_cr4": L1_CR4 | x86.X86_CR4_PAE,
        "vmcs12.guest_ia32_efer": L1_EFER, "vmcs12.guest_ia32_pat": DEFAULT_PAT,
        "vmcs12.guest_dr7": 0, "vmcs12.guest_rflags": x86.X86_EFLAGS_FIXED,
        "vmcs12.guest_rip": L2_RIP, "vmcs12.guest_rsp": 0x7FF000,
        "vmcs12.guest_gdtr_base": 0x9000, "vmcs12.guest_gdtr_limit": 0xFFF,
        "vmcs12.guest_idtr_base": 0xA000, "vmcs12.guest_idtr_limit": 0xFFF,
        "vmcs12.guest_activity_state": defs.GUEST_ACTIVITY_ACTIVE,
    })
    for sel in ("es", "ss", "ds", "fs", "gs"):
        v[f"vmcs12.host_{sel}_selector"] = KERNEL_DS
    for seg in SEGMENTS:
        v[f"vmcs12.guest_{seg}_limit"] = 0xFFFFFFFF
        v[f"vmcs12.guest_{seg}_selector"] = KERNEL_DS
        v[f"vmcs12.guest_{seg}_ar_bytes"] = DATA_AR
    v.update({"vmcs12.guest_cs_selector": KERNEL_CS, "vmcs12.guest_cs_ar_bytes": CODE64_AR,
              "vmcs12.guest_ldtr_selector": 0, "vmcs12.guest_ldtr_ar_bytes": 0x82,
              "vmcs12.guest_tr_selector": TSS_SEL, "vmcs12.guest_tr_ar_bytes": 0x8B,
              "vmcs12.guest_tr_limit": 0x67, "vmcs12.guest_ldtr_limit": 0})
    return v


def _l1_and_machine() -> dict:
    return {
        "l1.vmxon": True, "l1.cpl": 0, "l1.current_vmptr": VMCS12_GPA, "l1.instruction": "VMLAUNCH",
        "l1.mov_ss_blocking": False, "l1.efer": L1_EFER, "l1.cr0": L1_CR0, "l1.cr3": L1_CR3,
        "l1.cr4": L1_CR4, "l1.rip": L1_VMLAUNCH_RIP, "l1.rsp": 0x6FF000,
        "l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_IF, "l1.pat": DEFAULT_PAT,
        "l1.apic_base": L1_APIC_BASE,
        "cpu.maxphyaddr": 48, "cpu.ept": True, "cpu.unrestricted_guest": True, "cpu.vpid": True,
        "cpu.features": DEFAULT_FEATURES, "l2.exit": "none", "cpu.vmcs02_vmfail": False,
        "cpu.pmu_gp_counters": PMU_GP_COUNTERS, "cpu.pmu_fixed_counters": PMU_FIXED_COUNTERS,
        "cpu.host_la57": True, "cpu.host_tsc": 0, "cpu.apicv": True, "cpu.mpx": True, "cpu.cet": True,
    }


def _memory() -> GuestMemory:
    pdpt = {PAE_PDPT + 8 * i: (PAE_PD + i * 0x1000) | x86.PT_PRESENT_MASK for i in range(4)}
    return GuestMemory(backed=((0, 4 * GiB),)).with_words(pdpt)


def msr_entries(base: int, entries) -> dict:
    """Guest-memory words for a VM-entry/exit MSR list: [(index, value, reserved), ...]."""
    words = {}
    for i, entry in enumerate(entries):
        index, value, reserved = (tuple(entry) + (0,))[:3]
        words[base + 16 * i] = index | (reserved << 32)
        words[base + 16 * i + 8] = value
    return words


def default_scenario(l2_mode: str = "long") -> Scenario:
    if l2_mode not in ("long", "pae", "32bit"):
        raise ValueError(f"l2_mode: {l2_mode!r} is not allowed; expected 'long', 'pae' or '32bit'")
    sc = Scenario("vmx", {**_init_vmcs(), **_l1_and_machine()}, _memory(),
                  name="default" if l2_mode == "long" else f"l2_{l2_mode}",
                  description="kvm-unit-tests init_vmcs: 64-bit L1 launches a copy of itself as L2; "
                              "must-be-1 controls, LOAD_EFER/HOST_64/LOAD_PAT on exit, "
                              "LOAD_EFER/GUEST_64 on entry, no EPT, link pointer ~0")
    if l2_mode == "long":
        return sc
    # vmx_32bit_guest_init_common(): a 32-bit protected-mode L2 with PAE or PSE paging.
    cr4 = (L1_CR4 & ~x86.X86_CR4_PAE) | (x86.X86_CR4_PAE if l2_mode == "pae" else x86.X86_CR4_PSE)
    return sc.with_fields({
        "vmcs12.vm_entry_controls": caps.ENTRY_LOW | defs.VM_ENTRY_LOAD_IA32_EFER,
        "vmcs12.guest_ia32_efer": L1_EFER & ~(x86.EFER_LME | x86.EFER_LMA),
        "vmcs12.guest_cr4": cr4, "vmcs12.guest_cs_ar_bytes": CODE32_AR,
        "vmcs12.guest_cr3": PAE_PDPT if l2_mode == "pae" else PSE_PD,
    }, description=f"init_vmcs with a 32-bit {'PAE' if l2_mode == 'pae' else 'non-PAE'} L2")


_p = preset_maker(default_scenario)


EPT_ON = {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | defs.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
          "vmcs12.secondary_vm_exec_control": defs.SECONDARY_EXEC_ENABLE_EPT}
UNBACKED = 0x800000000
# For the lessons: every register VM entry loads differs between L1 and L2, with nested
# EPT and VPID on, so each load shows (init_vmcs copies L1 instead).
TEACHING = {
    "vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | defs.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
    "vmcs12.secondary_vm_exec_control": defs.SECONDARY_EXEC_ENABLE_EPT | defs.SECONDARY_EXEC_ENABLE_VPID,
    "vmcs12.virtual_processor_id": 7, "vmcs12.guest_cr3": 0x7A3000,
    "vmcs12.guest_cr0": (L1_CR0 | x86.X86_CR0_PG | x86.X86_CR0_PE) & ~x86.X86_CR0_WP,
    "vmcs12.guest_cr4": L1_CR4 | x86.X86_CR4_PAE | x86.X86_CR4_PGE,
    "vmcs12.guest_ia32_efer": x86.EFER_LME | x86.EFER_LMA,
}
PRESETS = dict([
    _p("default", "init_vmcs: VMLAUNCH succeeds, L2 runs on root_mmu (no nested EPT)", {}),
    _p("teaching", "L1 launches an L2 whose CR3, CR0, CR4, EFER, RIP, RSP differ from L1's, with "
       "nested EPT and VPID 7: L2 runs", TEACHING),
    _p("nested_ept", "VMLAUNCH with nested EPT: guest_mmu shadows L1's EPT (scenario 15)", EPT_ON),
    _p("round_trip", "L2 runs, executes VMCALL, and L1 gets the VM exit", {"l2.exit": "VMCALL"}),
    _p("before_vmxon", "VMLAUNCH before VMXON: #UD (scenario 1)", {"l1.vmxon": False}),
    _p("cpl3", "VMLAUNCH at CPL 3: #GP (scenario 2)", {"l1.cpl": 3}),
    _p("no_current_vmcs", "No current VMCS: VMfailInvalid (scenario 3)", {"l1.current_vmptr": defs.INVALID_GPA}),
    _p("shadow_vmcs_header", "vmcs12 marked as a shadow VMCS: VMfailInvalid (scenario 4)",
       {"vmcs12.hdr.shadow_vmcs": True}),
    _p("mov_ss", "VMLAUNCH in a MOV-SS shadow: VMfail 26 (scenario 5)", {"l1.mov_ss_blocking": True}),
    _p("launch_launched", "VMLAUNCH of a launched vmcs12: VMfail 4 (scenario 6)", {"vmcs12.launch_state": 1}),
    _p("resume_clear", "VMRESUME of a clear vmcs12: VMfail 5 (scenario 6)", {"l1.instruction": "VMRESUME"}),
    _p("vpid_zero", "VPID enabled with VPID 0: VMfail 7 (scenario 7)",
       {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | defs.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
        "vmcs12.secondary_vm_exec_control": defs.SECONDARY_EXEC_ENABLE_VPID,
        "vmcs12.virtual_processor_id": 0}),
    _p("host_cr0_no_pe", "Host CR0 without PE: VMfail 8 (scenario 8)",
       {"vmcs12.host_cr0": L1_CR0 & ~x86.X86_CR0_PE}),
    _p("host_tr_zero", "Host TR selector 0: VMfail 8 (scenario 8)", {"vmcs12.host_tr_selector": 0}),
    _p("msr_load_count_too_big", "513 entries in the VM-entry MSR-load list: VMfail 7 (scenario 9)",
       {"vmcs12.vm_entry_msr_load_count": 513, "vmcs12.vm_entry_msr_load_addr": MSR_LOAD_GPA}),
    _p("guest_pg_without_pe", "Guest CR0.PG=1 with PE=0 (unrestricted guest): VM exit 33 (scenario 10)",
       {**EPT_ON, "vmcs12.secondary_vm_exec_control": defs.SECONDARY_EXEC_ENABLE_EPT
        | defs.SECONDARY_EXEC_UNRESTRICTED_GUEST,
        "vmcs12.guest_cr0": L1_CR0 & ~x86.X86_CR0_PE}),
    _p("bad_link_pointer", "VMCS link pointer to a page that is not a VMCS: VM exit 33, qual 4 (scenario 11)",
       {"vmcs12.vmcs_link_pointer": 0x24000}),
    _p("guest_cr3_illegal", "Guest CR3 above MAXPHYADDR: VM exit 33 through the guest-mode label (scenario 12)",
       {"vmcs12.guest_cr3": L1_CR3 | 1 << 52}),
    _p("pae_bad_pdpte", "PAE L2 without nested EPT, PDPTE with a reserved bit: VM exit 33, qual 2 (scenario 13)",
       {}, "pae", {PAE_PDPT + 8: (PAE_PD + 0x1000) | 1 | (1 << 52)}),
    _p("pae_bad_pdpte_ept", "Same PDPTE with nested EPT: not read at VMLAUNCH (scenario 13)",
       EPT_ON, "pae", {PAE_PDPT + 8: (PAE_PD + 0x1000) | 1 | (1 << 52)}),
    _p("msr_load_fs_base", "VM-entry MSR-load list whose 3rd entry is MSR_FS_BASE: VM exit 34, qual 3 (scenario 14)",
       {"vmcs12.vm_entry_msr_load_count": 3, "vmcs12.vm_entry_msr_load_addr": MSR_LOAD_GPA}, "long",
       msr_entries(MSR_LOAD_GPA, [(defs.MSR_LSTAR, 0x1234), (defs.MSR_STAR, 0x5678),
                                  (defs.MSR_FS_BASE, 0)])),
    _p("activity_hlt", "Guest activity state HLT: the vCPU halts in L2 (scenario 16)",
       {"vmcs12.guest_activity_state": defs.GUEST_ACTIVITY_HLT}),
    _p("guest_rflags_zero", "Guest RFLAGS bit 1 clear: hardware rejects vmcs02, VM exit 33 reflected (scenario 18)",
       {"vmcs12.guest_rflags": 0}),
    _p("late_vmfail", "The CPU VMfails vmcs02 after KVM's checks passed: late VMfail 7, L1 restored "
       "to before VMLAUNCH (scenario 17)", {"cpu.vmcs02_vmfail": True, "vmcs12.guest_cr3": 0x700000}),
    _p("bad_exit_msr_list", "Exit MSR-load list names MSR_FS_BASE: the VM exit aborts, triple fault (scenario 19)",
       {"l2.exit": "VMCALL", "vmcs12.vm_exit_msr_load_count": 1,
        "vmcs12.vm_exit_msr_load_addr": EXIT_MSR_LOAD_GPA}, "long",
       msr_entries(EXIT_MSR_LOAD_GPA, [(defs.MSR_FS_BASE, 0)])),
    _p("single_step_vmfail", "TF=1 on a VMLAUNCH that VMfails: #DB after the instruction (scenario 20)",
       {"vmcs12.host_tr_selector": 0, "l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_TF}),
    _p("apic_access_unbacked", "APIC-access page with no memory: KVM internal error",
       {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | defs.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
        "vmcs12.secondary_vm_exec_control": defs.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES,
        "vmcs12.apic_access_addr": UNBACKED}),
])
