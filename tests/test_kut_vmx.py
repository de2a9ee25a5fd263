"""Every nested VM-entry consistency case of kvm-unit-tests x86/vmx_tests.c, run through the model.

The cases are tests/data/kut-vmx-cases.jsonl.gz (tests/data/kut-vmx-README.md says where they come
from); tests/kut_vmx.py generates that file from the C code's loops.  Each case is a concrete
scenario: the model's init_vmcs() with `setup.changes` applied and `setup.memory` written.  The
outcome, the VM-instruction error or exit reason and qualification, and the model check that
decides it are compared with the record.  A case marked `model_gap` is one the model cannot
express or gets wrong today: it is a strict xfail (none has one now).
"""

import gzip
import json
import re

import pytest

import nsvm_model as nm
from conftest import DATA, assert_vmx_outcome, model_gap_marks
from kut_vmx import KUT_COMMIT, KUT_HOST, build_cases

PATH = DATA / "kut-vmx-cases.jsonl.gz"
CASES = [json.loads(line) for line in gzip.decompress(PATH.read_bytes()).decode().splitlines() if line.strip()]
IDS = [c["id"] for c in CASES]
OUTCOME = re.compile(r"^(l2_runs|vmfail_invalid|vmfail_valid:(4|5|7|8|26)|vmexit:(33|34))$")
CHECK_STEPS = ("vmx.run.check_controls", "vmx.run.check_host_state", "vmx.enter.check_guest_state")


def scenario_for(case):
    setup = case["setup"]
    # the records hold hex text; integers spare with_fields() its expression parser
    changes = {k: int(v, 16) if isinstance(v, str) and v.startswith("0x") else v
               for k, v in setup["changes"].items()}
    sc = nm.Scenario.vmx(setup["l2_mode"]).with_fields({**KUT_HOST, **changes})
    if setup["memory"]:
        sc = sc.with_memory({int(gpa, 16): int(value, 16) for gpa, value in setup["memory"].items()})
    return sc


def decided_by(trace):
    """What decided the run, in the vocabulary of the records' `model_check`: a check id of
    nsvm_model.vmx.checks (X*, H*, G*), the id of the step that failed, or hw:<what> for the
    CPU's own checks of vmcs02; None when nothing failed."""
    for st in trace.steps:
        if st.label is None or st.label in ("running", "halted"):
            continue
        if st.step.id in CHECK_STEPS:
            m = re.match(r"^(\w+) fails", st.notes[0]) if st.notes else None
            return m.group(1) if m else st.step.id
        return st.step.id
    for st in trace.steps:
        if st.step.id == "vmx.l2.vcpu_run" and st.notes and "rejects vmcs02" in st.notes[-1]:
            why = st.notes[-1]
            for key, word in (("rflags", "RFLAGS"), ("sysenter", "SYSENTER"), ("ldtr", "LDTR"),
                              ("pdpte", "PDPTR")):
                if word in why:
                    return f"hw:{key}"
            return "hw:other"
    return None


def test_data_matches_generator():
    assert CASES == build_cases(), "tests/data/kut-vmx-cases.jsonl.gz is stale: run python tests/kut_vmx.py"


def test_records_are_well_formed():
    assert len(IDS) == len(set(IDS))
    for c in CASES:
        assert c["isa"] == "vmx" and c["id"].startswith("kut-vmx-") and c["area"]
        src = c["source"]
        assert src["repo"] == "kvm-unit-tests/kvm-unit-tests" and src["path"] == "x86/vmx_tests.c"
        assert src["commit"] == KUT_COMMIT and re.match(r"^\d+-\d+", src["lines"]) and src["test"]
        assert c["setup"]["base"] == "kut_init_vmcs" and c["setup"]["preconditions"] and c["setup"]["c"]
        assert OUTCOME.match(c["expected"]), c["expected"]
        assert c["decided_by"] in ("kvm", "cpu")
        if c["decided_by"] == "kvm":
            assert c["kernel_check"].startswith("arch/x86/kvm/vmx/nested.c@1a27afa0511e ")
        else:
            assert c["kernel_check"].startswith("Intel SDM vol. 3C 27.")
            assert "nested_vmx_reflect_vmexit()" in c["kernel_check"]
        if c["expected"].startswith("vmexit:"):
            assert c["exit_qualification"] in (0, 1, 2, 4)
        else:
            assert c["exit_qualification"] is None
        if "model_gap" in c:
            assert re.match(r"^[\w/ .-]+: ", c["model_gap"]), c["model_gap"]


