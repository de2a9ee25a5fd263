"""KVM selftests that assert the outcome of a nested entry, as oracle cases.

Each case names the selftest (repo, path, commit, function, lines), the field values the
selftest's L1 sets before VMRUN/VMLAUNCH/VMRESUME, the outcome it asserts (README.md,
"Outcomes") and the KVM check (arch/x86/kvm/{svm,vmx}/nested.c at 1a27afa0511e) that decides
it.  `python tests/selftests_cases.py` rewrites tests/data/selftests-cases.jsonl from CASES;
TRANSLATION turns a case id into (isa, l2_mode, field changes, guest-memory writes).

Base states: the selftests' generic_svm_setup() and prepare_vmcs() are approximated by the
model's default scenarios (kvm-unit-tests vmcb_ident / init_vmcs); where the selftest base
differs in a way that matters, the translation sets the field (e.g. the intercepts).
"""

import json
from pathlib import Path

from nsvm_model import x86
from nsvm_model.svm import defs as sd
from nsvm_model.svm.scenarios import L1_CR3 as SVM_L1_CR3, L2_RIP
from nsvm_model.vmx.scenarios import DEFAULT_FEATURES as VMX_FEATURES, L1_CR4 as VMX_L1_CR4

PIN = "1a27afa0511e404fd87c1a5e643945940ef72f90"
KVM = "arch/x86/kvm/{}/nested.c@1a27afa0511e"
SELFTEST_DIR = "tools/testing/selftests/kvm/x86/"
KVMX86_STORED = "154b098cada9d673058c3911cb1a3864de1ae05b"   # newest kvm-x86/linux version stored

# generic_svm_setup(): intercepts VMRUN and VMMCALL only (SHUTDOWN is not intercepted).
SVM_GENERIC = {"vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL"})}
MINUS_ONE = (1 << 64) - 1
LA57_GS_BASE = 0xff2bc0311fb00000
BIT = lambda n: 1 << n  # noqa: E731


def src(path, commit, test, lines, repo="kvm-x86/linux"):
    return {"repo": repo, "path": SELFTEST_DIR + path, "commit": commit, "test": test, "lines": lines}


def case(id, isa, source, base, changes, expected, kernel_check, notes, translation,
         preconditions=(), model_gap=None):
    rec = {"id": id, "isa": isa, "source": source,
           "setup": {"base": base, "changes": changes, "preconditions": list(preconditions)},
           "expected": expected, "kernel_check": kernel_check, "notes": notes}
    if model_gap:
        rec["model_gap"] = model_gap
    return rec, translation


