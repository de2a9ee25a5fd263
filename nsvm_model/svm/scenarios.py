"""nSVM scenario fields, the default (kvm-unit-tests vmcb_ident) and presets.

The default mirrors kvm-unit-tests x86/svm.c vmcb_ident(): a 64-bit L1
runs a 64-bit copy of itself as L2 with nested NPT (identity map), ASID 1,
intercepting VMRUN, VMMCALL and SHUTDOWN.  Guest memory is 4 GiB of RAM;
everything above it up to 2^MAXPHYADDR is a legal but unbacked GPA.
"""

from __future__ import annotations

from ..engine.fields import B, E, S, U, named_constants
from ..engine.memory import GuestMemory
from ..engine.scenario import Scenario, preset_maker
from .. import x86
from . import defs

GiB = 1 << 30

# Guest-physical layout of the default scenario (all page aligned).
VMCB12_GPA = 0x10000
HSAVE_GPA = 0x11000
MSRPM_GPA = 0x12000           # two pages
IOPM_GPA = 0x14000            # three pages
L1_CR3 = 0x100000             # L1's (and a 64-bit L2's) PML4
NPT_ROOT = 0x200000           # L1's identity nested page table
PAE_PDPT = 0x300000           # a PAE L2's PDPT
PAE_PD = 0x301000             # the page directories it points at
PSE_PD = 0x305000             # a 32-bit L2's page directory
L1_VMRUN_RIP = 0x401000       # where L1 executes VMRUN
L2_RIP = 0x402000             # where L2 starts (it executes VMMCALL)

SEGMENTS = ("es", "cs", "ss", "ds")
DTABLES = ("gdtr", "idtr")


def _save_area_fields(prefix: str):
    out = []
    for seg in SEGMENTS:
        out += [U(f"{prefix}.{seg}.selector", 16), U(f"{prefix}.{seg}.attrib", 16),
                U(f"{prefix}.{seg}.limit", 32), U(f"{prefix}.{seg}.base", 64)]
    for dt in DTABLES:
        out += [U(f"{prefix}.{dt}.limit", 32), U(f"{prefix}.{dt}.base", 64)]
    out += [U(f"{prefix}.cpl", 8)]
    for reg in ("efer", "cr0", "cr2", "cr3", "cr4", "dr6", "dr7", "rflags",
                "rip", "rsp", "rax", "g_pat"):
        out.append(U(f"{prefix}.{reg}", 64))
    return out


def _control_area_fields(prefix: str):
    return [
        S(f"{prefix}.intercepts", defs.INTERCEPTS, "intercept names, without INTERCEPT_"),
        U(f"{prefix}.asid", 32), U(f"{prefix}.tlb_ctl", 8),
        U(f"{prefix}.int_ctl", 32), U(f"{prefix}.int_vector", 32), U(f"{prefix}.int_state", 32),
        U(f"{prefix}.misc_ctl", 64, "SVM_MISC_ENABLE_NP etc. (nested_ctl in older trees)"),
        U(f"{prefix}.misc_ctl2", 64), U(f"{prefix}.nested_cr3", 64),
        U(f"{prefix}.msrpm_base_pa", 64), U(f"{prefix}.iopm_base_pa", 64),
        U(f"{prefix}.tsc_offset", 64), U(f"{prefix}.event_inj", 32), U(f"{prefix}.event_inj_err", 32),
        U(f"{prefix}.next_rip", 64), U(f"{prefix}.exit_code", 64),
        U(f"{prefix}.exit_info_1", 64), U(f"{prefix}.exit_info_2", 64),
        U(f"{prefix}.exit_int_info", 32), U(f"{prefix}.exit_int_info_err", 32),
        U(f"{prefix}.pause_filter_count", 16), U(f"{prefix}.pause_filter_thresh", 16),
        U(f"{prefix}.clean", 32),
    ]


