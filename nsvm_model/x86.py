"""Architectural x86 facts shared by the SVM and VMX flows.

Bit positions come from the AMD APM vol. 2 and the Intel SDM vol. 3; the
validity rules mirror KVM helpers at the pinned commit (named in each
docstring).  Nothing here knows about VMCBs or VMCSs.
"""

from __future__ import annotations

# --- EFER (APM vol. 2, "Extended Feature Enable Register") -----------------
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NX = 1 << 11
EFER_SVME = 1 << 12
EFER_LMSLE = 1 << 13
EFER_FFXSR = 1 << 14
EFER_AUTOIBRS = 1 << 21

# --- CR0 -------------------------------------------------------------------
X86_CR0_PE = 1 << 0
X86_CR0_MP = 1 << 1
X86_CR0_EM = 1 << 2
X86_CR0_TS = 1 << 3
X86_CR0_ET = 1 << 4
X86_CR0_NE = 1 << 5
X86_CR0_WP = 1 << 16
X86_CR0_AM = 1 << 18
X86_CR0_NW = 1 << 29
X86_CR0_CD = 1 << 30
X86_CR0_PG = 1 << 31

# --- CR4 -------------------------------------------------------------------
X86_CR4_VME = 1 << 0
X86_CR4_PVI = 1 << 1
X86_CR4_TSD = 1 << 2
X86_CR4_DE = 1 << 3
X86_CR4_PSE = 1 << 4
X86_CR4_PAE = 1 << 5
X86_CR4_MCE = 1 << 6
X86_CR4_PGE = 1 << 7
X86_CR4_PCE = 1 << 8
X86_CR4_OSFXSR = 1 << 9
X86_CR4_OSXMMEXCPT = 1 << 10
X86_CR4_UMIP = 1 << 11
X86_CR4_LA57 = 1 << 12
X86_CR4_VMXE = 1 << 13
X86_CR4_SMXE = 1 << 14
X86_CR4_FSGSBASE = 1 << 16
X86_CR4_PCIDE = 1 << 17
X86_CR4_OSXSAVE = 1 << 18
X86_CR4_SMEP = 1 << 20
X86_CR4_SMAP = 1 << 21
X86_CR4_PKE = 1 << 22
X86_CR4_CET = 1 << 23
X86_CR4_LAM_SUP = 1 << 28
X86_CR4_FRED = 1 << 32

# --- RFLAGS ----------------------------------------------------------------
X86_EFLAGS_FIXED = 1 << 1
X86_EFLAGS_TF = 1 << 8
X86_EFLAGS_IF = 1 << 9
X86_EFLAGS_VM = 1 << 17

# --- debug registers ---------------------------------------------------------
DR6_ACTIVE_LOW = 0xFFFF0FF0
DR7_FIXED_1 = 0x00000400

# --- exception vectors -------------------------------------------------------
DE_VECTOR, DB_VECTOR, NMI_VECTOR, BP_VECTOR, OF_VECTOR, BR_VECTOR = 0, 1, 2, 3, 4, 5
UD_VECTOR, NM_VECTOR, DF_VECTOR, TS_VECTOR, NP_VECTOR = 6, 7, 8, 10, 11
SS_VECTOR, GP_VECTOR, PF_VECTOR, MF_VECTOR, AC_VECTOR = 12, 13, 14, 16, 17
# Page-fault error code bits (arch/x86/include/asm/kvm_host.h); bits 32 and 33 are KVM's own,
# set for a fault in a nested page table: on the final GPA, or on a guest page-table access.
PFERR_PRESENT_MASK, PFERR_WRITE_MASK, PFERR_USER_MASK = 1 << 0, 1 << 1, 1 << 2
PFERR_RSVD_MASK, PFERR_FETCH_MASK = 1 << 3, 1 << 4
PFERR_GUEST_FINAL_MASK, PFERR_GUEST_PAGE_MASK = 1 << 32, 1 << 33
PFERR_GUEST_FAULT_STAGE_MASK = PFERR_GUEST_FINAL_MASK | PFERR_GUEST_PAGE_MASK
MC_VECTOR, XM_VECTOR, VE_VECTOR, CP_VECTOR, HV_VECTOR = 18, 19, 20, 21, 28
VC_VECTOR, SX_VECTOR = 29, 30

PAGE_SIZE = 0x1000
PAGE_MASK = ~(PAGE_SIZE - 1) & ((1 << 64) - 1)
PT_PRESENT_MASK = 1 << 0

