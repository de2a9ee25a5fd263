"""Every nested consistency case of kvm-unit-tests x86/svm_tests.c, loop by loop.

``build_cases()`` walks the test functions of kvm-unit-tests `x86/svm_tests.c`
(commit KUT_COMMIT) in their own order and writes one concrete record per
VMRUN whose outcome the C code asserts: each loop over bits or addresses is
expanded the way the C loop runs it (start, end, step and reserved-bit mask),
and each record carries the vmcb12 state the C code has built by then (the
tests change the VMCB cumulatively, so a record holds every change still in
force, not only the last one).

The records are the data: ``python tests/kut_svm.py`` rewrites
``tests/data/kut-svm-cases.jsonl``, and ``tests/test_kut_svm.py`` runs every
record through the model and checks that the file matches this generator.

Values are the model's rendition of kvm-unit-tests' ``vmcb_ident()``
(``nsvm_model.svm.scenarios``): MAXPHYADDR 48, 4 GiB of RAM (``-m 4g`` in
x86/unittests.cfg), MSRPM at 0x12000, IOPM at 0x14000, L1 CR3 0x100000.
Where the C code reads the host (``cpuid_maxphyaddr()``, ``this_cpu_has()``,
``npt_supported()``), the record names the value it used in
``setup.preconditions``.

Kernel checks are quoted from arch/x86/kvm/svm/nested.c of kvm-x86/linux at
KVM_COMMIT; ``MODEL_CHECKS`` says which of the model's checks (S1-S7, C1-C7
of nsvm_model.svm.checks) or late steps (by step id) each kernel check is,
so the test can check that the model failed for the same reason.
"""

from __future__ import annotations

import json
from pathlib import Path

from nsvm_model import x86
from nsvm_model.svm import defs
from nsvm_model.svm.scenarios import (DEFAULT_FEATURES, IOPM_GPA, L1_CR0, L1_CR3, L1_CR4, L1_EFER,
                                      L2_RIP, MSRPM_GPA, PAE_PD, PAE_PDPT, PSE_PD)

KUT_REPO = "kvm-unit-tests/kvm-unit-tests"
KUT_PATH = "x86/svm_tests.c"
KUT_COMMIT = "1da1819e49fc4938985edca67df669099b4c87a7"
KVM_COMMIT = "1a27afa0511e404fd87c1a5e643945940ef72f90"
NESTED_C = "arch/x86/kvm/svm/nested.c@1a27afa0511e"

DATA = Path(__file__).resolve().parent / "data" / "kut-svm-cases.jsonl"

M = 48                                   # the scenario's cpu.maxphyaddr
BASE_INTERCEPTS = ("SHUTDOWN", "VMMCALL", "VMRUN")   # vmcb_ident()
CODE64_ATTRIB = 0xA99                    # vmcb_ident() code_seg_attr
GDTR_BASE, IDTR_BASE = 0x9000, 0xA000    # the model's vmcb_ident descriptor tables
NONCANONICAL = 0xAAAAAAAAAAAAAAAA        # lib/x86/processor.h

# x86/svm.h masks the loops test against
SVM_CR0_RESERVED_MASK = 0xFFFFFFFF00000000
SVM_CR3_LONG_MBZ_MASK = 0xFFF0000000000000
SVM_CR3_LONG_RESERVED_MASK = 0x0000000000000FE7
SVM_CR3_PAE_LEGACY_RESERVED_MASK = 0x0000000000000007
SVM_CR4_LEGACY_RESERVED_MASK = 0xFE08E000
SVM_CR4_RESERVED_MASK = 0xFFFFFFFFFE08E000
SVM_DR6_RESERVED_MASK = 0xFFFFFFFFFFFF1FF0
SVM_DR7_RESERVED_MASK = 0xFFFFFFFF0000CC00
SVM_EFER_RESERVED_MASK = 0xFFFFFFFFFFFF0200

SVM_EXIT_VMMCALL = 0x081
SVM_EXIT_NPF = 0x400
SVM_EXIT_EXCP_PF = 0x040 + x86.PF_VECTOR
SVM_EXIT_ERR = defs.SVM_EXIT_ERR

PAGE = 0x1000

