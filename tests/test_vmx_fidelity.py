"""nVMX checks and loads the fidelity review found missing, against arch/x86/kvm/vmx/nested.c at
kvm-x86/linux 1a27afa0511e404fd87c1a5e643945940ef72f90.

Per item, a value that fails exactly as KVM fails (outcome, error number or exit reason and
qualification, where in the flow) and a neighbouring value that passes:

1. IA32_PERF_GLOBAL_CTRL: nested_vmx_check_host_state() (VMfail 8) and
   nested_vmx_check_guest_state() (VM exit 33, qualification 0) call
   kvm_valid_perf_global_ctrl(): no bit of the vPMU's global_ctrl_rsvd may be set.
2. Host CR0 bits 63:32: nested_host_cr0_valid() with cr0_fixed1 = 0xffffffff (VMfail 8).
3. LA57: is_noncanonical_msr_address()/is_noncanonical_base_address() check at
   max_host_virt_addr_bits(); host RIP at HOST_CR4.LA57.
4. The VM-entry MSR-load list: only nested_vmx_load_msr_check() refuses; everything else goes
   through kvm_emulate_msr_write() (VM exit 34, qualification = index + 1).
5. BNDCFGS and CET state: nested_vmx_check_guest_state() / nested_vmx_check_host_state() and
   nested_vmx_check_cet_state_common().
"""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.vmx import caps, defs as d
from nsvm_model.vmx.checks import GUEST_CHECKS, HOST_CHECKS, Env, first_failure, reader
from nsvm_model.vmx.scenarios import L1_CR0, L1_CR4, L1_HOST_RIP, MSR_LOAD_GPA, msr_entries

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

BASE = nm.Scenario.vmx()
EXIT = BASE.get("vmcs12.vm_exit_controls")
ENTRY = BASE.get("vmcs12.vm_entry_controls")
RSVD = x86.intel_global_ctrl_rsvd(8, 3)        # the default vPMU: 8 GP, 3 fixed counters


def run(changes=None, memory=None):
    sc = BASE.with_fields(changes or {})
    return nm.run(sc.with_memory(memory) if memory else sc)


def failing_check(trace, step_id):
    """The note of a check step, e.g. 'H6b fails (required: ...)'."""
    return " ".join(trace.steps[trace.index_of(step_id)].notes)


def assert_vmfail_8(t, check_id):
    assert t.outcome == "vmfail_valid:8", (t.outcome, [s.notes for s in t.steps[-3:]])
    assert t.final["vmcs12.vm_instruction_error"] == d.VMXERR_ENTRY_INVALID_HOST_STATE_FIELD
    assert failing_check(t, "vmx.run.check_host_state").startswith(f"{check_id} fails")
    assert "vmx.run.set_run_pending" not in t.step_ids and t.final["vmx.current_vmcs"] == "vmcs01"


def assert_vmexit_33(t, check_id, qualification=d.ENTRY_FAIL_DEFAULT):
    assert t.outcome == "vmexit:33" and t.failure == "early", (t.outcome, t.failure)
    f = t.final
    assert f["vmcs12.vm_exit_reason"] == d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE
    assert f["vmcs12.exit_qualification"] == qualification
    assert failing_check(t, "vmx.enter.check_guest_state").startswith(f"{check_id} fails")
    # nested_vmx_check_guest_state() fails before enter_guest_mode(): label vmentry_fail_vmexit
    assert "vmx.enter.enter_guest_mode" not in t.step_ids
    assert f["vcpu.rip"] == L1_HOST_RIP and f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False


# --- 1. IA32_PERF_GLOBAL_CTRL ---------------------------------------------------------------

def test_the_default_vpmu_reserves_everything_but_8_gp_and_3_fixed_enables():
    assert RSVD == x86.MASK64 & ~(0xFF | 0x7 << 32)
    assert x86.intel_global_ctrl_rsvd(0, 0) == x86.MASK64      # no vPMU: kvm_pmu_refresh()'s ~0ull
    assert BASE.get("cpu.pmu_gp_counters") == 8 and BASE.get("cpu.pmu_fixed_counters") == 3


