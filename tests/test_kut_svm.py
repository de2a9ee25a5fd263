"""Every nested consistency case of kvm-unit-tests x86/svm_tests.c, run through the model.

The cases are tests/data/kut-svm-cases.jsonl (tests/data/kut-svm-README.md says where
they come from); tests/kut_svm.py generates that file from the C code's loops.  Each
case is a concrete scenario: the model's vmcb_ident() with `setup.changes` applied and
`setup.memory` written.  The outcome (and, for VMEXIT_INVALID, the kernel check that
decides it) and the exit code the C test asserts are checked separately.  Where L2's first
access faults (a cleared NPT entry, a reserved PDPTE bit), the case says so in `l2.exit` and
the model follows KVM's handling of that exit: whether vmcb02 intercepts it, whether it is L0's
or L1's, and the #VMEXIT L1 gets.  A case marked `model_gap` (none today) would be one whose
exit code the model cannot produce, and that test would be xfail(strict).
"""

import json
import re

import pytest

import nsvm_model as nm
from conftest import DATA, model_gap_marks
from kut_svm import KVM, MODEL_CHECKS, build_cases

PATH = DATA / "kut-svm-cases.jsonl"
CASES = [json.loads(line) for line in PATH.read_text().splitlines() if line.strip()]
IDS = [c["id"] for c in CASES]
FAIL_LABELS = ("invalid", "illegal_cr3", "bad_pdpte", "fail")


def scenario_for(case):
    setup = case["setup"]
    sc = nm.Scenario.svm(setup["l2_mode"]).with_fields(setup["changes"])
    if setup["memory"]:
        sc = sc.with_memory({int(gpa, 16): int(value, 16) for gpa, value in setup["memory"].items()})
    return sc


_TRACES = {}


def trace_for(case):
    if case["id"] not in _TRACES:
        _TRACES[case["id"]] = nm.run(scenario_for(case))
    return _TRACES[case["id"]]


def test_data_matches_generator():
    assert CASES == build_cases(), "tests/data/kut-svm-cases.jsonl is stale: run python tests/kut_svm.py"


def test_records_are_well_formed():
    assert len(IDS) == len(set(IDS))
    for c in CASES:
        assert c["isa"] == "svm"
        src = c["source"]
        assert src["repo"] == "kvm-unit-tests/kvm-unit-tests" and src["path"] == "x86/svm_tests.c"
        assert src["commit"] == "1da1819e49fc4938985edca67df669099b4c87a7"
        assert re.match(r"^\d+", src["lines"]) and src["test"]
        assert c["setup"]["base"].startswith("kut_vmcb_ident") and c["setup"]["preconditions"]
        assert c["kernel_check"].startswith("arch/x86/kvm/svm/nested.c@1a27afa0511e ")
        if c["expected"] == "vmexit_invalid":
            assert c["exit_code"] == hex(nm.SVM_EXIT_ERR) and c["failure"] in ("early", "late")
        else:
            assert c["expected"] == "l2_runs" and c["failure"] is None and c["model_check"] is None
        if "model_gap" in c:
            assert re.match(r"^[\w ]+: ", c["model_gap"])


def test_counts():
    """The loops expand to the counts the C code gives (MAXPHYADDR 48)."""
    per_test = {}
    for c in CASES:
        per_test[c["source"]["test"]] = per_test.get(c["source"]["test"], 0) + 1
    gs = "svm_guest_state_test > "
    assert per_test[gs + "test_efer"] == 1 + 1 + 1 + 12 + 3
    assert per_test[gs + "test_cr0"] == 4 + 8
    assert per_test[gs + "test_cr3"] == 12 + 1 + 10 + 1 + 10 + 3
    assert per_test[gs + "test_cr4"] == 11 + 11 + 8
    assert per_test[gs + "test_dr"] == 8 + 8
    assert per_test[gs + "test_msrpm_iopm_bitmap_addrs"] == 5 + 7
    assert per_test[gs + "test_canonicalization"] == 6
    assert per_test["svm_pae_test > test_svm_guest_pdptes"] == 2 * (1 + 5 + 16 + 4 * (11 + 3))
    assert per_test["svm_pse_test"] == 1 + 10 + 16
    assert len(CASES) == 325


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outcome(case):
    trace = trace_for(case)
    assert trace.outcome == case["expected"], (case["kernel_check"], [s.notes for s in trace.steps[-4:]])
    failing = [s for s in trace.steps if s.label in FAIL_LABELS]
    if case["expected"] == "vmexit_invalid":
        assert trace.failure == case["failure"]
        step = failing[0]
        # the kernel function the case names is the step that failed, for the same reason
        keys = [k for k, (fn, cc) in KVM.items() if case["kernel_check"].endswith(f"{fn}(): {cc}")]
        assert len(keys) == 1 and MODEL_CHECKS[keys[0]] == case["model_check"], (keys, case["model_check"])
        assert f"{step.function}()" in case["kernel_check"], (step.function, case["kernel_check"])
        want = case["model_check"]
        if want.startswith("svm."):
            assert step.id == want, (step.id, want)
        else:
            assert step.notes and step.notes[0].startswith(f"{want} fails"), (step.notes, want)
    else:
        assert not failing, [(s.id, s.notes) for s in failing]
        assert any(s.id == "svm.l2.vcpu_run" for s in trace.steps)
        if case["setup"]["changes"].get("l2.exit", "none") == "none":
            assert trace.final["vcpu.guest_mode"] is True
            assert trace.final["svm.current_vmcb"] == "vmcb02"


@pytest.mark.parametrize("case", [pytest.param(c, marks=model_gap_marks(c)) for c in CASES], ids=IDS)
def test_exit_code(case):
    """The exit code the C test asserts, as L1 reads it from vmcb12 after VMRUN returns."""
    trace = trace_for(case)
    assert trace.final["vmcb12.control.exit_code"] == int(case["exit_code"], 16)
    assert trace.final["svm.current_vmcb"] == "vmcb01" and trace.final["vcpu.guest_mode"] is False


FINAL = [c for c in CASES if "final" in c]


@pytest.mark.parametrize("case", FINAL, ids=[c["id"] for c in FINAL])
def test_final_vmcb12(case):
    """Other vmcb12 fields the C test checks after the #VMEXIT."""
    final = trace_for(case).final
    for field, want in case["final"].items():
        assert final[field] & int(want["mask"], 16) == int(want["equals"], 16), field