# Kernel checks: key -> (function, CC expression).  MODEL_CHECKS maps a key to what
# the model reports for it: a check id of nsvm_model.svm.checks, or the id of the late step.
KVM = {
    "svme": ("nested_vmcb_check_save", "CC(!(save->efer & EFER_SVME))"),
    "cr0_nw": ("nested_vmcb_check_save", "CC((save->cr0 & X86_CR0_CD) == 0 && (save->cr0 & X86_CR0_NW))"),
    "cr0_high": ("nested_vmcb_check_save", "CC(save->cr0 & ~0xffffffffULL)"),
    "dr6": ("nested_vmcb_check_save", "CC(!kvm_dr6_valid(save->dr6))"),
    "dr7": ("nested_vmcb_check_save", "CC(!kvm_dr7_valid(save->dr7))"),
    "lm_pae": ("nested_vmcb_check_save",
               "(save->efer & EFER_LME) && (save->cr0 & X86_CR0_PG): CC(!(save->cr4 & X86_CR4_PAE))"),
    "lm_pe": ("nested_vmcb_check_save",
              "(save->efer & EFER_LME) && (save->cr0 & X86_CR0_PG): CC(!(save->cr0 & X86_CR0_PE))"),
    "lm_cr3": ("nested_vmcb_check_save",
               "(save->efer & EFER_LME) && (save->cr0 & X86_CR0_PG): CC(!kvm_vcpu_is_legal_cr3(vcpu, save->cr3))"),
    "lm_cs": ("nested_vmcb_check_save",
              "(save->efer & EFER_LME) && (save->cr0 & X86_CR0_PG): "
              "CC((save->cs.attrib & SVM_SELECTOR_L_MASK) && (save->cs.attrib & SVM_SELECTOR_DB_MASK))"),
    "cr4": ("nested_vmcb_check_save", "CC(!__kvm_is_valid_cr4(vcpu, save->cr4))"),
    "efer": ("nested_vmcb_check_save", "CC(!kvm_valid_efer(vcpu, save->efer))"),
    "vmrun": ("nested_vmcb_check_controls", "CC(!vmcb12_is_intercept(control, INTERCEPT_VMRUN))"),
    "asid": ("nested_vmcb_check_controls", "CC(control->asid == 0)"),
    "msrpm": ("nested_vmcb_check_controls",
              "CC(!nested_svm_check_bitmap_pa(vcpu, control->msrpm_base_pa, MSRPM_SIZE))"),
    "iopm": ("nested_vmcb_check_controls",
             "CC(!nested_svm_check_bitmap_pa(vcpu, control->iopm_base_pa, IOPM_SIZE))"),
    "vnmi": ("nested_vmcb_check_controls",
             "CC((control->int_ctl & V_NMI_ENABLE_MASK) && !vmcb12_is_intercept(control, INTERCEPT_NMI))"),
    "event_inj": ("nested_vmcb_check_controls",
                  "CC(!nested_svm_check_event_inj(vcpu, control->event_inj)) "
                  "(nested_svm_event_inj_valid_exept() is false for vector 2)"),
    "load_cr3": ("nested_svm_load_cr3", "CC(!kvm_vcpu_is_legal_cr3(vcpu, cr3)) "
                 "(called from enter_svm_guest_mode(); nested_svm_vmrun() then writes SVM_EXIT_ERR)"),
    "pdptrs": ("nested_svm_load_cr3", "reload_pdptrs && is_pae_paging(vcpu) && !nested_npt: "
               "CC(!load_pdptrs(vcpu, cr3)) (a present PDPTE with a reserved bit)"),
    "merge_msrpm": ("nested_svm_merge_msrpm", "kvm_vcpu_read_guest(vcpu, gpa, &l1_val, sizeof(l1_val)) "
                    "fails (no memory at the MSRPM GPA), so nested_svm_vmrun() writes SVM_EXIT_ERR"),
}
MODEL_CHECKS = {
    "svme": "S1", "cr0_nw": "S2", "cr0_high": "S2", "dr6": "S3", "dr7": "S3",
    "lm_pae": "S4a", "lm_pe": "S4b", "lm_cr3": "S4c", "lm_cs": "S4d", "cr4": "S5", "efer": "S6",
    "vmrun": "C1", "asid": "C2", "msrpm": "C4", "iopm": "C5", "vnmi": "C6", "event_inj": "C7",
    "load_cr3": "svm.enter.load_cr3.check_legal", "pdptrs": "svm.enter.load_cr3.pdptrs",
    "merge_msrpm": "svm.vmrun.merge_msrpm",
}
LATE = {"load_cr3", "pdptrs", "merge_msrpm"}
PASSES = (f"{NESTED_C} none fails: nested_vmcb_check_save(), nested_vmcb_check_controls(), "
          "nested_svm_load_cr3() and nested_svm_merge_msrpm() all pass")

LONG_MODE = "L1 and L2 in 64-bit long mode (EFER.LME=LMA=1, CR0.PG=PE=1, CR4.PAE=1)"
NPT_ON = ("L1 CPUID has NPT: vmcb_ident() sets NP_ENABLE, nested_cr3 = L1's identity NPT, "
          "tlb_ctl = TLB_CONTROL_FLUSH_ALL_ASID (kvm-unit-tests config [svm])")
NPT_OFF = ("L1 CPUID lacks NPT (kvm-unit-tests config [svm_no_npt], -cpu max,+svm,-npt): vmcb_ident() "
           "leaves NP_ENABLE, nested_cr3 and tlb_ctl at 0")
MAXPHY = f"cpuid_maxphyaddr() = {M} (the scenario's cpu.maxphyaddr)"
V2 = "v2 test: svm_vmrun() with GIF=1 (no CLGI)"
V1 = "v1 test: test_run() executes CLGI before VMRUN (L1 GIF=0)"
NO_LAM = "L1 CPUID lacks LAM (an AMD host has none): with LAM, kvm_vcpu_is_legal_cr3() ignores CR3 bits 61-62"
GUEST_VMMCALL = "L2 runs the test's guest code and exits with VMMCALL (l2.exit = VMMCALL)"

# L2's first access faults.  Which access faults is what the C test arranges (a cleared NPT
# entry, a reserved PDPTE bit); the case says so in l2.exit and gives the fault as the
# architecture reports it.  The C test checks only the exit code.
L2_PML4E_GPA = (L1_CR3 & ~0xFFF) + 8 * (L2_RIP >> 39 & 0x1FF)
NPF_ON_L2_WALK = {"l2.exit": "#NPF", "l2.fault_address": L2_PML4E_GPA,
                  "l2.fault_error_code": x86.PFERR_GUEST_PAGE_MASK | x86.PFERR_USER_MASK}
PF_ON_L2_FETCH = {"l2.exit": "#PF", "l2.fault_address": L2_RIP,
                  "l2.fault_error_code": x86.PFERR_PRESENT_MASK | x86.PFERR_RSVD_MASK | x86.PFERR_FETCH_MASK}
FAULT_NOTE = ("L2's first access faults (l2.exit); the fault's error code and address are the "
              "architecture's for that access, and the C test checks only the exit code")


def _hex(v: int) -> str:
    return hex(v & ((1 << 64) - 1))


def _value(v):
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if 0 <= v < 10 else _hex(v)
    if isinstance(v, (set, frozenset, tuple, list)):
        return sorted(v)
    raise TypeError(v)


class Builder:
    def __init__(self):
        self.cases = []

    def add(self, id, area, test, lines, changes, expected, check=None, c="", *, exit_code,
            base="kut_vmcb_ident", l2_mode="long", memory=None, pre=(), notes="", gap=None,
            final=None, not_modelled=None):
        if expected == "vmexit_invalid":
            assert check in KVM and exit_code == SVM_EXIT_ERR, id
            fn, cc = KVM[check]
            kernel_check = f"{NESTED_C} {fn}(): {cc}"
        else:
            assert check is None and exit_code != SVM_EXIT_ERR, id
            kernel_check = PASSES
        if exit_code == SVM_EXIT_VMMCALL:
            changes = {**changes, "l2.exit": "VMMCALL"}
        rec = {
            "id": id, "isa": "svm", "area": area,
            "source": {"repo": KUT_REPO, "path": KUT_PATH, "commit": KUT_COMMIT, "test": test,
                       "lines": lines},
            "setup": {"base": base, "l2_mode": l2_mode, "c": c,
                      "changes": {k: _value(v) for k, v in changes.items()},
                      "memory": {_hex(k): _hex(v) for k, v in (memory or {}).items()},
                      "preconditions": list(pre)},
            "expected": expected,
            "failure": ("late" if check in LATE else "early") if expected == "vmexit_invalid" else None,
            "exit_code": _hex(exit_code),
            "kernel_check": kernel_check,
            "model_check": MODEL_CHECKS.get(check),
            "notes": notes,
        }
        if final:
            rec["final"] = {k: {"mask": _hex(m), "equals": _hex(e)} for k, (m, e) in final.items()}
        if not_modelled:
            rec["not_modelled"] = not_modelled
        if gap:
            rec["model_gap"] = gap
        assert all(c["id"] != id for c in self.cases), id
        self.cases.append(rec)