HOST_PERF = {"vmcs12.vm_exit_controls": EXIT | d.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL}
GUEST_PERF = {"vmcs12.vm_entry_controls": ENTRY | d.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL}


def test_host_perf_global_ctrl_with_a_reserved_bit_is_vmfail_8():
    assert_vmfail_8(run({**HOST_PERF, "vmcs12.host_ia32_perf_global_ctrl": 1 << 8}), "H6b")


def test_host_perf_global_ctrl_with_every_counter_enabled_passes_and_is_loaded_on_exit():
    value = 0xFF | 0x7 << 32
    t = run({**HOST_PERF, "vmcs12.host_ia32_perf_global_ctrl": value, "l2.exit": "VMCALL"})
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.pmu.global_ctrl"] == value


def test_host_perf_global_ctrl_is_not_checked_without_the_exit_control():
    assert run({"vmcs12.host_ia32_perf_global_ctrl": x86.MASK64}).outcome == "l2_runs"


def test_host_checks_keep_the_kernel_order_pat_before_perf_global_ctrl():
    t = run({**HOST_PERF, "vmcs12.host_ia32_perf_global_ctrl": 1 << 63, "vmcs12.host_ia32_pat": 0x2})
    assert_vmfail_8(t, "H6")        # LOAD_IA32_PAT is in the default exit controls


def test_guest_perf_global_ctrl_with_a_reserved_bit_is_vm_exit_33_qualification_0():
    assert_vmexit_33(run({**GUEST_PERF, "vmcs12.guest_ia32_perf_global_ctrl": 1 << 35}), "G5b")


def test_guest_perf_global_ctrl_comes_after_the_link_pointer():
    t = run({**GUEST_PERF, "vmcs12.guest_ia32_perf_global_ctrl": 1 << 35, "vmcs12.vmcs_link_pointer": 0x24000})
    assert_vmexit_33(t, "G5", d.ENTRY_FAIL_VMCS_LINK_PTR)


def test_guest_perf_global_ctrl_clean_value_passes_and_prepare_vmcs02_loads_it():
    t = run({**GUEST_PERF, "vmcs12.guest_ia32_perf_global_ctrl": 0x3 | 1 << 33})
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.pmu.global_ctrl"] == 0x3 | 1 << 33
    # written in prepare_vmcs02(), after the CR3 load and before RSP/RIP
    k = t.index_of("vmx.prep.rsp_rip")
    assert t.steps[k].before["vcpu.arch.pmu.global_ctrl"] == 0xFF
    assert "vcpu.arch.pmu.global_ctrl" in t.steps[k].changed


def test_the_pmu_knob_moves_the_reserved_mask():
    fewer = {**GUEST_PERF, "cpu.pmu_gp_counters": 4, "vmcs12.guest_ia32_perf_global_ctrl": 1 << 4}
    assert_vmexit_33(run(fewer), "G5b")
    assert run({**fewer, "cpu.pmu_gp_counters": 5}).outcome == "l2_runs"
    no_fixed = {**HOST_PERF, "cpu.pmu_fixed_counters": 0, "vmcs12.host_ia32_perf_global_ctrl": 1 << 32}
    assert_vmfail_8(run(no_fixed), "H6b")
    assert run({**no_fixed, "cpu.pmu_fixed_counters": 1}).outcome == "l2_runs"


@SETTINGS
@given(value=U64, gp=st.integers(0, 8), fixed=st.integers(0, 4))
def test_any_reserved_perf_global_ctrl_bit_fails_any_clean_value_passes(value, gp, fixed):
    rsvd = x86.intel_global_ctrl_rsvd(gp, fixed)
    knobs = {"cpu.pmu_gp_counters": gp, "cpu.pmu_fixed_counters": fixed}
    host = run({**HOST_PERF, **knobs, "vmcs12.host_ia32_perf_global_ctrl": value})
    guest = run({**GUEST_PERF, **knobs, "vmcs12.guest_ia32_perf_global_ctrl": value})
    if value & rsvd:
        assert_vmfail_8(host, "H6b")
        assert_vmexit_33(guest, "G5b")
    else:
        assert host.outcome == guest.outcome == "l2_runs"
        assert guest.final["vcpu.arch.pmu.global_ctrl"] == value