FIELDS = {f.path: f for f in (
    _control_area_fields("vmcb12.control") + _save_area_fields("vmcb12.save") + [
        U("l1.efer", 64), U("l1.cr0", 64), U("l1.cr3", 64), U("l1.cr4", 64),
        U("l1.cpl", 2), U("l1.rax", 64, "the vmcb12 GPA VMRUN takes"), U("l1.rip", 64),
        U("l1.rsp", 64), U("l1.rflags", 64), U("l1.hsave_pa", 64, "MSR_VM_HSAVE_PA"),
        U("l1.gif", 1), B("l1.smm", "L1 executes VMRUN in SMM"),
        U("cpu.maxphyaddr", 8, "the guest's MAXPHYADDR (CPUID 0x80000008 EAX[7:0])"),
        B("cpu.npt", "host NPT (KVM's npt_enabled)"),
        B("cpu.vgif", "KVM's vgif module parameter (hardware vGIF in use)"),
        B("cpu.shared_pat_quirk", "KVM_X86_QUIRK_NESTED_SVM_SHARED_PAT enabled"),
        S("cpu.features", defs.FEATURES, "the CPUID features L1 sees"),
        E("l2.exit", ("none", "VMMCALL", "SMI", "#PF", "#NPF"),
          "what happens once L2 runs: nothing yet, L2 executes VMMCALL, an SMI arrives, or L2's "
          "first access faults in L2's own page tables (#PF) or in L1's nested page table (#NPF)"),
        U("l2.fault_error_code", 64, "the page-fault error code of that fault; for #NPF, bit 32 or "
          "33 says whether the final GPA or a guest page-table access faulted"),
        U("l2.fault_address", 64, "the faulting address: L2's linear address (#PF) or GPA (#NPF)"),
        U("smm.vmcb12_asid", 32, "the ASID L1's SMM handler leaves in vmcb12 before RSM"),
        B("l2.vmcb12_unmapped_at_exit",
          "userspace moved the vmcb12 GPA to unbacked memory while L2 ran (KVM_SET_NESTED_STATE)"),
    ])}

CONSTANTS = named_constants(x86, defs)
CONSTANTS["MAXPHYADDR"] = 48   # only for expressions; the scenario's cpu.maxphyaddr rules

L1_EFER = x86.EFER_SCE | x86.EFER_LME | x86.EFER_LMA | x86.EFER_NX | x86.EFER_SVME
L1_CR0 = x86.X86_CR0_PG | x86.X86_CR0_WP | x86.X86_CR0_NE | x86.X86_CR0_ET | x86.X86_CR0_PE
L1_CR4 = x86.X86_CR4_PAE | x86.X86_CR4_OSFXSR | x86.X86_CR4_OSXMMEXCPT
DEFAULT_PAT = 0x0007040600070406
DEFAULT_FEATURES = frozenset({
    "SVM", "NPT", "NRIPS", "VGIF", "LBRV", "PAUSEFILTER", "PFTHRESHOLD", "LM", "NX",
    "FXSR_OPT", "XSAVE", "SMEP", "SMAP", "FSGSBASE", "UMIP", "PCID", "RDTSCP", "INVPCID",
})
CODE64_ATTRIB = 0xA99     # type 9, S, P, L=1, D=0, G (vmcb_ident)
DATA_ATTRIB = 0xC93
CODE32_ATTRIB = 0xC9B


def _segments(prefix: str, code_attrib: int) -> dict:
    v = {}
    for seg in SEGMENTS:
        v[f"{prefix}.{seg}.selector"] = 0x8 if seg == "cs" else 0x10
        v[f"{prefix}.{seg}.attrib"] = code_attrib if seg == "cs" else DATA_ATTRIB
        v[f"{prefix}.{seg}.limit"] = 0xFFFFFFFF
        v[f"{prefix}.{seg}.base"] = 0
    for dt in DTABLES:
        v[f"{prefix}.{dt}.limit"] = 0xFFF
        v[f"{prefix}.{dt}.base"] = 0x9000 if dt == "gdtr" else 0xA000
    return v


def _vmcb_ident() -> dict:
    v = {f.path: (frozenset() if f.kind == "set" else 0) for f in FIELDS.values()
         if f.path.startswith("vmcb12.")}
    v.update(_segments("vmcb12.save", CODE64_ATTRIB))
    v.update({
        "vmcb12.save.efer": L1_EFER, "vmcb12.save.cr0": L1_CR0, "vmcb12.save.cr3": L1_CR3,
        "vmcb12.save.cr4": L1_CR4, "vmcb12.save.dr6": x86.DR6_ACTIVE_LOW,
        "vmcb12.save.dr7": x86.DR7_FIXED_1, "vmcb12.save.rflags": x86.X86_EFLAGS_FIXED,
        "vmcb12.save.rip": L2_RIP, "vmcb12.save.rsp": 0x7FF000, "vmcb12.save.g_pat": DEFAULT_PAT,
        "vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL", "SHUTDOWN"}),
        "vmcb12.control.asid": 1,
        "vmcb12.control.msrpm_base_pa": MSRPM_GPA, "vmcb12.control.iopm_base_pa": IOPM_GPA,
        "vmcb12.control.misc_ctl": defs.SVM_MISC_ENABLE_NP,
        "vmcb12.control.nested_cr3": NPT_ROOT,
        "vmcb12.control.tlb_ctl": defs.TLB_CONTROL_FLUSH_ALL_ASID,
    })
    return v