_C = [
    # ---- nested_invalid_cr3_test.c ------------------------------------------------------
    case("svm-selftest-invalid-cr3-all-ones", "svm",
         src("nested_invalid_cr3_test.c", KVMX86_STORED, "l1_svm_code (first run_guest)", "25-29"),
         "selftest_generic_svm_setup", {"save.cr3": "-1ull"}, "vmexit_invalid",
         KVM.format("svm") + " nested_vmcb_check_save(): EFER.LME && CR0.PG: "
         "CC(!kvm_vcpu_is_legal_cr3(vcpu, save->cr3))",
         "GUEST_ASSERT(exit_code == SVM_EXIT_ERR). L2 is 64-bit (generic_svm_setup copies L1's long mode).",
         ("svm", "long", {**SVM_GENERIC, "vmcb12.save.cr3": MINUS_ONE}, {})),
    case("svm-selftest-invalid-cr3-restored", "svm",
         src("nested_invalid_cr3_test.c", KVMX86_STORED, "l1_svm_code (second run_guest)", "31-34"),
         "selftest_generic_svm_setup", {"save.cr3": "restored to L1's CR3"}, "l2_runs",
         "none fails: nested_vmcb_check_save()/nested_vmcb_check_controls()/nested_svm_load_cr3() pass",
         "GUEST_ASSERT(exit_code == SVM_EXIT_VMMCALL): L2 ran and executed VMMCALL.",
         ("svm", "long", {**SVM_GENERIC, "vmcb12.save.cr3": SVM_L1_CR3, "l2.exit": "VMMCALL"}, {})),
    case("vmx-selftest-invalid-cr3-all-ones", "vmx",
         src("nested_invalid_cr3_test.c", KVMX86_STORED, "l1_vmx_code (first vmlaunch)", "48-53"),
         "selftest_prepare_vmcs", {"GUEST_CR3": "-1ull"}, "vmexit:33",
         KVM.format("vmx") + " prepare_vmcs02() -> nested_vmx_load_cr3(): "
         "CC(!kvm_vcpu_is_legal_cr3(vcpu, cr3)) -> ENTRY_FAIL_DEFAULT, nested_vmx_enter_non_root_mode() "
         "vmentry_fail_vmexit_guest_mode (after enter_guest_mode()): EXIT_REASON_INVALID_STATE | "
         "VMX_EXIT_REASONS_FAILED_VMENTRY",
         "GUEST_ASSERT(!vmlaunch()) (no VMfail) and VM_EXIT_REASON == FAILED_VMENTRY|INVALID_STATE.",
         ("vmx", "long", {"vmcs12.guest_cr3": MINUS_ONE}, {})),
    case("vmx-selftest-invalid-cr3-restored", "vmx",
         src("nested_invalid_cr3_test.c", KVMX86_STORED, "l1_vmx_code (second vmlaunch)", "55-58"),
         "selftest_prepare_vmcs", {"GUEST_CR3": "restored to L1's CR3"}, "l2_runs",
         "none fails: nested_vmx_check_controls()/_host_state()/_guest_state() and prepare_vmcs02() pass",
         "VMLAUNCH again on the same (still clear) vmcs12: KVM left launch_state clear after the failed "
         "entry. GUEST_ASSERT(VM_EXIT_REASON == EXIT_REASON_VMCALL).",
         ("vmx", "long", {"l2.exit": "VMCALL"}, {})),
    # ---- vmx_invalid_nested_guest_state.c -------------------------------------------------
    case("vmx-selftest-invalid-guest-state-first-launch", "vmx",
         src("vmx_invalid_nested_guest_state.c", KVMX86_STORED, "l1_guest_code", "42-58"),
         "selftest_prepare_vmcs", {"secondary_vm_exec_control": "no UNRESTRICTED_GUEST (asserted)"},
         "l2_runs",
         "none fails: the entry itself is valid; the invalid state is stuffed afterwards",
         "vm_create_and_run_l2(): the first exit to userspace is L2's IN (KVM_RUN_X86_GUEST_MODE set). "
         "The later TR.unusable (KVM_SET_SREGS) -> L2 TRIPLE_FAULT part is not an entry check.",
         ("vmx", "long", {}, {})),
    case("vmx-selftest-invalid-guest-state-rsm-shutdown", "vmx",
         src("vmx_invalid_nested_guest_state.c", KVMX86_STORED, "test_invalid_l2_guest_state_rsm", "134-165"),
         "selftest_prepare_vmcs", {"SMRAM TR attributes": "present bit cleared before RSM back to L2"},
         "shutdown",
         "arch/x86/kvm/vmx/vmx.c@1a27afa0511e vmx_leave_smm() -> nested_vmx_enter_non_root_mode(vcpu, false); "
         "RSM into L2 with invalid (unemulatable) guest state fails -> KVM_EXIT_SHUTDOWN "
         "(arch/x86/kvm/smm.c emulator_leave_smm())",
         "Re-entry of L2 by RSM, not by VMLAUNCH. TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_SHUTDOWN).",
         ("vmx", "long", {}, {}), model_gap="the VMX model has no SMM: no SMI in L2, no RSM back into L2 "
         "(svm has l2.exit=SMI; vmx has only none/VMCALL), so the closest scenario is a plain VMLAUNCH"),
    # ---- vmx_nested_la57_state_test.c -----------------------------------------------------
    case("vmx-selftest-la57-l1-4level-l2", "vmx",
         src("vmx_nested_la57_state_test.c", KVMX86_STORED, "l1_guest_code", "28-62"),
         "selftest_prepare_vmcs",
         {"L1 CR4": "LA57 set (5-level paging)", "MSR_GS_BASE -> HOST_GS_BASE, GUEST_GS_BASE": "0xff2bc0311fb00000",
          "GUEST_CR4": "host CR4 & ~X86_CR4_LA57", "GUEST_CR3": "L1's first PML4"},
         "l2_runs",
         KVM.format("vmx") + " nested_vmx_check_host_state(): is_noncanonical_base_address(host_gs_base) "
         "uses max_host_virt_addr_bits() (57 with LA57), not HOST_CR4; passes",
         "GUEST_ASSERT(!vmlaunch()) and exit reason VMCALL (after a save/restore of nested state in the "
         "middle, which is not modelled). Guest GS base is canonical at 57 bits; the CPU checks it "
         "against the linear-address width, not guest CR4.LA57.",
         ("vmx", "long", {"cpu.features": VMX_FEATURES | {"LA57"}, "l1.cr4": VMX_L1_CR4 | x86.X86_CR4_LA57,
                          "vmcs12.host_cr4": VMX_L1_CR4 | x86.X86_CR4_LA57,
                          "vmcs12.guest_cr4": VMX_L1_CR4 & ~x86.X86_CR4_LA57,
                          "vmcs12.host_gs_base": LA57_GS_BASE, "vmcs12.guest_gs_base": LA57_GS_BASE,
                          "l2.exit": "VMCALL"}, {}),
         preconditions=["host and guest CPUID have LA57 (TEST_REQUIRE)"]),
    # ---- nested_exceptions_test.c (entry part) -------------------------------------------
    case("svm-selftest-exceptions-idtr-limit0", "svm",
         src("nested_exceptions_test.c", KVMX86_STORED, "l1_svm_code / svm_run_l2 (first run_guest)", "77-78, 92-97"),
         "selftest_generic_svm_setup",
         {"save.idtr.limit": 0, "intercepts": "|= SHUTDOWN", "intercept_exceptions": "SS|GP|DF"},
         "l2_runs", "none fails: IDTR limit and exception intercepts are not entry checks",
         "L2 runs and GUEST_SYNCs (#SS requested); the exception morphing after KVM_SET_VCPU_EVENTS is "
         "post-entry and not ported.",
         ("svm", "long", {"vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL", "SHUTDOWN"}),
                          "vmcb12.save.idtr.limit": 0}, {})),
    case("vmx-selftest-exceptions-idtr-limit0-vmlaunch", "vmx",
         src("nested_exceptions_test.c", KVMX86_STORED, "l1_vmx_code / vmx_run_l2 (vmlaunch)", "114, 131-140"),
         "selftest_prepare_vmcs", {"GUEST_IDTR_LIMIT": 0, "EXCEPTION_BITMAP": "SS|GP|DF"}, "l2_runs",
         "none fails: nested_vmx_check_guest_state() does not check IDTR limit",
         "GUEST_ASSERT_EQ(vmlaunch(), 0).",
         ("vmx", "long", {"vmcs12.guest_idtr_limit": 0,
                          "vmcs12.exception_bitmap": BIT(12) | BIT(13) | BIT(8)}, {})),
    case("vmx-selftest-exceptions-idtr-limit0-vmresume", "vmx",
         src("nested_exceptions_test.c", KVMX86_STORED, "l1_vmx_code / vmx_run_l2 (vmresume)", "114, 141-145"),
         "selftest_prepare_vmcs", {"GUEST_IDTR_LIMIT": 0, "EXCEPTION_BITMAP": "SS|GP|DF", "launch_state": "launched"},
         "l2_runs", "none fails: nested_vmx_run(): launch state matches VMRESUME; all checks pass",
         "GUEST_ASSERT_EQ(vmresume(), 0) after the first VM exit.",
         ("vmx", "long", {"vmcs12.guest_idtr_limit": 0, "vmcs12.launch_state": 1, "l1.instruction": "VMRESUME",
                          "vmcs12.exception_bitmap": BIT(12) | BIT(13) | BIT(8)}, {})),
    # ---- svm_nested_soft_inject_test.c ------------------------------------------------------
    case("svm-selftest-soft-inject-int-0x20", "svm",
         src("svm_nested_soft_inject_test.c", "7bb6284aa7b3c369b41e7f33fcbe193161f008e7",
             "l1_guest_code (is_nmi=0, first run_guest)", "86-100", repo="torvalds/linux"),
         "selftest_generic_svm_setup",
         {"event_inj": "0x20 | SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_SOFT", "next_rip": "save.rip",
          "intercepts": "|= NMI | HLT", "intercept_exceptions": "|= PF | UD"},
         "l2_runs", KVM.format("svm") + " nested_vmcb_check_controls() -> nested_svm_check_event_inj(): "
         "soft interrupt type with any vector is valid",
         "__GUEST_ASSERT(exit_code == SVM_EXIT_VMMCALL): the entry delivered INT 0x20 and L2 ran.",
         ("svm", "long", {"vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL", "NMI", "HLT",
                                                                  "EXCEPTION_PF", "EXCEPTION_UD"}),
                          "vmcb12.control.event_inj": 0x20 | sd.SVM_EVTINJ_VALID | sd.SVM_EVTINJ_TYPE_SOFT,
                          "vmcb12.control.next_rip": L2_RIP, "l2.exit": "VMMCALL"}, {})),
    case("svm-selftest-soft-inject-bp-exception", "svm",
         src("svm_nested_soft_inject_test.c", "7bb6284aa7b3c369b41e7f33fcbe193161f008e7",
             "l1_guest_code (is_nmi=0, second run_guest)", "118-130", repo="torvalds/linux"),
         "selftest_generic_svm_setup",
         {"event_inj": "BP_VECTOR | SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT", "next_rip": "save.rip + 2",
          "idtr.base": "alternate IDT", "clean": 0},
         "l2_runs", KVM.format("svm") + " nested_svm_check_event_inj(): exception type, vector 3 (not NMI) is valid",
         "__GUEST_ASSERT(exit_code == SVM_EXIT_HLT): L2 ran (#BP delivered, then HLT).",
         ("svm", "long", {"vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL", "NMI", "HLT",
                                                                  "EXCEPTION_PF", "EXCEPTION_UD"}),
                          "vmcb12.control.event_inj": 3 | sd.SVM_EVTINJ_VALID | sd.SVM_EVTINJ_TYPE_EXEPT,
                          "vmcb12.control.next_rip": L2_RIP + 2, "vmcb12.control.clean": 0}, {})),
    case("svm-selftest-soft-inject-nmi", "svm",
         src("svm_nested_soft_inject_test.c", "7bb6284aa7b3c369b41e7f33fcbe193161f008e7",
             "l1_guest_code (is_nmi=1, first run_guest)", "86-100", repo="torvalds/linux"),
         "selftest_generic_svm_setup", {"event_inj": "SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_NMI (vector 0)",
                                        "intercepts": "|= NMI | HLT"},
         "l2_runs", KVM.format("svm") + " nested_svm_check_event_inj(): NMI type is valid (vector ignored)",
         "__GUEST_ASSERT(exit_code == SVM_EXIT_VMMCALL): the NMI handler in L2 executed VMMCALL.",
         ("svm", "long", {"vmcb12.control.intercepts": frozenset({"VMRUN", "VMMCALL", "NMI", "HLT",
                                                                  "EXCEPTION_PF", "EXCEPTION_UD"}),
                          "vmcb12.control.event_inj": sd.SVM_EVTINJ_VALID | sd.SVM_EVTINJ_TYPE_NMI}, {})),
    # ---- svm_nested_vmcb12_gpa.c ----------------------------------------------------------
    case("svm-selftest-vmcb12-gpa-all-ones", "svm",
         src("svm_nested_vmcb12_gpa.c", "67f8bc848ee31831336bd478e57d2f993551902e",
             "vmrun_invalid: l1_vmrun + test_invalid_vmcb12", "26-31, 70-84", repo="torvalds/linux"),
         "selftest_generic_svm_setup", {"RAX (vmcb12 GPA)": "-1ULL"}, "l1_gp",
         KVM.format("svm") + " nested_svm_vmrun(): !page_address_valid(vcpu, vmcb12_gpa) -> "
         "kvm_inject_gp(vcpu, 0), before vmcb12 is mapped",
         "L1's #GP handler GUEST_SYNCs SYNC_GP.",
         ("svm", "long", {**SVM_GENERIC, "l1.rax": MINUS_ONE}, {})),
    case("svm-selftest-vmcb12-gpa-unmappable", "svm",
         src("svm_nested_vmcb12_gpa.c", "67f8bc848ee31831336bd478e57d2f993551902e",
             "vmrun_unmappable: l1_vmrun + test_unmappable_vmcb12", "26-31, 86-96", repo="torvalds/linux"),
         "selftest_generic_svm_setup", {"RAX (vmcb12 GPA)": "end of the highest memslot (legal, unbacked)"},
         "userspace_exit",
         KVM.format("svm") + " nested_svm_copy_vmcb12_to_cache(): kvm_vcpu_map() fails -> -EFAULT; "
         "nested_svm_vmrun() -> kvm_handle_memory_failure(vcpu, X86EMUL_IO_NEEDED, NULL): exit to userspace",
         "TEST_ASSERT_KVM_EXIT_REASON(KVM_EXIT_INTERNAL_ERROR), suberror EMULATION. The older "
         "svm_nested_invalid_vmcb12_gpa.c (torvalds/linux 5e4c6da0bb92) expected #GP for the same GPA; "
         "the model follows the pinned commit's exit to userspace.",
         ("svm", "long", {**SVM_GENERIC, "l1.rax": 0x800000000}, {})),
    case("svm-selftest-vmcb12-gpa-unmappable-at-vmexit", "svm",
         src("svm_nested_vmcb12_gpa.c", "67f8bc848ee31831336bd478e57d2f993551902e",
             "vmexit_unmappable: l1_vmexit + test_unmappable_vmcb12_vmexit", "47-54, 98-123", repo="torvalds/linux"),
         "selftest_generic_svm_setup", {"vmcb12 GPA (KVM_SET_NESTED_STATE)": "unbacked while L2 runs"},
         "shutdown",
         KVM.format("svm") + " nested_svm_vmexit(): nested_svm_vmexit_update_vmcb12()'s kvm_vcpu_map() "
         "fails -> kvm_make_request(KVM_REQ_TRIPLE_FAULT)",
         "The entry succeeds (SYNC_L2_STARTED); the outcome is of the #VMEXIT after userspace moved vmcb12. "
         "Kept because the model expresses it (l2.vmcb12_unmapped_at_exit).",
         ("svm", "long", {**SVM_GENERIC, "l2.exit": "VMMCALL", "l2.vmcb12_unmapped_at_exit": True}, {})),
    # ---- svm_vmcall_test.c ------------------------------------------------------------------
    case("svm-selftest-vmcall", "svm",
         src("svm_vmcall_test.c", "594a1c271c159c9c5f0ff2d92ebfda469e94e48d", "l1_guest_code", "20-34",
             repo="torvalds/linux"),
         "selftest_generic_svm_setup", {}, "l2_runs",
         "none fails: nested_vmcb_check_save()/nested_vmcb_check_controls()/nested_svm_load_cr3() pass",
         "GUEST_ASSERT(exit_code == SVM_EXIT_VMMCALL).",
         ("svm", "long", {**SVM_GENERIC, "l2.exit": "VMMCALL"}, {})),
]

CASES = [c for c, _ in _C]
TRANSLATION = {c["id"]: t for c, t in _C}


def main():
    out = Path(__file__).resolve().parent / "data" / "selftests-cases.jsonl"
    out.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    print(f"{len(CASES)} cases -> {out}")


if __name__ == "__main__":
    main()