@SETTINGS
@given(bit=st.integers(0, 63))
def test_with_the_default_vpmu_exactly_bits_7_0_and_34_32_may_be_set(bit):
    t = run({**GUEST_PERF, "vmcs12.guest_ia32_perf_global_ctrl": 1 << bit})
    allowed = bit < 8 or 32 <= bit < 35
    assert (t.outcome == "l2_runs") == allowed, (bit, t.outcome)


# --- 2. host CR0 bits 63:32 ------------------------------------------------------------------

def test_cr0_fixed1_is_the_low_32_bits():
    assert caps.CR0_FIXED1 == 0xFFFFFFFF


def test_host_cr0_bit_32_is_vmfail_8():
    assert_vmfail_8(run({"vmcs12.host_cr0": L1_CR0 | 1 << 32}), "H1")


def test_host_cr0_with_a_low_bit_added_passes():
    assert run({"vmcs12.host_cr0": L1_CR0 | x86.X86_CR0_TS}).outcome == "l2_runs"


@SETTINGS
@given(high=st.integers(1, (1 << 32) - 1))
def test_any_host_cr0_bit_above_31_is_vmfail_8(high):
    assert_vmfail_8(run({"vmcs12.host_cr0": L1_CR0 | high << 32}), "H1")


def test_guest_cr0_bits_63_32_fail_the_guest_state_check_too():
    # nested_guest_cr0_valid() uses the same cr0_fixed1
    assert_vmexit_33(run({"vmcs12.guest_cr0": BASE.get("vmcs12.guest_cr0") | 1 << 40}), "G1")


# --- 3. LA57 ---------------------------------------------------------------------------------

ADDR57 = 0x00FF_0000_0000_1000            # canonical at 57 bits, not at 48
NONCANON57 = 0x0100_0000_0000_1000        # bit 56 set, 63:57 clear: canonical at neither width
LA57_CPUID = {"cpu.features": BASE.get("cpu.features") | {"LA57"}}


def test_canonical_helpers():
    assert x86.is_canonical_address(ADDR57, 57) and not x86.is_canonical_address(ADDR57, 48)
    assert not x86.is_canonical_address(NONCANON57, 57)
    assert x86.canonical_address(0x0000_8000_0000_0000, 48) == 0xFFFF_8000_0000_0000
    assert x86.max_host_virt_addr_bits(True) == 57 and x86.max_host_virt_addr_bits(False) == 48


@pytest.mark.parametrize("field", ["host_fs_base", "host_gs_base", "host_gdtr_base", "host_idtr_base",
                                   "host_tr_base", "host_ia32_sysenter_esp", "host_ia32_sysenter_eip"])
def test_a_57_bit_host_address_fails_at_48_bits_and_passes_with_la57(field):
    check = "H5" if "sysenter" in field else "H9"
    assert_vmfail_8(run({f"vmcs12.{field}": ADDR57}), check)
    assert run({f"vmcs12.{field}": ADDR57, **LA57_CPUID}).outcome == "l2_runs"
    # the width is KVM's (max_host_virt_addr_bits()), not L1's CPUID or CR4
    assert run({f"vmcs12.{field}": ADDR57, "cpu.host_la57": True}).outcome == "l2_runs"
    assert_vmfail_8(run({f"vmcs12.{field}": NONCANON57, **LA57_CPUID}), check)


def test_host_rip_is_checked_at_the_width_host_cr4_gives_l1():
    rip = {"vmcs12.host_rip": ADDR57, **LA57_CPUID}
    assert_vmfail_8(run(rip), "H9")                                    # HOST_CR4.LA57 clear: 48 bits
    assert run({**rip, "vmcs12.host_cr4": L1_CR4 | x86.X86_CR4_LA57}).outcome == "l2_runs"


@SETTINGS
@given(addr=U64, la57=st.booleans())
def test_host_bases_pass_exactly_when_canonical_at_the_host_width(addr, la57):
    t = run({"vmcs12.host_gs_base": addr, "cpu.host_la57": la57})
    assert (t.outcome == "l2_runs") == x86.is_canonical_address(addr, 57 if la57 else 48)