# Bits of CR4 KVM knows at all (arch/x86/include/asm/kvm_host.h,
# CR4_RESERVED_BITS is the complement).  SMXE and PKS are not in it.
_CR4_KNOWN = (X86_CR4_VME | X86_CR4_PVI | X86_CR4_TSD | X86_CR4_DE | X86_CR4_PSE
              | X86_CR4_PAE | X86_CR4_MCE | X86_CR4_PGE | X86_CR4_PCE
              | X86_CR4_OSFXSR | X86_CR4_PCIDE | X86_CR4_OSXSAVE | X86_CR4_SMEP
              | X86_CR4_FSGSBASE | X86_CR4_OSXMMEXCPT | X86_CR4_LA57
              | X86_CR4_VMXE | X86_CR4_SMAP | X86_CR4_PKE | X86_CR4_UMIP
              | X86_CR4_LAM_SUP | X86_CR4_CET | X86_CR4_FRED)

# CR4 bits that are reserved unless the guest's CPUID has the feature
# (__cr4_calc_reserved_bits in arch/x86/kvm/x86.h).
_CR4_FEATURE_BITS = {
    X86_CR4_OSXSAVE: ("XSAVE",),
    X86_CR4_SMEP: ("SMEP",),
    X86_CR4_SMAP: ("SMAP",),
    X86_CR4_FSGSBASE: ("FSGSBASE",),
    X86_CR4_PKE: ("PKU",),
    X86_CR4_LA57: ("LA57",),
    X86_CR4_UMIP: ("UMIP",),
    X86_CR4_VMXE: ("VMX",),
    X86_CR4_PCIDE: ("PCID",),
    X86_CR4_CET: ("SHSTK", "IBT"),
    X86_CR4_LAM_SUP: ("LAM",),
    X86_CR4_FRED: ("FRED",),
}

# EFER bits KVM accepts at all on an SVM host (efer_reserved_bits after
# kvm_enable_efer_bits() in svm_hardware_setup), each gated by a CPUID
# feature in __kvm_valid_efer().
_EFER_FEATURE_BITS = {
    EFER_SCE: (),
    EFER_LME: ("LM",),
    EFER_LMA: ("LM",),
    EFER_NX: ("NX",),
    EFER_SVME: ("SVM",),
    EFER_FFXSR: ("FXSR_OPT",),
    EFER_AUTOIBRS: ("AUTOIBRS",),
}

MASK64 = (1 << 64) - 1


def rsvd_bits(lo: int, hi: int) -> int:
    """Mask of bits lo..hi inclusive (KVM's rsvd_bits())."""
    if hi < lo:
        return 0
    return ((1 << (hi - lo + 1)) - 1) << lo


def is_legal_gpa(gpa: int, maxphyaddr: int) -> bool:
    """kvm_vcpu_is_legal_gpa(): no bit at or above the guest MAXPHYADDR."""
    return not (gpa & rsvd_bits(maxphyaddr, 63))


def is_legal_cr3(cr3: int, maxphyaddr: int, features: frozenset = frozenset()) -> bool:
    """kvm_vcpu_is_legal_cr3(): a legal GPA once the LAM bits are dropped."""
    if "LAM" in features:
        cr3 &= ~((1 << 61) | (1 << 62))
    return is_legal_gpa(cr3, maxphyaddr)


def page_address_valid(gpa: int, maxphyaddr: int) -> bool:
    """page_address_valid(): page aligned and a legal GPA."""
    return not (gpa & (PAGE_SIZE - 1)) and is_legal_gpa(gpa, maxphyaddr)


def dr6_valid(dr6: int) -> bool:
    """kvm_dr6_valid(): bits 63:32 clear."""
    return not (dr6 >> 32)


def dr7_valid(dr7: int) -> bool:
    """kvm_dr7_valid(): bits 63:32 clear."""
    return not (dr7 >> 32)


def pat_valid(pat: int) -> bool:
    """kvm_pat_valid(): every byte is a defined type (0, 1, 4, 5, 6 or 7)."""
    if pat & 0xF8F8F8F8F8F8F8F8:
        return False
    # Types 2 and 3 have bit 1 set and bit 2 clear.
    return (pat | ((pat & 0x0202020202020202) << 1)) == pat


def cr4_reserved_bits(features: frozenset) -> int:
    """The guest's CR4 reserved bits (vcpu->arch.cr4_guest_rsvd_bits)."""
    reserved = MASK64 & ~_CR4_KNOWN
    for bit, needs in _CR4_FEATURE_BITS.items():
        if not any(f in features for f in needs):
            reserved |= bit
    return reserved


