"""Three details of the nVMX flow the fidelity review found missing or misnamed, against
kvm-x86/linux 1a27afa0511e404fd87c1a5e643945940ef72f90:

1. kvm_service_local_tlb_flush_requests() is the first action of
   nested_vmx_enter_non_root_mode() and, in __nested_vmx_vmexit(), comes before
   leave_guest_mode(): a pending flush is done in the context it was requested for.
2. nested_get_vmcs12_pages() first re-reads L1's PDPTRs when vmcs12 has no EPT and L1 uses PAE
   paging; a failure returns to userspace (NVMX_VMENTRY_KVM_INTERNAL_ERROR) with no exit reason.
3. The CPU role lives in the page-table walkers (struct kvm_pagewalk): vcpu->arch.gva_walk for
   the running guest's addresses, vcpu->arch.ngpa_walk for L1's EPT/NPT.
"""

import pytest
from hypothesis import given, settings, strategies as st

import nsvm_model as nm
from nsvm_model import transitions
from nsvm_model.review import resolve
from nsvm_model.svm import scenarios as svm_scenarios
from nsvm_model.vmx import defs as d, scenarios as s


def ids(trace):
    return [step.id for step in trace.steps]


def test_the_flush_l1_owes_is_serviced_first_in_the_entry():
    t = nm.run(s.default_scenario())
    order = ids(t)
    assert order.index("vmx.enter.service_tlb_flush") == order.index("vmx.run.set_run_pending") + 1
    assert order.index("vmx.enter.service_tlb_flush") < order.index("vmx.enter.snapshot_l1")


def test_the_exit_services_l2s_flushes_before_leaving_guest_mode():
    t = nm.run(s.PRESETS["round_trip"]())
    order = ids(t)
    k = order.index("vmx.exit.service_tlb_flush")
    assert order[k + 1] == "vmx.exit.leave_guest_mode"
    assert t.steps[k].before["vcpu.guest_mode"] is True


class _Ctx:
    """The least a step action needs: state, notes."""
    def __init__(self, requests):
        self.state = {"vcpu.requests": frozenset(requests)}
        self.notes = []

    def get(self, path):
        return self.state[path]

    def remove_from(self, path, *items):
        self.state[path] = self.state[path] - set(items)

    def note(self, text):
        self.notes.append(text)


@given(st.sets(st.sampled_from(["KVM_REQ_TLB_FLUSH_CURRENT", "KVM_REQ_TLB_FLUSH_GUEST",
                                "KVM_REQ_TRIPLE_FAULT", "KVM_REQ_EVENT", "KVM_REQ_MMU_SYNC"])))
@settings(max_examples=60, deadline=None)
def test_servicing_takes_exactly_the_two_local_flushes(requests):
    ctx = _Ctx(requests)
    transitions.service_local_tlb_flush_requests("L1")(ctx)
    assert ctx.state["vcpu.requests"] == frozenset(requests) - set(transitions.LOCAL_TLB_FLUSHES)
    served = set(requests) & set(transitions.LOCAL_TLB_FLUSHES)
    assert all(r in ctx.notes[0] for r in served) and ("no TLB flush" in ctx.notes[0]) == (not served)


@pytest.mark.parametrize("moved, anchor, rule", [
    ("vmx.enter.service_tlb_flush", "vmx.enter.switch_vmcs02", "D16"),
    ("vmx.exit.service_tlb_flush", "vmx.exit.leave_guest_mode", "D17"),
])
def test_servicing_after_the_switch_breaks_its_rule(moved, anchor, rule):
    assert rule not in {v.id for v in nm.check_order(resolve("upstream", "vmx"))}
    broken = {v.id for v in nm.check_order(nm.move(moved, after=anchor))}
    assert rule in broken


def l1_in_pae_paging(**fields):
    """A 32-bit PAE L1 (EFER.LME/LMA clear) whose CR3 is a PDPT of four present entries, with a
    32-bit host area in vmcs12, launching a PAE L2."""
    sc = s.default_scenario("pae")
    return sc.with_fields({
        "l1.efer": 0x801, "l1.cr3": s.PAE_PDPT, "vmcs12.host_ia32_efer": 0x801,
        "vmcs12.host_cr3": s.PAE_PDPT,
        "vmcs12.vm_exit_controls": sc.get("vmcs12.vm_exit_controls") & ~d.VM_EXIT_HOST_ADDR_SPACE_SIZE,
        **fields})


def test_a_pae_l1_has_its_pdptrs_reread_before_its_pages_are_mapped():
    t = nm.run(l1_in_pae_paging())
    assert t.outcome == "l2_runs"
    pages = t.steps[t.index_of("vmx.enter.get_vmcs12_pages")]
    assert pages.state["vcpu.arch.pdptrs_status"] == "loaded"
    assert pages.state["vcpu.arch.pdptrs"] == (0x301001, 0x302001, 0x303001, 0x304001)
    assert pages.before["vcpu.guest_mode"] is False                 # still L1's mode and CR3


@pytest.mark.parametrize("bit", [1, 2, 5, 6, 7, 8, 52, 62])
def test_a_reserved_bit_in_l1s_pdpte_is_an_internal_error_with_no_exit_reason(bit):
    t = nm.run(l1_in_pae_paging().with_memory({s.PAE_PDPT + 8: 0x302001 | 1 << bit}))
    assert t.outcome == "userspace_exit"
    assert ids(t)[-3:] == ["vmx.enter.get_vmcs12_pages", "vmx.fail.switch_vmcs01", "vmx.run.vmentry_failed"]
    assert t.final["kvm_run.exit_reason"] == "none"
    assert t.final["vcpu.guest_mode"] is False and t.final["vmx.current_vmcs"] == "vmcs01"


def test_with_nested_ept_or_a_long_mode_l1_the_pdptrs_are_not_read():
    bad = {s.PAE_PDPT + 8: 0x302001 | 1 << 5}
    ept = l1_in_pae_paging(**s.EPT_ON, **{"vmcs12.ept_pointer": s.PRESETS["nested_ept"]().get("vmcs12.ept_pointer")})
    assert nm.run(ept.with_memory(bad)).outcome == "l2_runs"
    long_l1 = s.default_scenario("pae").with_memory(bad)       # L1 in long mode: no PDPTRs for L1
    t = nm.run(long_l1)
    assert t.steps[t.index_of("vmx.enter.get_vmcs12_pages")].state["vcpu.arch.pdptrs_status"] == "-"


@pytest.mark.parametrize("scenario, mmu, ngpa_role", [
    (svm_scenarios.PRESETS["default"](), "guest_mmu", "4-level"),       # nested NPT
    (svm_scenarios.PRESETS["shadow_paging"](), "root_mmu", "-"),
    (s.PRESETS["default"](), "root_mmu", "-"),
    (s.PRESETS["nested_ept"](), "guest_mmu", "4-level EPT"),
])
def test_mmu_state_uses_the_kernels_walker_names(scenario, mmu, ngpa_role):
    final = nm.run(scenario).final
    assert not any("walk_mmu" in p or p.endswith("mmu.cpu_role") or p.endswith("mmu.pgd") for p in final)
    assert final["vcpu.arch.mmu"] == mmu
    assert final["vcpu.arch.gva_walk.cpu_role"] == "4-level"          # L2's GVAs, 4-level in these runs
    assert final["vcpu.arch.ngpa_walk.cpu_role"] == ngpa_role
