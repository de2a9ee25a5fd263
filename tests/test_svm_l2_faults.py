"""L2's first access faults, and KVM decides whose fault it is (arch/x86/kvm/svm/nested.c and
svm.c at kvm-x86/linux 1a27afa0511e404fd87c1a5e643945940ef72f90):

- #PF: vmcb02 intercepts #PF only if L0 or L1 does; with host NPT, L0 does not, so an L2 #PF
  is L1's exit exactly when vmcb12 intercepts it (nested_svm_intercept()); without host NPT
  nested_svm_exit_special() keeps every #PF for L0's shadow MMU.
- NPF: nested_svm_exit_special() keeps every NPF for L0; a fault in L1's nested page table is
  injected by nested_svm_inject_npf_exit(), with exactly one fault-stage bit in exit_info_1.
"""

import pytest
from hypothesis import given, settings, strategies as st

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.svm import defs, scenarios as s

PF_EXIT = defs.SVM_EXIT_EXCP_BASE + x86.PF_VECTOR
FETCH_RSVD = x86.PFERR_PRESENT_MASK | x86.PFERR_RSVD_MASK | x86.PFERR_FETCH_MASK


def with_fault(base, fault, code, address, **fields):
    return base.with_fields({"l2.exit": fault, "l2.fault_error_code": code, "l2.fault_address": address,
                             **fields})


def intercepts(*extra):
    return {"vmcb12.control.intercepts": {"VMRUN", "VMMCALL", "SHUTDOWN", *extra}}


def test_an_intercepted_pf_reaches_l1_with_the_cpus_error_code_and_address():
    t = nm.run(with_fault(s.PRESETS["default"](), "#PF", FETCH_RSVD, 0x402000, **intercepts("EXCEPTION_PF")))
    f = t.final
    assert (f["vmcb12.control.exit_code"], f["vmcb12.control.exit_info_1"], f["vmcb12.control.exit_info_2"]) \
        == (PF_EXIT, FETCH_RSVD, 0x402000)
    assert f["svm.current_vmcb"] == "vmcb01" and f["vcpu.guest_mode"] is False
    assert "svm.l2.inject_npf_exit" not in [x.id for x in t.steps]


def test_a_pf_l1_does_not_intercept_stays_in_l2():
    t = nm.run(with_fault(s.PRESETS["default"](), "#PF", FETCH_RSVD, 0x402000))
    assert t.steps[-1].id == "svm.l2.vcpu_run" and t.steps[-1].label == "running"
    assert t.final["vcpu.guest_mode"] is True and t.final["vmcb12.control.exit_code"] != PF_EXIT


def test_without_host_npt_l0_keeps_every_pf():
    base = s.PRESETS["shadow_paging"]().with_fields({"cpu.npt": False})
    t = nm.run(with_fault(base, "#PF", FETCH_RSVD, 0x402000, **intercepts("EXCEPTION_PF")))
    handled = t.steps[t.index_of("svm.l2.exit_handled")]
    assert handled.label == "host" and t.final["vcpu.guest_mode"] is True


def test_an_npf_in_l1s_table_goes_through_l0_and_is_injected_into_l1():
    code = x86.PFERR_GUEST_PAGE_MASK | x86.PFERR_USER_MASK
    t = nm.run(with_fault(s.PRESETS["default"](), "#NPF", code, 0x100000))
    order = [x.id for x in t.steps]
    k = order.index("svm.l2.exit_handled")
    assert t.steps[k].label == "npf" and order[k + 1] == "svm.l2.inject_npf_exit"
    f = t.final
    assert (f["vmcb12.control.exit_code"], f["vmcb12.control.exit_info_1"], f["vmcb12.control.exit_info_2"]) \
        == (defs.SVM_EXIT_NPF, code, 0x100000)


def test_without_nested_npt_an_npf_is_l0s_own_and_l2_goes_on():
    t = nm.run(with_fault(s.PRESETS["shadow_paging"](), "#NPF", x86.PFERR_GUEST_PAGE_MASK, 0x100000))
    assert t.steps[-1].id == "svm.l2.vcpu_run" and t.steps[-1].label == "running"


@given(st.integers(0, (1 << 64) - 1))
@settings(max_examples=80, deadline=None)
def test_the_injected_npf_carries_exactly_one_fault_stage_bit(code):
    t = nm.run(with_fault(s.PRESETS["default"](), "#NPF", code, 0x100000))
    info1 = t.final["vmcb12.control.exit_info_1"]
    stage = code & x86.PFERR_GUEST_FAULT_STAGE_MASK
    want_stage = stage if stage in (x86.PFERR_GUEST_FINAL_MASK, x86.PFERR_GUEST_PAGE_MASK) \
        else x86.PFERR_GUEST_FINAL_MASK
    assert info1 == want_stage | (code & ~x86.PFERR_GUEST_FAULT_STAGE_MASK)


@pytest.mark.parametrize("bad", ["#GP", "pf", 3])
def test_an_unknown_l2_exit_is_refused_naming_the_field(bad):
    with pytest.raises((ValueError, TypeError), match="l2.exit"):
        s.PRESETS["default"]().with_fields({"l2.exit": bad})