def bits(start, end, inc, mask):
    """The bit positions SVM_TEST_REG_RESERVED_BITS / SVM_TEST_CR_RESERVED_BITS visit."""
    return [i for i in range(start, end + 1, inc) if (1 << i) & mask]


# --- svm_guest_state_test -------------------------------------------------------------------

def guest_state(b: Builder):
    gs = "svm_guest_state_test > "
    pre = [LONG_MODE, NPT_ON, V2, GUEST_VMMCALL]
    REG = "SVM_TEST_REG_RESERVED_BITS (2342-2357)"
    CR = "SVM_TEST_CR_RESERVED_BITS (2359-2385)"

    # test_efer
    t = gs + "test_efer"
    b.add("kut-svm-efer-baseline", "efer", t, "2392-2395", {}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
          c="unchanged vmcb_ident() VMCB", pre=pre, notes="First VMRUN of svm_guest_state_test.")
    efer = L1_EFER & ~x86.EFER_SVME
    b.add("kut-svm-efer-svme-clear", "efer", t, "2396-2399", {"vmcb12.save.efer": efer},
          "vmexit_invalid", "svme", exit_code=SVM_EXIT_ERR, c="vmcb->save.efer = efer_saved & ~EFER_SVME",
          pre=pre)
    for lo, hi, inc, lines in ((8, 9, 1, "2406-2407"), (16, 63, 4, "2408-2409")):
        for i in bits(lo, hi, inc, SVM_EFER_RESERVED_MASK):
            b.add(f"kut-svm-efer-rsvd-bit{i}", "efer", t, lines,
                  {"vmcb12.save.efer": L1_EFER | 1 << i}, "vmexit_invalid", "efer", exit_code=SVM_EXIT_ERR,
                  c=f"{REG}({lo}, {hi}, {inc}, \"EFER\", ..., SVM_EFER_RESERVED_MASK): "
                    f"vmcb->save.efer = efer_saved | (1ull << {i})",
                  pre=pre, notes=f"Loop ({lo}..{hi} step {inc}, mask {_hex(SVM_EFER_RESERVED_MASK)}) visits "
                  + ("bit 9 only (bit 8 is LME, not in the mask)." if hi == 9 else
                     "bits 16, 20, ..., 60.") + " KVM's efer_reserved_bits has every one of them.")
    lm = {"vmcb12.save.efer": L1_EFER | x86.EFER_LME, "vmcb12.save.cr0": L1_CR0 | x86.X86_CR0_PG | x86.X86_CR0_PE}
    b.add("kut-svm-efer-lme-pg-no-pae", "efer", t, "2414-2426",
          {**lm, "vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PAE}, "vmexit_invalid", "lm_pae",
          exit_code=SVM_EXIT_ERR, pre=pre,
          c="efer = efer_saved | EFER_LME; cr0 = cr0_saved | X86_CR0_PG | X86_CR0_PE; "
            "cr4 = cr4_saved & ~X86_CR4_PAE",
          notes="EFER.LMA stays set in vmcb12; SVM does not check LMA against LME and PG.")
    b.add("kut-svm-efer-lme-pg-no-pe", "efer", t, "2428-2439",
          {**lm, "vmcb12.save.cr0": (L1_CR0 | x86.X86_CR0_PG) & ~x86.X86_CR0_PE,
           "vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PAE}, "vmexit_invalid", "lm_pe", exit_code=SVM_EXIT_ERR,
          pre=pre, c="cr4 = cr4_saved | X86_CR4_PAE; cr0 &= ~X86_CR0_PE")
    b.add("kut-svm-efer-lme-pg-pae-cs-l-d", "efer", t, "2441-2454",
          {**lm, "vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PAE,
           "vmcb12.save.cs.attrib": CODE64_ATTRIB | defs.SVM_SELECTOR_L_MASK | defs.SVM_SELECTOR_DB_MASK},
          "vmexit_invalid", "lm_cs", exit_code=SVM_EXIT_ERR, pre=pre,
          c="cr0 |= X86_CR0_PE; cs_attrib = cs_attrib_saved | SVM_SELECTOR_L_MASK | SVM_SELECTOR_DB_MASK")

    # test_cr0
    t = gs + "test_cr0"
    cd, nw = x86.X86_CR0_CD, x86.X86_CR0_NW
    for name, cr0, lines, exp in (("cd1-nw0", (L1_CR0 | cd) & ~nw, "2470-2474", "l2_runs"),
                                  ("cd1-nw1", L1_CR0 | cd | nw, "2475-2478", "l2_runs"),
                                  ("cd0-nw0", L1_CR0 & ~(cd | nw), "2479-2483", "l2_runs"),
                                  ("cd0-nw1", (L1_CR0 & ~cd) | nw, "2484-2488", "vmexit_invalid")):
        b.add(f"kut-svm-cr0-{name}", "cr0", t, lines, {"vmcb12.save.cr0": cr0}, exp,
              "cr0_nw" if exp != "l2_runs" else None,
              exit_code=SVM_EXIT_ERR if exp != "l2_runs" else SVM_EXIT_VMMCALL,
              c=f"vmcb->save.cr0 = {_hex(cr0)} (CR0.{name.upper().replace('-', ', CR0.')})", pre=pre,
              notes="Only CD=0 with NW=1 is illegal." if exp == "l2_runs" else "")
    for i in bits(32, 63, 4, SVM_CR0_RESERVED_MASK):
        b.add(f"kut-svm-cr0-rsvd-bit{i}", "cr0", t, "2495-2496", {"vmcb12.save.cr0": L1_CR0 | 1 << i},
              "vmexit_invalid", "cr0_high", exit_code=SVM_EXIT_ERR, pre=pre,
              c=f"{REG}(32, 63, 4, \"CR0\", ..., SVM_CR0_RESERVED_MASK): vmcb->save.cr0 = cr0_saved | (1ull << {i})")

    # test_cr3
    t = gs + "test_cr3"
    for i in bits(0, 63, 1, SVM_CR3_LONG_MBZ_MASK):
        extra = [NO_LAM] if i in (61, 62) else []
        b.add(f"kut-svm-cr3-long-mbz-bit{i}", "cr3", t, "2508-2509", {"vmcb12.save.cr3": L1_CR3 | 1 << i},
              "vmexit_invalid", "lm_cr3", exit_code=SVM_EXIT_ERR, pre=pre + extra,
              c=f"{CR}(0, 63, 1, 3, cr3_saved, SVM_CR3_LONG_MBZ_MASK, SVM_EXIT_ERR, \"\"): "
                f"vmcb->save.cr3 = cr3_saved | (1ull << {i})",
              notes="The loop visits bits 52..63 (SVM_CR3_LONG_MBZ_MASK). KVM's rule is wider: no bit at or "
                    f"above MAXPHYADDR ({M}..63 here); bits {M}..51 are not probed. The same CR3 would also "
                    "fail nested_svm_load_cr3() if the save check did not run first.")
    b.add("kut-svm-cr3-long-mbz-cleared", "cr3", t, "2511-2513",
          {"vmcb12.save.cr3": L1_CR3 & ~SVM_CR3_LONG_MBZ_MASK}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
          pre=pre, c="vmcb->save.cr3 = cr3_saved & ~SVM_CR3_LONG_MBZ_MASK")
    pcide = {"vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PCIDE}
    pre_pcid = pre + ["L1 CPUID has PCID (this_cpu_has(X86_FEATURE_PCID); else the block is skipped)"]
    for i in bits(0, 11, 1, SVM_CR3_LONG_RESERVED_MASK):
        b.add(f"kut-svm-cr3-pcide1-bit{i}", "cr3", t, "2526-2529", {**pcide, "vmcb12.save.cr3": L1_CR3 | 1 << i},
              "l2_runs", exit_code=SVM_EXIT_VMMCALL, pre=pre_pcid,
              c=f"vmcb->save.cr4 = cr4_saved | X86_CR4_PCIDE; {CR}(0, 11, 1, 3, cr3_saved, "
                f"SVM_CR3_LONG_RESERVED_MASK, SVM_EXIT_VMMCALL, \"(PCIDE=1) \"): cr3 = cr3_saved | (1ull << {i})",
              notes="With CR4.PCIDE=1 CR3[11:0] is the PCID; KVM checks only bits at or above MAXPHYADDR. "
                    "CR4.PCIDE is valid because L1's CPUID has PCID (__kvm_is_valid_cr4).")
    b.add("kut-svm-cr3-pcide1-cleared", "cr3", t, "2531-2533",
          {**pcide, "vmcb12.save.cr3": L1_CR3 & ~SVM_CR3_LONG_RESERVED_MASK}, "l2_runs",
          exit_code=SVM_EXIT_VMMCALL, pre=pre_pcid,
          c="vmcb->save.cr3 = cr3_saved & ~SVM_CR3_LONG_RESERVED_MASK (CR4.PCIDE still 1)")
    npf_pre = pre[:3] + [
        "L1 CPUID has NPT (npt_supported(); else both loops are skipped: goto skip_npt_only)",
        "L1's nested page table: npt_get_pml4e()[0] &= ~1 (PML4E 0 not present), so L2's first "
        "access, its walk of its own PML4 at CR3, exits with #NPF (l2.exit = #NPF)", FAULT_NOTE]
    for i in bits(0, 11, 1, SVM_CR3_LONG_RESERVED_MASK):
        b.add(f"kut-svm-cr3-pcide0-npf-bit{i}", "cr3", t, "2536-2547",
              {"vmcb12.save.cr4": L1_CR4 & ~x86.X86_CR4_PCIDE, "vmcb12.save.cr3": L1_CR3 | 1 << i,
               **NPF_ON_L2_WALK},
              "l2_runs", exit_code=SVM_EXIT_NPF, pre=npf_pre,
              c=f"vmcb->save.cr4 = cr4_saved & ~X86_CR4_PCIDE; pdpe[0] &= ~1ULL; {CR}(0, 11, 1, 3, cr3_saved, "
                f"SVM_CR3_LONG_RESERVED_MASK, SVM_EXIT_NPF, \"(PCIDE=0) \"): cr3 = cr3_saved | (1ull << {i})",
              notes="VMRUN succeeds (KVM does not check CR3[11:5] or [2:0] in long mode) and L2 exits "
                    "with #NPF on its first access. kvm-unit-tests calls these bits 'non-MBZ reserved'.")
    for i in bits(0, 2, 1, SVM_CR3_PAE_LEGACY_RESERVED_MASK):
        b.add(f"kut-svm-cr3-pae-label-npf-bit{i}", "cr3", t, "2550-2558",
              {"vmcb12.save.cr4": L1_CR4 | x86.X86_CR4_PAE, "vmcb12.save.cr3": L1_CR3 | 1 << i,
               **NPF_ON_L2_WALK},
              "l2_runs", exit_code=SVM_EXIT_NPF, pre=npf_pre,
              c=f"pdpe[0] &= ~1ULL; vmcb->save.cr4 = cr4_saved | X86_CR4_PAE; {CR}(0, 2, 1, 3, cr3_saved, "
                f"SVM_CR3_PAE_LEGACY_RESERVED_MASK, SVM_EXIT_NPF, \"(PAE) \"): cr3 = cr3_saved | (1ull << {i})",
              notes="Labelled 'PAE legacy' in the C code, but EFER.LME/LMA and CR0.PG are unchanged, so L2 is "
                    "still in 64-bit long mode (cr4_saved already has PAE; PCIDE is clear): the same KVM path "
                    "as the PCIDE=0 loop. VMRUN succeeds and L2 exits with #NPF.")

    # test_cr4
    t = gs + "test_cr4"
    cr4_pre = ["L1 CPUID lacks VMX, LAM and FRED (an AMD host): CR4.VMXE (13), CR4.LAM_SUP (28) and "
               "CR4.FRED (32) are reserved for it; CR4.SMXE (14) is never allowed by KVM"]
    legacy_efer = L1_EFER & ~x86.EFER_LME
    for i in bits(12, 31, 1, SVM_CR4_LEGACY_RESERVED_MASK):
        b.add(f"kut-svm-cr4-legacy-bit{i}", "cr4", t, "2571-2575",
              {"vmcb12.save.efer": legacy_efer, "vmcb12.save.cr4": L1_CR4 | 1 << i}, "vmexit_invalid", "cr4",
              exit_code=SVM_EXIT_ERR, pre=pre[1:] + cr4_pre,
              c=f"vmcb->save.efer = efer_saved & ~EFER_LME; {CR}(12, 31, 1, 4, cr4_saved, "
                f"SVM_CR4_LEGACY_RESERVED_MASK, SVM_EXIT_ERR, \"\"): cr4 = cr4_saved | (1ull << {i})",
              notes="EFER.LME=0 but EFER.LMA stays 1 (SVM does not check LMA), so the long-mode block of "
                    "nested_vmcb_check_save() is skipped and the CR4 check decides.")
    for lo, hi, inc, lines in ((12, 31, 1, "2577-2580"), (32, 63, 4, "2581-2582")):
        for i in bits(lo, hi, inc, SVM_CR4_RESERVED_MASK):
            b.add(f"kut-svm-cr4-long-bit{i}", "cr4", t, lines, {"vmcb12.save.cr4": L1_CR4 | 1 << i},
                  "vmexit_invalid", "cr4", exit_code=SVM_EXIT_ERR, pre=pre + cr4_pre,
                  c=f"vmcb->save.efer = efer_saved (EFER.LME=1); {CR}({lo}, {hi}, {inc}, 4, cr4_saved, "
                    f"SVM_CR4_RESERVED_MASK, SVM_EXIT_ERR, \"\"): cr4 = cr4_saved | (1ull << {i})")

    # test_dr
    t = gs + "test_dr"
    for reg, mask, saved, lines, check in (("dr6", SVM_DR6_RESERVED_MASK, x86.DR6_ACTIVE_LOW, "2595-2596", "dr6"),
                                           ("dr7", SVM_DR7_RESERVED_MASK, x86.DR7_FIXED_1, "2600-2601", "dr7")):
        for i in bits(32, 63, 4, mask):
            b.add(f"kut-svm-{reg}-rsvd-bit{i}", "dr", t, lines, {f"vmcb12.save.{reg}": saved | 1 << i},
                  "vmexit_invalid", check, exit_code=SVM_EXIT_ERR, pre=pre,
                  c=f"{REG}(32, 63, 4, \"{reg.upper()}\", ..., SVM_{reg.upper()}_RESERVED_MASK): "
                    f"vmcb->save.{reg} = {reg}_saved | (1ull << {i})")

    # test_msrpm_iopm_bitmap_addrs: vmcb_set_intercept() is never undone between the calls, so
    # MSR_PROT stays set (and msrpm_base_pa keeps its last value) through the IOPM calls.
    t = gs + "test_msrpm_iopm_bitmap_addrs"
    limit = 1 << M
    msr_icpt = set(BASE_INTERCEPTS) | {"MSR_PROT"}
    bm_pre = pre + [MAXPHY, "4 GiB of guest RAM (-m 4g): no memory near 2^MAXPHYADDR"]
    msr_rows = (
        ("msrpm-limit-minus-2pages", limit - 2 * PAGE, "2642-2644", "merge_msrpm",
         "The 8 KiB MSRPM ends at 2^MAXPHYADDR-1, so nested_svm_check_bitmap_pa() passes; VMRUN fails "
         "later because nested_svm_merge_msrpm() cannot read L1's bitmap there (no memory). "
         "kvm-unit-tests expects SVM_EXIT_ERR as if this were the consistency check; KVM agrees on the "
         "outcome, for a different reason (a late VMEXIT_INVALID after the vmcb02 switch)."),
        ("msrpm-limit-minus-2pages-plus1", limit - 2 * PAGE + 1, "2645-2647", "merge_msrpm",
         "__nested_copy_vmcb_control_to_cache() keeps msrpm_base_pa & PAGE_MASK, so this is the previous "
         "case: the check passes and the merge fails to read the bitmap (late SVM_EXIT_ERR). Had the "
         "check seen the raw value, PAGE_ALIGN() would round it up to 2^MAXPHYADDR-1 page and fail early."),
        ("msrpm-limit-minus-1page", limit - PAGE, "2648-2650", "msrpm",
         "The last byte of the 8 KiB map is at 2^MAXPHYADDR+0xfff: an illegal GPA."),
        ("msrpm-own-bitmap", MSRPM_GPA, "2651-2653", None, "L1's own MSR bitmap (page aligned)."),
        ("msrpm-own-bitmap-low12-set", MSRPM_GPA | 0xFFF, "2654-2656", None,
         "Bits 11:0 are dropped by __nested_copy_vmcb_control_to_cache() (PAGE_MASK)."),
    )
    for name, addr, lines, check, notes in msr_rows:
        exp = "vmexit_invalid" if check else "l2_runs"
        b.add(f"kut-svm-{name}", "bitmaps", t, lines,
              {"vmcb12.control.intercepts": msr_icpt, "vmcb12.control.msrpm_base_pa": addr}, exp, check,
              exit_code=SVM_EXIT_ERR if check else SVM_EXIT_VMMCALL, pre=bm_pre, notes=notes,
              c=f"TEST_BITMAP_ADDR(..., INTERCEPT_MSR_PROT, {_hex(addr)}, ...): "
                f"vmcb_set_intercept(INTERCEPT_MSR_PROT); vmcb->control.msrpm_base_pa = {_hex(addr)}")
    io_icpt = msr_icpt | {"IOIO_PROT"}
    io_rows = (
        ("iopm-limit-minus-4pages", limit - 4 * PAGE, "2657-2659", None,
         "The 12 KiB IOPM ends at 2^MAXPHYADDR-0x1001: legal. The IOPM is not read at VMRUN."),
        ("iopm-limit-minus-3pages", limit - 3 * PAGE, "2660-2662", None,
         "The 12 KiB IOPM ends exactly at 2^MAXPHYADDR-1: legal."),
        ("iopm-limit-minus-2pages-minus2", limit - 2 * PAGE - 2, "2663-2665", None,
         "Cached as (base & PAGE_MASK) = 2^MAXPHYADDR-3 pages, so the 12 KiB map ends at "
         "2^MAXPHYADDR-1: legal. The check must run on the cached value: PAGE_ALIGN() in "
         "nested_svm_check_bitmap_pa() would round the raw value up to 2^MAXPHYADDR-2 pages and fail. "
         "(The C comment's '2 pages + 1 byte' IOPM gives the same answer as KVM's IOPM_SIZE of 12 KiB "
         "for every address the test tries.)"),
        ("iopm-limit-minus-2pages", limit - 2 * PAGE, "2666-2668", "iopm",
         "The last byte of the 12 KiB map is at 2^MAXPHYADDR+0xfff: illegal."),
        ("iopm-limit-minus-1page", limit - PAGE, "2669-2671", "iopm",
         "The last byte of the 12 KiB map is at 2^MAXPHYADDR+0x1fff: illegal."),
        ("iopm-own-bitmap", IOPM_GPA, "2672-2674", None,
         "virt_to_phys(io_bitmap) & ~0x7ff: L1's own, page-aligned I/O bitmap."),
        ("iopm-own-bitmap-low12-set", IOPM_GPA | 0xFFF, "2675-2677", None,
         "Bits 11:0 are dropped by __nested_copy_vmcb_control_to_cache() (PAGE_MASK)."),
    )
    for name, addr, lines, check, notes in io_rows:
        exp = "vmexit_invalid" if check else "l2_runs"
        b.add(f"kut-svm-{name}", "bitmaps", t, lines,
              {"vmcb12.control.intercepts": io_icpt, "vmcb12.control.msrpm_base_pa": MSRPM_GPA | 0xFFF,
               "vmcb12.control.iopm_base_pa": addr}, exp, check,
              exit_code=SVM_EXIT_ERR if check else SVM_EXIT_VMMCALL, pre=bm_pre,
              notes=notes + " MSR_PROT is still intercepted from the MSRPM calls, with msrpm_base_pa = "
                            "msr_bitmap | 0xfff (merge reads L1's own bitmap).",
              c=f"TEST_BITMAP_ADDR(..., INTERCEPT_IOIO_PROT, {_hex(addr)}, ...): "
                f"vmcb_set_intercept(INTERCEPT_IOIO_PROT); vmcb->control.iopm_base_pa = {_hex(addr)}")

    # test_canonicalization, the VMRUN half (the VMLOAD half runs no VMRUN)
    t = gs + "test_canonicalization"
    high = NONCANONICAL & ~((1 << 48) - 1)
    left = {"vmcb12.control.msrpm_base_pa": MSRPM_GPA | 0xFFF, "vmcb12.control.iopm_base_pa": IOPM_GPA | 0xFFF}
    for n, (seg, base) in enumerate((("es", 0), ("cs", 0), ("ss", 0), ("ds", 0),
                                     ("gdtr", GDTR_BASE), ("idtr", IDTR_BASE))):
        value = (base & ((1 << 48) - 1)) | high
        b.add(f"kut-svm-noncanonical-{seg}-base", "canonical", t, f"{2719 + n} (macro 2686-2693)",
              {**left, f"vmcb12.save.{seg}.base": value}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
              pre=pre + ["L1 CPUID lacks LA57: addr_limit = 48"],
              c=f"TEST_CANONICAL_VMRUN(vmcb->save.{seg}.base, \"{seg.upper()}\"): "
                f"base = (base & ((1ul << 48) - 1)) | {_hex(high)}",
              notes="KVM checks no segment or descriptor-table base at VMRUN. msrpm_base_pa and "
                    "iopm_base_pa keep the '| 0xfff' values test_msrpm_iopm_bitmap_addrs() left behind; "
                    "its intercepts were restored.")


# --- v1 tests of the svm_tests[] table ---------------------------------------------------------

def v1_tests(b: Builder):
    pre = [LONG_MODE, NPT_ON, V1]
    gif = {"l1.gif": 0}
    b.add("kut-svm-null", "controls", "'null' (default_prepare / null_test / null_check)", "112-119, 3904-3906",
          gif, "l2_runs", exit_code=SVM_EXIT_VMMCALL, pre=pre + [GUEST_VMMCALL], c="vmcb_ident() unchanged")
    b.add("kut-svm-no-vmrun-intercept", "controls", "'vmrun intercept check' (prepare_no_vmrun_int / "
          "check_no_vmrun_int)", "121-129, 3913-3915",
          {**gif, "vmcb12.control.intercepts": {"VMMCALL", "SHUTDOWN"}}, "vmexit_invalid", "vmrun",
          exit_code=SVM_EXIT_ERR, pre=pre, c="vmcb_clear_intercept(INTERCEPT_VMRUN)")
    b.add("kut-svm-asid-zero", "controls", "'asid_zero' (prepare_asid_zero / check_asid_zero)",
          "941-954, 3964-3966", {**gif, "vmcb12.control.asid": 0}, "vmexit_invalid", "asid",
          exit_code=SVM_EXIT_ERR, pre=pre, c="vmcb->control.asid = 0")
    t = "'exc_inject' (exc_inject_prepare / exc_inject_finished)"
    b.add("kut-svm-exc-inject-stage0", "controls", t, "1752-1763", gif, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
          pre=pre + [GUEST_VMMCALL], c="default_prepare(): vmcb_ident() unchanged")
    nmi_as_exc = x86.NMI_VECTOR | defs.SVM_EVTINJ_TYPE_EXEPT | defs.SVM_EVTINJ_VALID
    b.add("kut-svm-exc-inject-nmi-vector-as-exception", "controls", t, "1762-1771",
          {**gif, "vmcb12.control.event_inj": nmi_as_exc}, "vmexit_invalid", "event_inj",
          exit_code=SVM_EXIT_ERR, pre=pre,
          c="vmcb->control.event_inj = NMI_VECTOR | SVM_EVTINJ_TYPE_EXEPT | SVM_EVTINJ_VALID",
          not_modelled="count_exc == 0 (nothing delivered): implied by the early VMEXIT_INVALID")
    de = x86.DE_VECTOR | defs.SVM_EVTINJ_TYPE_EXEPT | defs.SVM_EVTINJ_VALID
    b.add("kut-svm-exc-inject-de", "controls", t, "1772-1784", {**gif, "vmcb12.control.event_inj": de},
          "l2_runs", exit_code=SVM_EXIT_VMMCALL, pre=pre + [GUEST_VMMCALL],
          c="vmcb->control.event_inj = DE_VECTOR | SVM_EVTINJ_TYPE_EXEPT | SVM_EVTINJ_VALID",
          final={"vmcb12.control.event_inj": (defs.SVM_EVTINJ_VALID, 0)},
          not_modelled="count_exc == 1 (#DE delivered to L2's handler)",
          notes="After the #VMEXIT the test checks eventinj.VALID is clear: nested_svm_vmexit_update_vmcb12() "
                "writes vmcb12->control.event_inj = 0.")
    t = "'vnmi' (vnmi_prepare / vnmi_finished)"
    vnmi_pre = pre + ["L1 CPUID has VNMI (vnmi_supported(); else the test is skipped)"]
    feats = DEFAULT_FEATURES | {"VNMI"}
    vn = {**gif, "cpu.features": feats, "vmcb12.control.int_ctl": defs.V_NMI_ENABLE_MASK,
          "vmcb12.control.int_vector": x86.NMI_VECTOR}
    b.add("kut-svm-vnmi-without-nmi-intercept", "controls", t, "1657-1668, 1681-1690", vn, "vmexit_invalid",
          "vnmi", exit_code=SVM_EXIT_ERR, pre=vnmi_pre,
          c="vmcb_clear_intercept(INTERCEPT_NMI); vmcb->control.int_ctl = V_NMI_ENABLE_MASK; "
            "vmcb->control.int_vector = NMI_VECTOR",
          not_modelled="!nmi_fired: implied by the early VMEXIT_INVALID")
    b.add("kut-svm-vnmi-with-nmi-intercept", "controls", t, "1688-1701",
          {**vn, "vmcb12.control.intercepts": set(BASE_INTERCEPTS) | {"NMI"}}, "l2_runs",
          exit_code=SVM_EXIT_VMMCALL, pre=vnmi_pre + [GUEST_VMMCALL], c="vmcb_set_intercept(INTERCEPT_NMI)",
          not_modelled="!nmi_fired (no vNMI before V_NMI_PENDING is set)")
    b.add("kut-svm-vnmi-pending", "controls", t, "1700-1717",
          {**vn, "vmcb12.control.intercepts": set(BASE_INTERCEPTS) | {"NMI"},
           "vmcb12.control.int_ctl": defs.V_NMI_ENABLE_MASK | defs.V_NMI_PENDING_MASK}, "l2_runs",
          exit_code=SVM_EXIT_VMMCALL, pre=vnmi_pre + [GUEST_VMMCALL],
          c="vmcb->control.int_ctl |= V_NMI_PENDING_MASK",
          final={"vmcb12.control.int_ctl": (defs.V_NMI_BLOCKING_MASK, 0)},
          not_modelled="nmi_fired (the vNMI is delivered to L2 before its second VMMCALL)",
          notes="After the #VMEXIT the test checks V_NMI_BLOCKING_MASK is clear in vmcb12's int_ctl.")


def osxsave(b: Builder):
    cr4 = L1_CR4 | x86.X86_CR4_OSXSAVE
    b.add("kut-svm-cr4-osxsave", "cr4", "svm_cr4_osxsave_test", "2314-2332",
          {"l1.cr4": cr4, "vmcb12.save.cr4": cr4}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
          pre=[LONG_MODE, NPT_ON, V2, "L1 CPUID has XSAVE (else the test is skipped)", GUEST_VMMCALL],
          c="write_cr4(read_cr4() | X86_CR4_OSXSAVE); vmcb->save.cr4 = cr4",
          notes="CR4.OSXSAVE is valid for an L1 with XSAVE (__kvm_is_valid_cr4).",
          not_modelled="CPUID.01H:ECX.OSXSAVE before and after the VMRUN (L2 clears CR4.OSXSAVE)")


def no_nm(b: Builder):
    cr0 = L1_CR0 & ~(x86.X86_CR0_TS | x86.X86_CR0_EM)
    b.add("kut-svm-cr0-ts-em-clear", "cr0", "svm_no_nm_test", "3065-3073",
          {"l1.cr0": cr0, "vmcb12.save.cr0": cr0}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
          pre=[LONG_MODE, NPT_ON, V2, GUEST_VMMCALL],
          c="write_cr0(read_cr0() & ~X86_CR0_TS); vmcb->save.cr0 &= ~(X86_CR0_TS | X86_CR0_EM)",
          notes="CR0.TS and CR0.EM are not checked at VMRUN (only CD/NW and bits 63:32 are); vmcb_ident() "
                "already has both clear, so the change keeps the default CR0.",
          not_modelled="no #NM when L2 executes FNOP (implied by reaching VMMCALL)")


# --- svm_pae_test / svm_pse_test -------------------------------------------------------------------

def pae(b: Builder, npt: bool):
    t = "svm_pae_test > test_svm_guest_pdptes"
    tag = "npt" if npt else "nonpt"
    base = "kut_vmcb_ident+svm_32bit_guest_init_common(pae=true)"
    pre = ["L2 in 32-bit PAE paging: save.efer &= ~(LMA|LME), save.cr0 |= PG|PE, save.cr4 = PAE (PSE "
           "clear), save.cs.attrib = 0xc9b, save.cr3 = PDPT with 4 present PDPTEs (svm_32bit_build_pae_page_tables)",
           "#PF intercepted (vmcb_set_intercept(INTERCEPT_EXCEPTION_OFFSET + PF_VECTOR))",
           NPT_ON if npt else NPT_OFF, V2]
    icpt = {"vmcb12.control.intercepts": set(BASE_INTERCEPTS) | {"EXCEPTION_PF"}}
    if not npt:
        icpt.update({"cpu.features": DEFAULT_FEATURES - {"NPT"}, "vmcb12.control.misc_ctl": 0,
                     "vmcb12.control.nested_cr3": 0, "vmcb12.control.tlb_ctl": 0})
    how = ("PDPTRs only marked for reload (nested NPT)" if npt
           else "load_pdptrs() reads the PDPT at CR3 & ~0x1f and checks every present PDPTE")
    add = lambda *a, **k: b.add(*a, base=base, l2_mode="pae", **k)   # noqa: E731
    add(f"kut-svm-pae-{tag}-baseline", "pae", t, "3791-3793", icpt, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
        pre=pre + [GUEST_VMMCALL], c="svm_32bit_guest_init_common(cr3, true); test_svm_report_pass()",
        notes=f"nested_svm_load_cr3(): CR3 legal; {how}.")
    for i in range(0, 5):
        add(f"kut-svm-pae-{tag}-cr3-ignored-bit{i}", "pae", t, "3795-3799",
            {**icpt, "vmcb12.save.cr3": PAE_PDPT | 1 << i}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
            pre=pre + [GUEST_VMMCALL], c=f"svm_32bit_guest_init_common(cr3 | (1ull << {i}), true)",
            notes=f"CR3[4:0] are ignored in PAE paging; {how}.")
    for i in range(M, 64):
        add(f"kut-svm-pae-{tag}-cr3-rsvd-bit{i}", "pae", t, "3800-3803",
            {**icpt, "vmcb12.save.cr3": PAE_PDPT | 1 << i}, "vmexit_invalid", "load_cr3",
            exit_code=SVM_EXIT_ERR, pre=pre + [MAXPHY] + ([NO_LAM] if i in (61, 62) else []),
            c=f"for (b = cpuid_maxphyaddr(); b <= 63; b++): svm_32bit_guest_init_common(cr3 | (1ull << {i}), true)",
            notes="nested_vmcb_check_save() checks CR3 only when EFER.LME && CR0.PG; the late check in "
                  "nested_svm_load_cr3() rejects it after the switch to vmcb02.")
    for p in range(4):
        orig = (PAE_PD + p * PAGE) | x86.PT_PRESENT_MASK
        gpa = PAE_PDPT + 8 * p
        for i in range(52, 63):
            mem = {gpa: orig | 1 << i}
            c = f"pdpt[{p}] = orig | (1ull << {i}); svm_32bit_guest_init_common(cr3, true)"
            rid = f"kut-svm-pae-{tag}-pdpte{p}-rsvd-bit{i}"
            if not npt:
                add(rid, "pae", t, "3805-3836", icpt, "vmexit_invalid", "pdptrs", exit_code=SVM_EXIT_ERR,
                    memory=mem, pre=pre, c=c,
                    notes="!npt: reserved_exit = SVM_EXIT_ERR. Without nested NPT, nested_svm_load_cr3() "
                          "loads the PDPTEs and bits 52-62 are above MAXPHYADDR (pdptr_rsvd_bits).")
            elif p == 0:
                add(rid, "pae", t, "3805-3836", {**icpt, **PF_ON_L2_FETCH}, "l2_runs",
                    exit_code=SVM_EXIT_EXCP_PF, memory=mem, c=c,
                    pre=pre + ["L2's first instruction fetch walks through PDPTE0 and takes #PF with "
                               "PFERR_RSVD (l2.exit = #PF)", FAULT_NOTE],
                    notes="npt && i == 0: reserved_exit = SVM_EXIT_EXCP_BASE + PF_VECTOR. With nested NPT KVM "
                          "only marks the PDPTRs for reload, so VMRUN succeeds; L2 faults on its first "
                          "instruction fetch and L1 intercepts the #PF.")
            else:
                add(rid, "pae", t, "3805-3836", icpt, "l2_runs", exit_code=SVM_EXIT_VMMCALL, memory=mem,
                    pre=pre + [GUEST_VMMCALL], c=c,
                    notes="npt && i != 0: reserved_exit = SVM_EXIT_VMMCALL. With nested NPT KVM only marks the "
                          "PDPTRs for reload, and L2's code never walks through this PDPTE.")
        for i in range(9, 12):
            add(f"kut-svm-pae-{tag}-pdpte{p}-ignored-bit{i}", "pae", t, "3838-3845", icpt, "l2_runs",
                exit_code=SVM_EXIT_VMMCALL, memory={gpa: orig | 1 << i}, pre=pre + [GUEST_VMMCALL],
                c=f"pdpt[{p}] = orig | (1ull << {i}); svm_32bit_guest_init_common(cr3, true)",
                notes=f"PDPTE bits 11:9 are ignored; {how}.")


def pse(b: Builder):
    t = "svm_pse_test"
    base = "kut_vmcb_ident+svm_32bit_guest_init_common(pae=false)"
    pre = ["L2 in 32-bit non-PAE paging: save.efer &= ~(LMA|LME), save.cr0 |= PG|PE, save.cr4 = PSE (PAE "
           "clear), save.cs.attrib = 0xc9b, save.cr3 = a 4 MiB-page PD (svm_32bit_build_page_tables)", NPT_ON, V2]
    add = lambda *a, **k: b.add(*a, base=base, l2_mode="32bit", **k)   # noqa: E731
    add("kut-svm-pse-baseline", "pse", t, "3886-3887", {}, "l2_runs", exit_code=SVM_EXIT_VMMCALL,
        pre=pre + [GUEST_VMMCALL], c="svm_32bit_guest_init_common(cr3, false); test_svm_report_pass()")
    for i in range(0, 12):
        if i in (3, 4):
            continue
        add(f"kut-svm-pse-cr3-ignored-bit{i}", "pse", t, "3889-3894", {"vmcb12.save.cr3": PSE_PD | 1 << i},
            "l2_runs", exit_code=SVM_EXIT_VMMCALL, pre=pre + [GUEST_VMMCALL],
            c=f"svm_32bit_guest_init_common(cr3 | (1ull << {i}), false)",
            notes="The loop skips bits 3 and 4 (PWT, PCD); the others are ignored by 32-bit paging and "
                  "KVM checks only bits at or above MAXPHYADDR.")
    for i in range(M, 64):
        add(f"kut-svm-pse-cr3-rsvd-bit{i}", "pse", t, "3895-3898", {"vmcb12.save.cr3": PSE_PD | 1 << i},
            "vmexit_invalid", "load_cr3", exit_code=SVM_EXIT_ERR,
            pre=pre + [MAXPHY] + ([NO_LAM] if i in (61, 62) else []),
            c=f"for (b = cpuid_maxphyaddr(); b <= 63; b++): svm_32bit_guest_init_common(cr3 | (1ull << {i}), false)",
            notes="Even for a non-PAE 32-bit L2, nested_svm_load_cr3() requires a legal GPA in the 64-bit "
                  "vmcb12 CR3 (kvm_vcpu_is_legal_cr3); nested_vmcb_check_save() skips CR3 outside long mode.")


def build_cases() -> list:
    """Every case, in the order the C code runs them (table order: v1 tests first)."""
    b = Builder()
    v1_tests(b)
    pae(b, npt=True)
    pae(b, npt=False)
    pse(b)
    osxsave(b)
    guest_state(b)
    no_nm(b)
    return b.cases


def write(path: Path = DATA) -> int:
    cases = build_cases()
    path.write_text("".join(json.dumps(c, sort_keys=False) + "\n" for c in cases))
    return len(cases)


if __name__ == "__main__":
    print(f"{write()} cases -> {DATA}")