# --- 4. the VM-entry MSR-load list -------------------------------------------------------------

def msr_list(entries, **fields):
    changes = {"vmcs12.vm_entry_msr_load_count": len(entries), "vmcs12.vm_entry_msr_load_addr": MSR_LOAD_GPA,
               **fields}
    return run(changes, msr_entries(MSR_LOAD_GPA, entries))


def assert_vmexit_34(t, index):
    assert t.outcome == "vmexit:34" and t.failure == "late", (t.outcome, t.failure)
    assert t.final["vmcs12.vm_exit_reason"] == d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_MSR_LOAD_FAIL
    assert t.final["vmcs12.exit_qualification"] == index          # i + 1
    assert "vmx.fail.leave_guest_mode" in t.step_ids and t.final["vcpu.rip"] == L1_HOST_RIP


def test_ia32_tsc_is_loaded_through_kvm_set_msr():
    t = msr_list([(d.MSR_IA32_TSC, 0x5000)], **{"cpu.host_tsc": 0x1000})
    f = t.final
    assert t.outcome == "l2_runs"
    # kvm_set_msr_common(MSR_IA32_TSC): L1's offset = value - rdtsc(); no vmcs12 TSC offsetting here
    assert f["vcpu.arch.l1_tsc_offset"] == 0x4000 == f["vcpu.arch.tsc_offset"] == f["vmcs02.tsc_offset"]
    assert f["vcpu.arch.ia32_tsc_adjust_msr"] == 0x4000


