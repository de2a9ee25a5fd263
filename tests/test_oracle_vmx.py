"""Every vmx case of the public oracle table, run through the model."""

import pytest

import nsvm_model as nm
from conftest import assert_vmx_outcome, oracle_cases
from oracle_vmx import TRANSLATION

CASES = oracle_cases("vmx")


def scenario_for(case):
    l2_mode, changes, memory = TRANSLATION[case["id"]]
    sc = nm.Scenario.vmx(l2_mode).with_fields(changes)
    return sc.with_memory(memory) if memory else sc


def test_every_public_case_is_translated():
    missing = [c["id"] for c in CASES if c["id"] not in TRANSLATION]
    assert not missing, f"oracle cases without a translation: {missing}"
    assert len(CASES) >= 19


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_oracle_case(case):
    trace = nm.run(scenario_for(case))
    assert trace.outcome == case["expected"], (case["kernel_check"], [s.notes for s in trace.steps[-3:]])
    assert_vmx_outcome(trace, case["expected"])


def test_pdpte_failure_has_qualification_2():
    case = next(c for c in CASES if c["id"] == "vmx-pae-pdpte0-bit52-no-ept")
    assert nm.run(scenario_for(case)).final["vmcs12.exit_qualification"] == 2


def test_msr_load_failure_names_the_entry():
    case = next(c for c in CASES if c["id"] == "vmx-msr-load-fs-base")
    assert nm.run(scenario_for(case)).final["vmcs12.exit_qualification"] == 1
