import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def model_gap_marks(case):
    """An oracle case the model cannot express yet carries `model_gap`: it must fail (strict
    xfail), so a case the model comes to pass is noticed and its gap removed."""
    if case.get("model_gap"):
        return [pytest.mark.xfail(strict=True, reason=case["model_gap"])]
    return []


def oracle_cases(isa):
    """Cases of the oracle table for one ISA: kvm-unit-tests and selftest cases with the
    outcome each asserts (tests/data/README.md says where they come from)."""
    path = DATA / "oracle-cases.jsonl"
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [c for c in cases if c["isa"] == isa]


def assert_vmx_outcome(trace, expected, qualification=None):
    """A VMX run ended as a case expects: the outcome, and the state each kind of ending leaves
    (VMfail: the error number, back on vmcs01; a failed entry: the exit reason with bit 31,
    L1 at its host RIP; L2 running on vmcs02)."""
    assert trace.outcome == expected
    f = trace.final
    if expected.startswith("vmfail_valid:"):
        assert f["vmcs12.vm_instruction_error"] == int(expected.split(":")[1])
        assert f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False
    elif expected.startswith("vmexit:"):
        assert f["vmcs12.vm_exit_reason"] == 0x80000000 | int(expected.split(":")[1])
        assert f["vcpu.rip"] == f["vmcs12.host_rip"] and f["vcpu.guest_mode"] is False
        if qualification is not None:
            assert f["vmcs12.exit_qualification"] == qualification
    elif expected == "l2_runs":
        assert f["vcpu.guest_mode"] is True and f["vmx.current_vmcs"] == "vmcs02"
