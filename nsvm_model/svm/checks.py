"""The nSVM consistency checks, bit-exact, in the kernel's order.

nested_vmcb_check_save() (S1-S7) and nested_vmcb_check_controls() (C1-C7)
of arch/x86/kvm/svm/nested.c at the pinned commit.  Each check reads the
*cached* vmcb12 (nested.save / nested.ctl), never guest memory: that is
what makes the checks immune to L1 changing vmcb12 after they ran.

A check is (id, description, predicate); the predicate returns True when
the value is valid.  ``first_failure`` returns the first one that fails,
which is the one KVM's CC() trace would name.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional

from .. import x86
from . import defs


class Check(NamedTuple):
    id: str
    text: str
    valid: Callable[[Mapping, "CheckEnv"], bool]


class CheckEnv(NamedTuple):
    maxphyaddr: int
    features: frozenset
    check_gpat: bool


def _exception_vector_valid(vector: int, features: frozenset) -> bool:
    """nested_svm_event_inj_valid_exept(): a defined exception vector."""
    always = {x86.DE_VECTOR, x86.DB_VECTOR, x86.BP_VECTOR, x86.OF_VECTOR, x86.BR_VECTOR,
              x86.UD_VECTOR, x86.NM_VECTOR, x86.DF_VECTOR, x86.TS_VECTOR, x86.NP_VECTOR,
              x86.SS_VECTOR, x86.GP_VECTOR, x86.PF_VECTOR, x86.MF_VECTOR, x86.AC_VECTOR,
              x86.MC_VECTOR, x86.XM_VECTOR, x86.HV_VECTOR, x86.SX_VECTOR}
    if vector in always:
        return True
    if vector == x86.CP_VECTOR:
        return "SHSTK" in features
    if vector == x86.VC_VECTOR:
        return "SEV_ES" in features
    return False


def event_inj_valid(event_inj: int, features: frozenset) -> bool:
    """nested_svm_check_event_inj()."""
    if not event_inj & defs.SVM_EVTINJ_VALID:
        return True
    kind = event_inj & defs.SVM_EVTINJ_TYPE_MASK
    if kind not in (defs.SVM_EVTINJ_TYPE_INTR, defs.SVM_EVTINJ_TYPE_NMI,
                    defs.SVM_EVTINJ_TYPE_EXEPT, defs.SVM_EVTINJ_TYPE_SOFT):
        return False
    if kind == defs.SVM_EVTINJ_TYPE_EXEPT:
        return _exception_vector_valid(event_inj & defs.SVM_EVTINJ_VEC_MASK, features)
    return True


def bitmap_pa_valid(pa: int, size: int, maxphyaddr: int) -> bool:
    """nested_svm_check_bitmap_pa(): first and last byte are legal GPAs."""
    addr = (pa + x86.PAGE_SIZE - 1) & x86.PAGE_MASK       # PAGE_ALIGN()
    return x86.is_legal_gpa(addr, maxphyaddr) and x86.is_legal_gpa(addr + size - 1, maxphyaddr)


def _long_mode_paging(s) -> bool:
    return bool(s["efer"] & x86.EFER_LME and s["cr0"] & x86.X86_CR0_PG)


SAVE_CHECKS = (
    Check("S1", "EFER.SVME must be set",
          lambda s, e: bool(s["efer"] & x86.EFER_SVME)),
    Check("S2", "CR0.NW without CR0.CD, or any of CR0[63:32], is illegal",
          lambda s, e: not (not s["cr0"] & x86.X86_CR0_CD and s["cr0"] & x86.X86_CR0_NW)
          and not s["cr0"] >> 32),
    Check("S3", "DR6[63:32] and DR7[63:32] must be clear",
          lambda s, e: x86.dr6_valid(s["dr6"]) and x86.dr7_valid(s["dr7"])),
    Check("S4a", "EFER.LME and CR0.PG require CR4.PAE",
          lambda s, e: not _long_mode_paging(s) or bool(s["cr4"] & x86.X86_CR4_PAE)),
    Check("S4b", "EFER.LME and CR0.PG require CR0.PE",
          lambda s, e: not _long_mode_paging(s) or bool(s["cr0"] & x86.X86_CR0_PE)),
    Check("S4c", "EFER.LME and CR0.PG require a legal CR3 (no bit at or above MAXPHYADDR)",
          lambda s, e: not _long_mode_paging(s) or x86.is_legal_cr3(s["cr3"], e.maxphyaddr, e.features)),
    Check("S4d", "EFER.LME and CR0.PG forbid CS.L and CS.D together",
          lambda s, e: not _long_mode_paging(s)
          or not (s["cs.attrib"] & defs.SVM_SELECTOR_L_MASK and s["cs.attrib"] & defs.SVM_SELECTOR_DB_MASK)),
    Check("S5", "CR4 must have no bit reserved for this vCPU (__kvm_is_valid_cr4)",
          lambda s, e: x86.cr4_valid(s["cr4"], e.features)),
    Check("S6", "EFER must be valid for this vCPU (kvm_valid_efer)",
          lambda s, e: x86.efer_valid(s["efer"], e.features)),
    Check("S7", "g_pat must be a valid PAT when L2 has its own PAT",
          lambda s, e: not e.check_gpat or x86.pat_valid(s["g_pat"])),
)

CONTROL_CHECKS = (
    Check("C1", "VMRUN must be intercepted",
          lambda c, e: "VMRUN" in c["intercepts"]),
    Check("C2", "ASID must not be 0",
          lambda c, e: c["asid"] != 0),
    Check("C3", "with NP enabled, nCR3 must be a legal GPA",
          lambda c, e: not c["misc_ctl"] & defs.SVM_MISC_ENABLE_NP
          or x86.is_legal_gpa(c["nested_cr3"], e.maxphyaddr)),
    Check("C4", "the 8 KiB MSR permission map must lie below 2^MAXPHYADDR",
          lambda c, e: bitmap_pa_valid(c["msrpm_base_pa"], defs.MSRPM_SIZE, e.maxphyaddr)),
    Check("C5", "the 12 KiB I/O permission map must lie below 2^MAXPHYADDR",
          lambda c, e: bitmap_pa_valid(c["iopm_base_pa"], defs.IOPM_SIZE, e.maxphyaddr)),
    Check("C6", "V_NMI_ENABLE requires the NMI intercept",
          lambda c, e: not c["int_ctl"] & defs.V_NMI_ENABLE_MASK or "NMI" in c["intercepts"]),
    Check("C7", "a valid EVENTINJ must have a defined type, and an exception a defined vector",
          lambda c, e: event_inj_valid(c["event_inj"], e.features)),
)

SAVE_CHECK_FIELDS = ("efer", "cr0", "cr3", "cr4", "dr6", "dr7", "cs.attrib", "g_pat")
CONTROL_CHECK_FIELDS = ("intercepts", "asid", "misc_ctl", "nested_cr3", "msrpm_base_pa",
                        "iopm_base_pa", "int_ctl", "event_inj")


def first_failure(checks, values: Mapping, env: CheckEnv) -> Optional[Check]:
    for check in checks:
        if not check.valid(values, env):
            return check
    return None
