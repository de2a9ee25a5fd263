"""The svm cases of oracle-public.jsonl, translated into model scenarios.

Each case's `setup.changes` is prose ("default | (1<<60)"); here each is
written once as field values on the right base scenario.  MAXPHYADDR is
the scenario's cpu.maxphyaddr (48).
"""

from nsvm_model import x86
from nsvm_model.svm import defs
from nsvm_model.svm.scenarios import (DEFAULT_FEATURES, L1_CR0, L1_CR3, L1_CR4, L1_EFER, PAE_PD,
                                      PAE_PDPT, PSE_PD)

M = 48
BASE_INTERCEPTS = {"VMRUN", "VMMCALL", "SHUTDOWN"}
NONCANONICAL_HIGH = 0xAAAAAAAAAAAAAAAA & ~((1 << 48) - 1)

# id -> (l2_mode, field changes, guest-memory writes)
TRANSLATION = {
    "svm-baseline-default-vmcb": ("long", {}, {}),
    "svm-efer-svme-clear": ("long", {"vmcb12.save.efer": L1_EFER & ~x86.EFER_SVME}, {}),
    "svm-efer-rsvd-bit60": ("long", {"vmcb12.save.efer": L1_EFER | 1 << 60}, {}),
    "svm-efer-lme-pg-without-pae": ("long", {
        "vmcb12.save.efer": L1_EFER | x86.EFER_LME,
        "vmcb12.save.cr0": L1_CR0 | x86.X86_CR0_PG | x86.X86_CR0_PE,
        "vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PAE}, {}),
    "svm-cr0-cd1-nw0": ("long", {"vmcb12.save.cr0": (L1_CR0 | x86.X86_CR0_CD) & ~x86.X86_CR0_NW}, {}),
    "svm-cr0-cd1-nw1": ("long", {"vmcb12.save.cr0": L1_CR0 | x86.X86_CR0_CD | x86.X86_CR0_NW}, {}),
    "svm-cr3-long-bit52": ("long", {"vmcb12.save.cr3": L1_CR3 | 1 << 52}, {}),
    "svm-cr3-pcide1-bit0": ("long", {"vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PCIDE,
                                     "vmcb12.save.cr3": L1_CR3 | 1 << 0}, {}),
    "svm-cr3-pcide1-bit11": ("long", {"vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PCIDE,
                                      "vmcb12.save.cr3": L1_CR3 | 1 << 11}, {}),
    # The cleared NPT PML4E only matters once L2 touches memory (#NPF after entry).
    "svm-cr3-pcide0-npt-bit0": ("long", {"vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PCIDE,
                                         "vmcb12.save.cr3": L1_CR3 | 1 << 0}, {}),
    "svm-cr3-pcide0-npt-bit5": ("long", {"vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PCIDE,
                                         "vmcb12.save.cr3": L1_CR3 | 1 << 5}, {}),
    "svm-cr4-legacy-bit19": ("long", {"vmcb12.save.efer": L1_EFER & ~x86.EFER_LME,
                                      "vmcb12.save.cr4": L1_CR4 | 1 << 19}, {}),
    "svm-cr4-long-bit14": ("long", {"vmcb12.save.efer": L1_EFER | x86.EFER_LME,
                                    "vmcb12.save.cr4": L1_CR4 | 1 << 14}, {}),
    "svm-cr4-long-bit36": ("long", {"vmcb12.save.efer": L1_EFER | x86.EFER_LME,
                                    "vmcb12.save.cr4": L1_CR4 | 1 << 36}, {}),
    "svm-dr7-bit32": ("long", {"vmcb12.save.dr7": x86.DR7_FIXED_1 | 1 << 32}, {}),
    "svm-msrpm-limit-minus-2pages": ("long", {
        "vmcb12.control.intercepts": BASE_INTERCEPTS | {"MSR_PROT"},
        "vmcb12.control.msrpm_base_pa": (1 << M) - 0x2000}, {}),
    "svm-msrpm-limit-minus-2pages-plus1": ("long", {
        "vmcb12.control.intercepts": BASE_INTERCEPTS | {"MSR_PROT"},
        "vmcb12.control.msrpm_base_pa": (1 << M) - 0x2000 + 1}, {}),
    "svm-msrpm-limit-minus-1page": ("long", {
        "vmcb12.control.intercepts": BASE_INTERCEPTS | {"MSR_PROT"},
        "vmcb12.control.msrpm_base_pa": (1 << M) - 0x1000}, {}),
    "svm-iopm-limit-minus-2pages": ("long", {
        "vmcb12.control.intercepts": BASE_INTERCEPTS | {"IOIO_PROT"},
        "vmcb12.control.iopm_base_pa": (1 << M) - 0x2000}, {}),
    "svm-iopm-limit-minus-1page": ("long", {
        "vmcb12.control.intercepts": BASE_INTERCEPTS | {"IOIO_PROT"},
        "vmcb12.control.iopm_base_pa": (1 << M) - 0x1000}, {}),
    "svm-noncanonical-es-base": ("long", {"vmcb12.save.es.base": NONCANONICAL_HIGH}, {}),
    "svm-noncanonical-cs-base": ("long", {"vmcb12.save.cs.base": NONCANONICAL_HIGH}, {}),
    "svm-noncanonical-gdtr-base": ("long", {"vmcb12.save.gdtr.base": 0x9000 | NONCANONICAL_HIGH}, {}),
    "svm-asid-zero": ("long", {"vmcb12.control.asid": 0}, {}),
    "svm-eventinj-exception-type-vector2": ("long", {
        "vmcb12.control.event_inj": 2 | defs.SVM_EVTINJ_TYPE_EXEPT | defs.SVM_EVTINJ_VALID}, {}),
    "svm-vnmi-enable-without-nmi-intercept": ("long", {
        "cpu.features": DEFAULT_FEATURES | {"VNMI"},
        "vmcb12.control.int_ctl": defs.V_NMI_ENABLE_MASK, "vmcb12.control.int_vector": 2}, {}),
    "svm-pae-cr3-bit63": ("pae", {"vmcb12.save.cr3": PAE_PDPT | 1 << 63,
                                  "vmcb12.control.intercepts": BASE_INTERCEPTS | {"EXCEPTION_PF"}}, {}),
    "svm-pae-cr3-bit-maxphyaddr": ("pae", {"vmcb12.save.cr3": PAE_PDPT | 1 << M,
                                           "vmcb12.control.intercepts": BASE_INTERCEPTS | {"EXCEPTION_PF"}}, {}),
    "svm-pae-pdpte1-bit52-npt": ("pae", {"vmcb12.control.intercepts": BASE_INTERCEPTS | {"EXCEPTION_PF"}},
                                 {PAE_PDPT + 8: (PAE_PD + 0x1000) | 1 | 1 << 52}),
    "svm-pse-cr3-bit63": ("32bit", {"vmcb12.save.cr3": PSE_PD | 1 << 63}, {}),
    # selftest_generic_svm_setup: VMRUN|VMMCALL only, IOPM 0; the quirk is disabled.
    "svm-selftest-gpat-invalid-npt": ("long", {
        "vmcb12.control.intercepts": {"VMRUN", "VMMCALL"}, "vmcb12.control.iopm_base_pa": 0,
        "cpu.shared_pat_quirk": False, "vmcb12.save.g_pat": 0x0808080808080808}, {}),
}