def test_counts():
    """The loops expand to the counts the C code gives (MAXPHYADDR 48, 128 MiB of RAM)."""
    per = {}
    for c in CASES:
        key = " > ".join(c["source"]["test"].split(" > ")[1:]) or c["source"]["test"]
        per[key] = per.get(key, 0) + 1
    # test_rsvd_ctl_bit_value(): every bit cleared, then set where the bit is required or reserved
    assert per["test_pin_based_ctls > test_rsvd_ctl_bit_value"] == 32 + 3 + 24
    assert per["test_primary_processor_based_ctls > test_rsvd_ctl_bit_value"] == 32 + 8 + 3
    assert per["test_secondary_processor_based_ctls > test_rsvd_ctl_bit_value"] == 32 + 13
    assert per["test_cr3_targets > try_cr3_target_count"] == 3 + 2
    # test_vmcs_addr_values(): 64 bits + 4 values, with the feature on and off
    assert per["test_io_bitmaps > test_vmcs_addr_reference"] == 2 * 2 * 68
    assert per["test_msr_bitmap > test_vmcs_addr_reference"] == 2 * 68
    # with the feature on, 2^27..2^47 and 2^48 - 4096 lie beyond 128 MiB and are skipped
    assert per["test_apic_virt_addr > test_vmcs_addr_reference"] == 68 - 22 + 68
    assert per["test_apic_access_addr > test_vmcs_addr_reference"] == 68 - 22 + 68
    assert per["test_posted_intr"] == 6 + 17 + 12 + 68
    # 46 thresholds per block of controls; a valid threshold adds 3 vTPR cases
    assert per["test_tpr_threshold"] == 3 * 46 * 4 + 5 * (16 * 4 + 30)
    assert per["test_ept_eptp"] == 1 + 8 + 8 + 2 + 32 + 17 + 4
    assert per["test_pml > test_vmcs_addr_reference"] == 2 * 68
    assert per["test_vm_entry_ctls > test_invalid_event_injection"] == 6 + 2 + 2 + 8 + 48 + 19 + 16 + 6
    assert per["test_vm_entry_ctls > test_entry_msr_load"] == 4 + 64 + 16 + 3
    assert per["test_vm_exit_ctls > test_exit_msr_store"] == 4 + 64 + 16 + 3
    # CR0: fixed0 & fixed1, 3 fixed0 bits cleared, bits 63:32 set; CR4: 46 bits fixed1 forbids
    assert per["test_host_ctl_regs > test_ctl_reg"] == (1 + 3 + 32) + (1 + 1 + 46)
    assert per["test_host_efer > test_efer"] == per["test_guest_efer > test_efer"] == 1 + 60 + 60 + 16
    assert per["test_load_host_pat > test_pat"] == per["test_load_guest_pat > test_pat"] == 2 * 97
    assert per["test_load_host_perf_global_ctrl > test_perf_global_ctrl"] == 2 * 64
    assert per["test_host_segment_regs > test_vmcs_field"] == 7 * 3 + 2 * 8
    assert per["test_guest_segment_base_addr_fields"] == 3 + 2 + 8 + 3 * 16
    assert per["test_vmx_guest_pdptes (PDPTEs from CR3)"] == 1 + 5 + 16 + 4 * 15
    assert per["CR3 loops"] == 1 + 10 + 16
    assert per["configure_apic_reg_virt_test"] == 11
    assert per["configure_virt_x2apic_mode_test"] == 8
    assert len(CASES) == 3948


def test_readme_counts():
    """tests/data/kut-vmx-README.md states the counts of the data: per area and in total."""
    text = (DATA / "kut-vmx-README.md").read_text()
    areas = {}
    for c in CASES:
        total, gaps, outcomes = areas.setdefault(c["area"], [0, 0, {}])
        areas[c["area"]][0] += 1
        areas[c["area"]][1] += "model_gap" in c
        outcomes[c["expected"]] = outcomes.get(c["expected"], 0) + 1
    rows = {m.group(1): tuple(int(m.group(i)) for i in (2, 3, 4))
            for m in re.finditer(r"^\| ([^|]+?) \| (\d+) \| (\d+) \| (\d+) \|", text, re.M)}
    assert rows == {a: (t, t - g, g) for a, (t, g, _) in areas.items()}
    gaps = sum(g for _, g, _ in areas.values())
    assert f"{len(CASES)} cases, {len(CASES) - gaps} passing and {gaps} gaps" in text
    totals = {}
    for _, _, outcomes in areas.values():
        for o, n in outcomes.items():
            totals[o] = totals.get(o, 0) + n
    for o, n in totals.items():
        assert f"{n} `{o}`" in text, o


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=model_gap_marks(c)) for c in CASES])
def test_kut_vmx_case(case):
    trace = nm.run(scenario_for(case))
    why = (case["kernel_check"], decided_by(trace), [s.notes for s in trace.steps if s.label][:2])
    assert trace.outcome == case["expected"], why
    assert_vmx_outcome(trace, case["expected"], case.get("exit_qualification"))
    assert decided_by(trace) == case["model_check"], why