def test_ia32_tsc_in_guest_mode_keeps_l2s_offset_on_top():
    t = msr_list([(d.MSR_IA32_TSC, 0x5000)], **{
        "cpu.host_tsc": 0x1000, "vmcs12.tsc_offset": 0x100,
        "vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_USE_TSC_OFFSETTING})
    assert t.outcome == "l2_runs"
    assert t.final["vcpu.arch.l1_tsc_offset"] == 0x4000 and t.final["vcpu.arch.tsc_offset"] == 0x4100


def test_a_valid_pat_is_loaded_an_invalid_one_is_exit_34_at_its_index():
    good = 0x0007040600070406 ^ 0x01     # UC -> WC in byte 0: still a valid PAT
    t = msr_list([(d.MSR_IA32_TSC, 0x5000), (d.MSR_IA32_CR_PAT, good)])
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.pat"] == good
    bad = msr_list([(d.MSR_IA32_TSC, 0x5000), (d.MSR_IA32_CR_PAT, 0x2)])
    assert_vmexit_34(bad, 2)
    # entry 1 stayed written: L1's TSC was set, the unwind only took vmcs12's offset off
    assert bad.final["vcpu.arch.l1_tsc_offset"] == 0x5000 == bad.final["vcpu.arch.tsc_offset"]


def test_a_pat_write_in_l2_reaches_vmcs12_with_save_ia32_pat():
    pat = 0x0606060606060606
    t = msr_list([(d.MSR_IA32_CR_PAT, pat)], **{"vmcs12.vm_exit_controls": EXIT | d.VM_EXIT_SAVE_IA32_PAT})
    assert t.outcome == "l2_runs" and t.final["vmcs12.guest_ia32_pat"] == pat


@pytest.mark.parametrize("index", [d.MSR_FS_BASE, d.MSR_GS_BASE, d.MSR_IA32_SMM_MONITOR_CTL,
                                   d.MSR_IA32_UCODE_WRITE, d.MSR_IA32_UCODE_REV])
def test_nested_vmx_load_msr_check_refuses_these(index):
    t = msr_list([(d.MSR_LSTAR, 0x1234), (index, 0)])
    assert_vmexit_34(t, 2)
    assert "nested_vmx_load_msr_check()" in " ".join(t.steps[t.index_of("vmx.enter.load_msr")].notes)


def test_x2apic_msrs_are_refused_in_x2apic_mode_and_fail_to_write_outside_it():
    x2apic = {"l1.apic_base": BASE.get("l1.apic_base") | d.X2APIC_ENABLE}
    refused = msr_list([(0x808, 0)], **x2apic)
    assert_vmexit_34(refused, 1)
    assert "x2APIC mode" in " ".join(refused.steps[refused.index_of("vmx.enter.load_msr")].notes)
    assert_vmexit_34(msr_list([(0x808, 0)]), 1)
    # 0x8ff is in the range, 0x900 is not (e->index >> 8 == 0x8)
    assert_vmexit_34(msr_list([(0x8FF, 0)], **x2apic), 1)


def test_a_reserved_word_in_an_entry_is_refused():
    assert_vmexit_34(msr_list([(d.MSR_STAR, 0, 1)]), 1)
    assert msr_list([(d.MSR_STAR, 0, 0)]).outcome == "l2_runs"


def test_canonical_msrs_fail_exactly_where_kvm_set_msr_fails():
    assert_vmexit_34(msr_list([(d.MSR_LSTAR, 0x0000_8000_0000_0000)]), 1)
    t = msr_list([(d.MSR_LSTAR, 0xFFFF_8000_0000_0000)])
    assert t.outcome == "l2_runs" and t.final[f"vcpu.msr.{d.MSR_LSTAR:#x}"] == 0xFFFF_8000_0000_0000
    assert msr_list([(d.MSR_LSTAR, ADDR57)], **{"cpu.host_la57": True}).outcome == "l2_runs"


def test_sysenter_esp_is_made_canonical_and_reaches_vmcs12():
    t = msr_list([(d.MSR_IA32_SYSENTER_ESP, 0x0000_8000_0000_0000)])
    assert t.outcome == "l2_runs"
    assert t.final[f"vcpu.msr.{d.MSR_IA32_SYSENTER_ESP:#x}"] == 0xFFFF_8000_0000_0000
    assert t.final["vmcs12.guest_sysenter_esp"] == 0xFFFF_8000_0000_0000


def test_tsc_aux_needs_rdtscp_or_rdpid_and_bits_63_32_clear():
    assert msr_list([(d.MSR_TSC_AUX, 7)]).outcome == "l2_runs"
    assert_vmexit_34(msr_list([(d.MSR_TSC_AUX, 1 << 32)]), 1)
    no_rdtscp = {"cpu.features": BASE.get("cpu.features") - {"RDTSCP"}}
    assert_vmexit_34(msr_list([(d.MSR_TSC_AUX, 7)], **no_rdtscp), 1)
    assert msr_list([(d.MSR_TSC_AUX, 7)], **{"cpu.features": no_rdtscp["cpu.features"] | {"RDPID"}}
                    ).outcome == "l2_runs"


def test_perf_global_ctrl_through_the_list_uses_the_same_mask():
    assert_vmexit_34(msr_list([(d.MSR_CORE_PERF_GLOBAL_CTRL, 1 << 8)]), 1)
    t = msr_list([(d.MSR_CORE_PERF_GLOBAL_CTRL, 0x1 | 1 << 32)])
    assert t.outcome == "l2_runs" and t.final["vcpu.arch.pmu.global_ctrl"] == 0x1 | 1 << 32


def test_an_msr_the_model_does_not_emulate_fails_to_write():
    assert_vmexit_34(msr_list([(d.MSR_STAR, 1), (0x1234, 0)]), 2)


@SETTINGS
@given(pat=U64)
def test_any_pat_loads_exactly_when_kvm_pat_valid(pat):
    t = msr_list([(d.MSR_IA32_CR_PAT, pat)])
    if x86.pat_valid(pat):
        assert t.outcome == "l2_runs" and t.final["vcpu.arch.pat"] == pat
    else:
        assert_vmexit_34(t, 1)


# --- 5. BNDCFGS and CET state ----------------------------------------------------------------

BNDCFGS = {"vmcs12.vm_entry_controls": ENTRY | d.VM_ENTRY_LOAD_BNDCFGS}


@pytest.mark.parametrize("bndcfgs", [0x4, 0x800, 0x0000_8000_0000_0001])
def test_guest_bndcfgs_reserved_or_noncanonical_is_vm_exit_33(bndcfgs):
    assert_vmexit_33(run({**BNDCFGS, "vmcs12.guest_bndcfgs": bndcfgs}), "G8b")


def test_guest_bndcfgs_neighbours_pass():
    for ok in (0x7000 | 0x3, 0xFFFF_8000_0000_1003):
        assert run({**BNDCFGS, "vmcs12.guest_bndcfgs": ok}).outcome == "l2_runs"
    # the base is checked at the host's width, and not without LOAD_BNDCFGS
    assert run({**BNDCFGS, "vmcs12.guest_bndcfgs": 0x0000_8000_0000_0001, "cpu.host_la57": True}
               ).outcome == "l2_runs"
    assert run({"vmcs12.guest_bndcfgs": 0xFFC}).outcome == "l2_runs"


@SETTINGS
@given(bndcfgs=U64)
def test_guest_bndcfgs_property(bndcfgs):
    t = run({**BNDCFGS, "vmcs12.guest_bndcfgs": bndcfgs})
    ok = not bndcfgs & d.MSR_IA32_BNDCFGS_RSVD and x86.is_canonical_address(bndcfgs & x86.PAGE_MASK, 48)
    assert (t.outcome == "l2_runs") == ok


def test_the_cet_load_controls_are_offered():
    assert caps.EXIT_HIGH & d.VM_EXIT_LOAD_CET_STATE and caps.ENTRY_HIGH & d.VM_ENTRY_LOAD_CET_STATE
    t = run({"vmcs12.vm_exit_controls": EXIT | d.VM_EXIT_LOAD_CET_STATE,
             "vmcs12.vm_entry_controls": ENTRY | d.VM_ENTRY_LOAD_CET_STATE})
    assert t.outcome == "l2_runs"


HOST_CET = {"vmcs12.vm_exit_controls": EXIT | d.VM_EXIT_LOAD_CET_STATE}
GUEST_CET = {"vmcs12.vm_entry_controls": ENTRY | d.VM_ENTRY_LOAD_CET_STATE}
CET_CPUID = {"cpu.features": BASE.get("cpu.features") | {"SHSTK", "IBT"}}


@pytest.mark.parametrize("bad,good", [
    ({"vmcs12.host_ssp": 0x1002}, {"vmcs12.host_ssp": 0x1004}),                     # IS_ALIGNED(ssp, 4)
    ({"vmcs12.host_ssp_tbl": 0x0000_8000_0000_0000}, {"vmcs12.host_ssp_tbl": 0xFFFF_8000_0000_0000}),
    ({"vmcs12.host_s_cet": 1 << 6}, {"vmcs12.host_s_cet": x86.CET_ENDBR_EN}),       # CET_US_RESERVED_BITS
    ({"vmcs12.host_s_cet": x86.CET_SUPPRESS | x86.CET_WAIT_ENDBR}, {"vmcs12.host_s_cet": x86.CET_SUPPRESS}),
    ({"vmcs12.host_s_cet": 1 << 12}, {"vmcs12.host_s_cet": 1 << 14}),                # legacy bitmap base
    ({"vmcs12.host_ssp": 0x0000_8000_0000_0000}, {"vmcs12.host_ssp": 0xFFFF_8000_0000_0000}),  # 64-bit host
])
def test_host_cet_state_fails_as_kvm_and_its_neighbour_passes(bad, good):
    assert_vmfail_8(run({**HOST_CET, **CET_CPUID, **bad}), "H11")
    assert run({**HOST_CET, **CET_CPUID, **good}).outcome == "l2_runs"


def test_host_s_cet_bits_need_the_cpuid_features():
    shstk = {**HOST_CET, "vmcs12.host_s_cet": x86.CET_SHSTK_EN}
    assert_vmfail_8(run(shstk), "H11")
    assert run({**shstk, "cpu.features": BASE.get("cpu.features") | {"SHSTK"}}).outcome == "l2_runs"
    ibt = {**HOST_CET, "vmcs12.host_s_cet": x86.CET_ENDBR_EN}
    assert_vmfail_8(run({**ibt, "cpu.features": BASE.get("cpu.features") | {"SHSTK"}}), "H11")
    assert run({**ibt, "cpu.features": BASE.get("cpu.features") | {"IBT"}}).outcome == "l2_runs"


def test_host_cet_without_the_exit_control_is_not_checked():
    assert run({"vmcs12.host_ssp": 3, "vmcs12.host_s_cet": 1 << 6}).outcome == "l2_runs"


def test_a_32_bit_host_needs_s_cet_and_ssp_bits_63_32_clear():
    """The !ia32e branch, straight on the check list (a 32-bit L1 host)."""
    v = dict(BASE.values)
    v.update({"vmcs12.vm_exit_controls": caps.EXIT_LOW | d.VM_EXIT_LOAD_CET_STATE,
              "vmcs12.vm_entry_controls": caps.ENTRY_LOW, "vmcs12.host_ssp": 1 << 32})
    env = Env(48, frozenset(CET_CPUID["cpu.features"]), 0, True, True, True, True)
    assert first_failure(HOST_CHECKS, reader(v), env).id == "H11"
    v["vmcs12.host_ssp"] = 0xFFFF_FFFC
    assert first_failure(HOST_CHECKS, reader(v), env) is None


@pytest.mark.parametrize("bad,good", [
    ({"vmcs12.guest_ssp": 0x1001}, {"vmcs12.guest_ssp": 0x1000}),
    # bits 63:48 identical (max_host_virt_addr_bits() + 1 = 49), not canonical at 48
    ({"vmcs12.guest_ssp": 0x0001_0000_0000_0000}, {"vmcs12.guest_ssp": 0x0000_8000_0000_0000}),
    ({"vmcs12.guest_ssp_tbl": 0x0000_8000_0000_0000}, {"vmcs12.guest_ssp_tbl": 0x7FFF_F000}),
    ({"vmcs12.guest_s_cet": 1 << 9}, {"vmcs12.guest_s_cet": x86.CET_SHSTK_EN | x86.CET_ENDBR_EN}),
])
def test_guest_cet_state_fails_as_kvm_and_its_neighbour_passes(bad, good):
    assert_vmexit_33(run({**GUEST_CET, **CET_CPUID, **bad}), "G8c")
    assert run({**GUEST_CET, **CET_CPUID, **good}).outcome == "l2_runs"


def test_guest_cet_checks_come_after_bndcfgs_and_before_the_activity_state():
    both = {"vmcs12.vm_entry_controls": ENTRY | d.VM_ENTRY_LOAD_CET_STATE | d.VM_ENTRY_LOAD_BNDCFGS,
            "vmcs12.guest_bndcfgs": 0x4, "vmcs12.guest_ssp": 1}
    assert_vmexit_33(run(both), "G8b")
    assert_vmexit_33(run({**GUEST_CET, "vmcs12.guest_ssp": 1, "vmcs12.guest_activity_state": 5}), "G8c")
    ids = [c.id for c in GUEST_CHECKS]
    assert ids.index("G5") < ids.index("G5b") < ids.index("G6")
    assert ids.index("G8") < ids.index("G8b") < ids.index("G8c") < ids.index("G9")
    hids = [c.id for c in HOST_CHECKS]
    assert hids.index("H6") < hids.index("H6b") < hids.index("H7") and hids[-1] == "H11"


@SETTINGS
@given(ssp=U64, la57=st.booleans())
def test_guest_ssp_property(ssp, la57):
    t = run({**GUEST_CET, "vmcs12.guest_ssp": ssp, "cpu.host_la57": la57})
    ok = ssp % 4 == 0 and x86.is_canonical_address(ssp, (57 if la57 else 48) + 1)
    assert (t.outcome == "l2_runs") == ok


def test_every_new_check_quotes_its_kernel_condition():
    new = {"H1", "H5", "H6b", "H9", "H11", "G5b", "G8b", "G8c"}
    cited = {c.id: c.kernel for c in HOST_CHECKS + GUEST_CHECKS if c.id in new}
    assert set(cited) == new and all("nested_vmx_check_" in k for k in cited.values())
