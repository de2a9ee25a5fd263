"""SVM constants, named as in arch/x86/include/asm/svm.h and uapi/asm/svm.h."""

from __future__ import annotations

# VMCB control area: int_ctl
V_TPR_MASK = 0x0F
V_IRQ_MASK = 1 << 8
V_GIF_MASK = 1 << 9
V_NMI_PENDING_MASK = 1 << 11
V_NMI_BLOCKING_MASK = 1 << 12
V_INTR_PRIO_MASK = 0x0F << 16
V_IGN_TPR_MASK = 1 << 20
V_IRQ_INJECTION_BITS_MASK = V_IRQ_MASK | V_INTR_PRIO_MASK | V_IGN_TPR_MASK
V_INTR_MASKING_MASK = 1 << 24
V_GIF_ENABLE_MASK = 1 << 25
V_NMI_ENABLE_MASK = 1 << 26

# misc_ctl (called nested_ctl in older trees)
SVM_MISC_ENABLE_NP = 1 << 0
SVM_MISC_ENABLE_SEV = 1 << 1
SVM_MISC_ENABLE_SEV_ES = 1 << 2
SVM_MISC_ENABLE_GMET = 1 << 3

# event_inj
SVM_EVTINJ_VEC_MASK = 0xFF
SVM_EVTINJ_TYPE_SHIFT = 8
SVM_EVTINJ_TYPE_MASK = 7 << SVM_EVTINJ_TYPE_SHIFT
SVM_EVTINJ_TYPE_INTR = 0 << SVM_EVTINJ_TYPE_SHIFT
SVM_EVTINJ_TYPE_NMI = 2 << SVM_EVTINJ_TYPE_SHIFT
SVM_EVTINJ_TYPE_EXEPT = 3 << SVM_EVTINJ_TYPE_SHIFT
SVM_EVTINJ_TYPE_SOFT = 4 << SVM_EVTINJ_TYPE_SHIFT
SVM_EVTINJ_VALID_ERR = 1 << 11
SVM_EVTINJ_VALID = 1 << 31
SVM_EVTINJ_RESERVED_BITS = 0xFFFFFFFF & ~(SVM_EVTINJ_VEC_MASK | SVM_EVTINJ_TYPE_MASK
                                          | SVM_EVTINJ_VALID_ERR | SVM_EVTINJ_VALID)

SVM_INT_VECTOR_MASK = 0xFF
SVM_INTERRUPT_SHADOW_MASK = 1 << 0

# segment attributes
SVM_SELECTOR_L_MASK = 1 << 9
SVM_SELECTOR_DB_MASK = 1 << 10

# exit codes (uapi/asm/svm.h); SVM_EXIT_ERR is -1 in a u64 field
SVM_EXIT_SHUTDOWN = 0x07F
SVM_EXIT_VMRUN = 0x080
SVM_EXIT_VMMCALL = 0x081
SVM_EXIT_EXCP_BASE = 0x040
SVM_EXIT_NPF = 0x400
SVM_EXIT_SW = 0xF0000000
SVM_EXIT_ERR = (1 << 64) - 1

MSRPM_SIZE = 0x2000           # two pages
IOPM_SIZE = 0x3000            # three pages
TLB_CONTROL_DO_NOTHING = 0
TLB_CONTROL_FLUSH_ALL_ASID = 1
TLB_CONTROL_MASK = 0x7               # GENMASK(2, 0)

VMRUN_INSN_LEN = 3            # 0f 01 d8
VMMCALL_INSN_LEN = 3          # 0f 01 d9