def _l1_and_machine() -> dict:
    return {
        "l1.efer": L1_EFER, "l1.cr0": L1_CR0, "l1.cr3": L1_CR3, "l1.cr4": L1_CR4,
        "l1.cpl": 0, "l1.rax": VMCB12_GPA, "l1.rip": L1_VMRUN_RIP, "l1.rsp": 0x6FF000,
        "l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_IF, "l1.hsave_pa": HSAVE_GPA,
        "l1.gif": 1, "l1.smm": False,
        "cpu.maxphyaddr": 48, "cpu.npt": True, "cpu.vgif": True, "cpu.shared_pat_quirk": True,
        "cpu.features": DEFAULT_FEATURES, "l2.exit": "none", "l2.vmcb12_unmapped_at_exit": False,
        "l2.fault_error_code": 0, "l2.fault_address": 0,
        "smm.vmcb12_asid": 1,
    }


def _memory() -> GuestMemory:
    # PAE PDPT: four present entries pointing at page directories; a 32-bit
    # L2's PD is only read by L2 itself, so it needs no content here.
    pdpt = {PAE_PDPT + 8 * i: (PAE_PD + i * 0x1000) | x86.PT_PRESENT_MASK for i in range(4)}
    return GuestMemory(backed=((0, 4 * GiB),)).with_words(pdpt)


def default_scenario(l2_mode: str = "long") -> Scenario:
    if l2_mode not in ("long", "pae", "32bit"):
        raise ValueError(f"l2_mode: {l2_mode!r} is not allowed; expected 'long', 'pae' or '32bit'")
    values = {**_vmcb_ident(), **_l1_and_machine()}
    sc = Scenario("svm", values, _memory(), name="default" if l2_mode == "long" else f"l2_{l2_mode}",
                  description="kvm-unit-tests vmcb_ident: 64-bit L1 runs a copy of itself as L2, "
                              "nested NPT on, ASID 1, intercepts VMRUN, VMMCALL and SHUTDOWN")
    if l2_mode == "long":
        return sc
    # svm_32bit_guest_init_common(): leave long mode, 32-bit code segment, PAE or PSE paging.
    efer = L1_EFER & ~(x86.EFER_LME | x86.EFER_LMA)
    cr4 = (L1_CR4 & ~x86.X86_CR4_PAE) | (x86.X86_CR4_PAE if l2_mode == "pae" else x86.X86_CR4_PSE)
    return sc.with_fields({
        "vmcb12.save.efer": efer, "vmcb12.save.cr4": cr4,
        "vmcb12.save.cr0": L1_CR0 | x86.X86_CR0_PG | x86.X86_CR0_PE,
        "vmcb12.save.cr3": PAE_PDPT if l2_mode == "pae" else PSE_PD,
        "vmcb12.save.cs.attrib": CODE32_ATTRIB,
    }, description=f"vmcb_ident with a 32-bit {'PAE' if l2_mode == 'pae' else 'non-PAE'} L2 "
                   "(svm_32bit_guest_init_common)")


# --- presets: the fact sheet's scenarios (nsvm-flow.md section 8) ----------

_p = preset_maker(default_scenario)


