"""Every svm case of the public oracle table, run through the model."""

import re

import pytest

import nsvm_model as nm
from conftest import oracle_cases
from oracle_svm import TRANSLATION

CASES = oracle_cases("svm")


def scenario_for(case):
    l2_mode, changes, memory = TRANSLATION[case["id"]]
    sc = nm.Scenario.svm(l2_mode).with_fields(changes)
    return sc.with_memory(memory) if memory else sc


def test_every_public_case_is_translated():
    missing = [c["id"] for c in CASES if c["id"] not in TRANSLATION]
    assert not missing, f"oracle cases without a translation: {missing}"
    assert len(CASES) >= 31


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_oracle_case(case):
    trace = nm.run(scenario_for(case))
    assert trace.outcome == case["expected"], (case["kernel_check"], trace.steps[-1].notes)
    if case["expected"] == "vmexit_invalid":
        assert trace.final["vmcb12.control.exit_code"] == nm.SVM_EXIT_ERR
        # the step that failed is one of the kernel functions the table names
        named = set(re.findall(r"[a-z]\w*_\w+", case["kernel_check"]))
        failing = [s for s in trace.steps if s.label in ("invalid", "illegal_cr3", "bad_pdpte", "fail")]
        assert failing and failing[0].function in named, (failing, named)
    elif case["expected"] == "l2_runs":
        assert trace.final["vcpu.guest_mode"] is True
        assert trace.final["svm.current_vmcb"] == "vmcb02"