# Intercept names as in enum intercept_bits, without the INTERCEPT_ prefix.
INTERCEPTS = (
    "CR0_READ", "CR3_READ", "CR4_READ", "CR8_READ", "CR0_WRITE", "CR3_WRITE",
    "CR4_WRITE", "CR8_WRITE", "EXCEPTION_DB", "EXCEPTION_BP", "EXCEPTION_UD",
    "EXCEPTION_PF", "EXCEPTION_AC", "EXCEPTION_MC",
    "INTR", "NMI", "SMI", "INIT", "VINTR", "SELECTIVE_CR0", "STORE_IDTR",
    "STORE_GDTR", "STORE_LDTR", "STORE_TR", "LOAD_IDTR", "LOAD_GDTR",
    "LOAD_LDTR", "LOAD_TR", "RDTSC", "RDPMC", "PUSHF", "POPF", "CPUID", "RSM",
    "IRET", "INTn", "INVD", "PAUSE", "HLT", "INVLPG", "INVLPGA", "IOIO_PROT",
    "MSR_PROT", "TASK_SWITCH", "FERR_FREEZE", "SHUTDOWN",
    "VMRUN", "VMMCALL", "VMLOAD", "VMSAVE", "STGI", "CLGI", "SKINIT", "RDTSCP",
    "ICEBP", "WBINVD", "MONITOR", "MWAIT", "MWAIT_COND", "XSETBV", "RDPRU",
    "EFER_WRITE", "INVLPGB", "INVLPGB_ILLEGAL", "INVPCID", "MCOMMIT", "TLBSYNC",
    "BUSLOCK", "IDLE_HLT",
)

# Intercepts cleared from the cached copy when L1's CPUID lacks the feature
# (__nested_copy_vmcb_control_to_cache: feature -> intercept).
SANITIZED_INTERCEPTS = (
    ("XSAVE", "XSETBV"), ("INVPCID", "INVPCID"), ("RDTSCP", "RDTSCP"),
    ("SKINIT", "SKINIT"), ("RDPRU", "RDPRU"),
)

# CPUID features an L1 may be offered; the names of X86_FEATURE_*.
FEATURES = (
    "SVM", "NPT", "NRIPS", "VGIF", "VNMI", "LBRV", "PAUSEFILTER", "PFTHRESHOLD",
    "TSCRATEMSR", "V_VMSAVE_VMLOAD", "GMET", "ERAPS", "SHSTK", "IBT", "SEV_ES",
    "LM", "NX", "FXSR_OPT", "AUTOIBRS", "XSAVE", "SMEP", "SMAP", "FSGSBASE", "PKU",
    "LA57", "UMIP", "PCID", "LAM", "FRED", "INVPCID", "RDTSCP", "SKINIT", "RDPRU", "VMX",
)

# MSRs whose permission bits nested_svm_merge_msrpm() merges (the table in
# nested_svm_init_msrpm_merge_offsets()); only their chunks are read.
MERGE_MSRS = (
    0xC0000081, 0x174, 0x176, 0x175,                       # STAR, SYSENTER_CS/EIP/ESP
    0xC0000101, 0xC0000100, 0xC0000102, 0xC0000082,        # GS/FS/KERNEL_GS_BASE, LSTAR
    0xC0000083, 0xC0000084,                                # CSTAR, SYSCALL_MASK
    0x48, 0x49, 0x10B, 0xE8, 0xE7,                         # SPEC_CTRL, PRED_CMD, FLUSH_CMD, APERF, MPERF
    0x1DB, 0x1DC, 0x1DD, 0x1DE,                            # LBR from/to, INT from/to
    0xC0010004, 0xC0010005, 0xC0010006, 0xC0010007,        # K7 PERFCTR0-3
    0xC0010201, 0xC0010203, 0xC0010205, 0xC0010207, 0xC0010209, 0xC001020B,
    0xC0000301, 0xC0000300, 0xC0000302, 0xC0000303,        # PERF_CNTR_GLOBAL_*
)


def svm_msrpm_bit_nr(msr: int) -> int:
    """The MSR's first bit in the permission map (two bits per MSR, three ranges)."""
    for base, byte_offset in ((0x0, 0x0), (0xC0000000, 0x800), (0xC0010000, 0x1000)):
        if base <= msr < base + 0x2000:
            return byte_offset * 8 + (msr - base) * 2
    return -1


def msrpm_merge_offsets() -> tuple:
    """Chunk offsets (8-byte units) read from L1's bitmap, in table order."""
    offsets = []
    for msr in MERGE_MSRS:
        off = svm_msrpm_bit_nr(msr) // 8 // 8
        if off not in offsets:
            offsets.append(off)
    return tuple(offsets)