UNBACKED = 0x800000000    # 32 GiB: legal for MAXPHYADDR 48, no memory behind it
# For the lessons: every register VMRUN loads has a different value in L2 than in L1,
# so each load shows on the timeline and in the tables (vmcb_ident copies L1 instead).
TEACHING = {
    "vmcb12.save.cr3": 0x7A3000, "vmcb12.save.cr0": L1_CR0 & ~x86.X86_CR0_WP,
    "vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PGE, "vmcb12.save.efer": x86.EFER_LME | x86.EFER_LMA | x86.EFER_SVME,
    "vmcb12.control.asid": 7, "vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", "MSR_PROT"},
    "l1.gif": 0,
}
PRESETS = dict([
    _p("default", "Valid vmcb12 with nested NPT: L2 runs (scenario 1)", {}),
    _p("teaching", "L1 (after CLGI) runs an L2 whose CR3, CR0, CR4, EFER, RIP, RSP and ASID all differ "
       "from L1's, nested NPT on, MSRs intercepted: L2 runs", TEACHING),
    _p("round_trip", "L2 runs, executes VMMCALL, and L1 gets the #VMEXIT", {"l2.exit": "VMMCALL"}),
    _p("shadow_paging", "Valid vmcb12, NP clear, host NPT on: L2 on root_mmu (scenario 2)",
       {"vmcb12.control.misc_ctl": 0}),
    _p("pae_shadow", "PAE L2 without nested NPT: PDPTRs loaded from memory at VMRUN",
       {"vmcb12.control.misc_ctl": 0}, "pae"),
    _p("asid_zero", "vmcb12 ASID 0: early VMEXIT_INVALID (scenario 3)", {"vmcb12.control.asid": 0}),
    _p("no_vmrun_intercept", "VMRUN intercept clear: early VMEXIT_INVALID (scenario 4)",
       {"vmcb12.control.intercepts": {"VMMCALL", "SHUTDOWN"}}),
    _p("efer_svme_clear", "vmcb12 EFER.SVME=0: early VMEXIT_INVALID (scenario 5)",
       {"vmcb12.save.efer": L1_EFER & ~x86.EFER_SVME}),
    _p("cr0_nw_without_cd", "CR0.NW=1 with CD=0: early VMEXIT_INVALID (scenario 6)",
       {"vmcb12.save.cr0": L1_CR0 | x86.X86_CR0_NW}),
    _p("long_mode_without_pae", "EFER.LME and CR0.PG without CR4.PAE (scenario 7)",
       {"vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PAE}),
    _p("cs_l_and_d", "64-bit code segment with both L and D set (scenario 8)",
       {"vmcb12.save.cs.attrib": CODE64_ATTRIB | defs.SVM_SELECTOR_DB_MASK}),
    _p("eventinj_nmi_as_exception", "EVENTINJ: exception type with vector 2 (scenario 9)",
       {"vmcb12.control.event_inj": defs.SVM_EVTINJ_VALID | defs.SVM_EVTINJ_TYPE_EXEPT | 2}),
    _p("ncr3_illegal", "NP set and nCR3 above MAXPHYADDR (scenario 10)",
       {"vmcb12.control.nested_cr3": 1 << 52}),
    _p("np_without_npt_cpuid", "NP set but L1's CPUID lacks NPT: NP cleared, L2 runs (scenario 11)",
       {"cpu.features": DEFAULT_FEATURES - {"NPT"}}),
    _p("vnmi_without_nmi_intercept", "V_NMI_ENABLE without the NMI intercept (scenario 12)",
       {"vmcb12.control.int_ctl": defs.V_NMI_ENABLE_MASK}),
    _p("msrpm_unbacked", "MSRPM legal but unbacked, MSR_PROT intercepted: late failure (scenario 13)",
       {"vmcb12.control.msrpm_base_pa": UNBACKED,
        "vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", "MSR_PROT"}}),
    _p("pae_bad_pdpte", "PAE L2, no nested NPT, PDPTE with a reserved bit: late failure (scenario 14)",
       {"vmcb12.control.misc_ctl": 0}, "pae", {PAE_PDPT + 8: (PAE_PD + 0x1000) | 1 | (1 << 52)}),
    _p("pae_bad_pdpte_npt", "Same PDPTE with nested NPT: only marked for reload, L2 runs (scenario 15)",
       {}, "pae", {PAE_PDPT + 8: (PAE_PD + 0x1000) | 1 | (1 << 52)}),
    _p("rax_minus_one", "VMRUN with RAX=-1: #GP (scenario 16)", {"l1.rax": -1}),
    _p("rax_unbacked", "VMRUN with a legal, unbacked RAX: exit to userspace (scenario 17)",
       {"l1.rax": UNBACKED}),
    _p("in_smm", "VMRUN in SMM: #UD (scenario 18)", {"l1.smm": True}),
    _p("hsave_zero", "MSR_VM_HSAVE_PA is 0: #GP (scenario 18)", {"l1.hsave_pa": 0}),
    _p("cpl3", "VMRUN at CPL 3: #GP (scenario 18)", {"l1.cpl": 3}),
    _p("svme_off", "L1's EFER.SVME is 0: #UD (scenario 18)", {"l1.efer": L1_EFER & ~x86.EFER_SVME}),
    _p("vmcb12_unmapped_at_exit", "vmcb12 made unmappable while L2 runs: shutdown (scenario 19)",
       {"l2.exit": "VMMCALL", "l2.vmcb12_unmapped_at_exit": True}),
    _p("single_step_invalid", "TF=1 on a VMRUN with an invalid vmcb12: no #DB (scenario 21)",
       {"vmcb12.control.asid": 0, "l1.rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_TF}),
    _p("smi_in_l2", "An SMI while L2 runs, RSM back into L2 with vmcb12 unchanged",
       {"l2.exit": "SMI"}),
    _p("smi_in_l2_asid_zero", "An SMI while L2 runs; L1's SMM handler sets vmcb12's ASID to 0; RSM "
       "(scenario 20)", {"l2.exit": "SMI", "smm.vmcb12_asid": 0}),
    _p("gif_clear_invalid", "L1 ran CLGI first (GIF=0), then an invalid VMRUN",
       {"l1.gif": 0, "vmcb12.control.asid": 0}),
])