def cr4_valid(cr4: int, features: frozenset) -> bool:
    """__kvm_is_valid_cr4()."""
    return not (cr4 & cr4_reserved_bits(features))


def efer_valid(efer: int, features: frozenset) -> bool:
    """kvm_valid_efer(): no reserved bit, and each set bit's feature present."""
    allowed = 0
    for bit, needs in _EFER_FEATURE_BITS.items():
        if all(f in features for f in needs):
            allowed |= bit
    return not (efer & ~allowed & MASK64)


def is_paging(cr0: int) -> bool:
    return bool(cr0 & X86_CR0_PG)


def is_long_mode(efer: int) -> bool:
    return bool(efer & EFER_LMA)


def is_pae_paging(cr0: int, cr4: int, efer: int) -> bool:
    """is_pae_paging(): paging on, CR4.PAE on, not in long mode."""
    return is_paging(cr0) and bool(cr4 & X86_CR4_PAE) and not is_long_mode(efer)


def paging_mode(cr0: int, cr4: int, efer: int) -> str:
    """The paging mode a CPU role describes (kvm_calc_cpu_role's level)."""
    if not is_paging(cr0):
        return "nonpaging"
    if is_long_mode(efer):
        return "5-level" if cr4 & X86_CR4_LA57 else "4-level"
    if cr4 & X86_CR4_PAE:
        return "pae"
    return "32-bit"


def pdptr_rsvd_bits(maxphyaddr: int) -> int:
    """pdptr_rsvd_bits(): bits above MAXPHYADDR, 8:5 and 2:1 of a PAE PDPTE."""
    return rsvd_bits(maxphyaddr, 63) | rsvd_bits(5, 8) | rsvd_bits(1, 2)


def pdpt_base(cr3: int) -> int:
    """In PAE paging CR3[31:5] locates the 32-byte aligned PDPT."""
    return cr3 & 0xFFFFFFE0


# --- register values a running CPU can hold ------------------------------------------
# L1 is running when it executes VMRUN or VMLAUNCH, so its control registers passed
# the architectural checks of MOV to CR0/CR4 and WRMSR EFER (SDM vol. 3A 2.5, APM
# vol. 2 3.1); the CPU itself keeps EFER.LMA = EFER.LME & CR0.PG.
_EFER_KNOWN = EFER_LMSLE | sum(_EFER_FEATURE_BITS)
_RFLAGS_RESERVED = rsvd_bits(22, 63) | (1 << 15) | (1 << 5) | (1 << 3)


def l1_register_problems(values) -> list:
    """(field, why) for each L1 register value no CPU could hold."""
    cr0, cr4, efer, rflags = (values[f"l1.{r}"] for r in ("cr0", "cr4", "efer", "rflags"))
    problems = [
        ("l1.cr0", cr0 >> 32, "bits 63:32 are reserved"),
        ("l1.cr0", cr0 & X86_CR0_PG and not cr0 & X86_CR0_PE, "CR0.PG needs CR0.PE"),
        ("l1.cr0", cr0 & X86_CR0_NW and not cr0 & X86_CR0_CD, "CR0.NW needs CR0.CD"),
        ("l1.cr4", cr4 & ~_CR4_KNOWN & MASK64, "it sets bits CR4 does not define"),
        ("l1.efer", efer & ~_EFER_KNOWN & MASK64, "it sets bits EFER does not define"),
        ("l1.efer", bool(efer & EFER_LMA) != bool(efer & EFER_LME and cr0 & X86_CR0_PG),
         "EFER.LMA must equal EFER.LME and CR0.PG (the CPU sets it; see l1.cr0)"),
        ("l1.cr4", efer & EFER_LMA and not cr4 & X86_CR4_PAE, "long mode (EFER.LMA) needs CR4.PAE"),
        ("l1.rflags", not rflags & X86_EFLAGS_FIXED, "RFLAGS bit 1 is always 1"),
        ("l1.rflags", rflags & _RFLAGS_RESERVED, "bits 63:22, 15, 5 and 3 are reserved"),
    ]
    return [(field, why) for field, broken, why in problems if broken]


def check_l1_registers(values) -> None:
    """Refuse a scenario whose L1 registers no CPU could hold, naming the field."""
    for field, why in l1_register_problems(values):
        raise ValueError(f"{field}: {values[field]:#x} is not a value a running CPU can hold: {why}")


