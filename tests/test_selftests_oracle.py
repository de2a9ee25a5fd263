"""Every case of tests/data/selftests-cases.jsonl (KVM selftests asserting a nested-entry
outcome) run through the model; a case with a "model_gap" must fail (strict xfail)."""

import json

import pytest

import nsvm_model as nm
from conftest import DATA, model_gap_marks
from selftests_cases import CASES as GENERATED, TRANSLATION

CASES = [json.loads(line) for line in (DATA / "selftests-cases.jsonl").read_text().splitlines() if line.strip()]


def scenario_for(case):
    isa, l2_mode, changes, memory = TRANSLATION[case["id"]]
    assert isa == case["isa"]
    sc = (nm.Scenario.svm if isa == "svm" else nm.Scenario.vmx)(l2_mode).with_fields(changes)
    return sc.with_memory(memory) if memory else sc


def test_data_matches_generator():
    assert CASES == json.loads(json.dumps(GENERATED))
    assert len(CASES) >= 15 and not [c["id"] for c in CASES if c["id"] not in TRANSLATION]
    for c in CASES:
        assert {"repo", "path", "commit", "test", "lines"} <= set(c["source"]), c["id"]
        assert "selftests/kvm/x86/" in c["source"]["path"] and c["kernel_check"]


def _param(c):
    return pytest.param(c, id=c["id"], marks=model_gap_marks(c))


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_selftest_case(case):
    trace = nm.run(scenario_for(case))
    assert trace.outcome == case["expected"], (case["kernel_check"], trace.steps[-1].notes)
    f = trace.final
    if case["expected"] == "vmexit_invalid":
        assert f["vmcb12.control.exit_code"] == nm.SVM_EXIT_ERR
    elif case["expected"].startswith("vmexit:"):
        assert f["vmcs12.vm_exit_reason"] == 0x80000000 | int(case["expected"].split(":")[1])
        assert f["vcpu.rip"] == f["vmcs12.host_rip"]
    elif case["expected"] == "l2_runs":
        changes = TRANSLATION[case["id"]][2]
        # L2 ran; with l2.exit set it has already exited back to L1
        assert f["vcpu.guest_mode"] is (changes.get("l2.exit", "none") == "none")
        if changes.get("l2.exit") == "VMMCALL":
            assert f["vmcb12.control.exit_code"] == 0x81      # SVM_EXIT_VMMCALL, as the selftest asserts
        if changes.get("l2.exit") == "VMCALL":
            assert f["vmcs12.vm_exit_reason"] == 18           # EXIT_REASON_VMCALL