# --- canonical addresses -------------------------------------------------------------
# arch/x86/include/asm/page.h and the KVM helpers of arch/x86/kvm/x86.h at the pinned
# commit: is_noncanonical_msr_address() and is_noncanonical_base_address() pass
# X86EMUL_F_MSR / X86EMUL_F_DT_LOAD to is_noncanonical_address(), which then checks
# against max_host_virt_addr_bits() (KVM's own LA57 support), not the vCPU's CR4.LA57.

def canonical_address(la: int, bits: int) -> int:
    """__canonical_address(): bits 63:bits-1 all copies of bit bits-1."""
    la &= MASK64
    low = la & ((1 << bits) - 1)
    if (la >> (bits - 1)) & 1:
        low |= MASK64 & ~((1 << bits) - 1)
    return low


def is_canonical_address(la: int, bits: int) -> bool:
    """__is_canonical_address(la, bits)."""
    return canonical_address(la, bits) == la & MASK64


def max_host_virt_addr_bits(host_la57: bool) -> int:
    """max_host_virt_addr_bits(): 57 if kvm_cpu_cap_has(X86_FEATURE_LA57), else 48."""
    return 57 if host_la57 else 48


def vcpu_virt_addr_bits(cr4: int) -> int:
    """vcpu_virt_addr_bits(): 57 with CR4.LA57, else 48."""
    return 57 if cr4 & X86_CR4_LA57 else 48


def is_noncanonical_msr_address(la: int, host_virt_addr_bits: int) -> bool:
    """is_noncanonical_msr_address(la, vcpu): not canonical at the host's width."""
    return not is_canonical_address(la, host_virt_addr_bits)


def is_noncanonical_base_address(la: int, host_virt_addr_bits: int) -> bool:
    """is_noncanonical_base_address(la, vcpu): not canonical at the host's width."""
    return not is_canonical_address(la, host_virt_addr_bits)


# --- the architectural PMU's IA32_PERF_GLOBAL_CTRL ---------------------------------------
MSR_CORE_PERF_GLOBAL_CTRL = 0x38F
KVM_FIXED_PMC_BASE_IDX = 32     # INTEL_PMC_IDX_FIXED: fixed counter i is enabled by bit 32 + i


def intel_global_ctrl_rsvd(nr_gp_counters: int, nr_fixed_counters: int) -> int:
    """pmu->global_ctrl_rsvd as intel_pmu_refresh() computes it: every bit that enables
    no counter the vPMU has (bits nr_gp..31 and 32+nr_fixed..63).  With no vPMU
    kvm_pmu_refresh() leaves it at ~0ull, which the formula gives for 0 and 0."""
    enabled = ((1 << nr_gp_counters) - 1) | (((1 << nr_fixed_counters) - 1) << KVM_FIXED_PMC_BASE_IDX)
    return MASK64 & ~enabled


def kvm_valid_perf_global_ctrl(global_ctrl_rsvd: int, data: int) -> bool:
    """kvm_valid_perf_global_ctrl() (arch/x86/kvm/pmu.h): no reserved bit set."""
    return not (global_ctrl_rsvd & data)


# --- CET: IA32_S_CET / IA32_U_CET (arch/x86/include/asm/msr-index.h, arch/x86/kvm/msrs.h) --
CET_SHSTK_EN = 1 << 0
CET_WRSS_EN = 1 << 1
CET_ENDBR_EN = 1 << 2
CET_SUPPRESS = 1 << 10
CET_WAIT_ENDBR = 1 << 11
CET_US_RESERVED_BITS = 0x3C0                                   # GENMASK(9, 6)
CET_US_SHSTK_MASK_BITS = 0x3                                   # GENMASK(1, 0)
CET_US_IBT_MASK_BITS = 0x3C | (MASK64 & ~0x3FF)                # GENMASK_ULL(5, 2) | GENMASK_ULL(63, 10)


def kvm_is_valid_u_s_cet(data: int, features: frozenset) -> bool:
    """kvm_is_valid_u_s_cet() (arch/x86/kvm/msrs.h at the pinned commit)."""
    if data & CET_US_RESERVED_BITS:
        return False
    if "SHSTK" not in features and data & CET_US_SHSTK_MASK_BITS:
        return False
    if "IBT" not in features and data & CET_US_IBT_MASK_BITS:
        return False
    if (data >> 12) % 4:                       # !IS_ALIGNED(CET_US_LEGACY_BITMAP_BASE(data), 4)
        return False
    return not (data & CET_SUPPRESS and data & CET_WAIT_ENDBR)
