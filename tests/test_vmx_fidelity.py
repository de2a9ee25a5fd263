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
6. Without unrestricted guest, prepare_vmcs02()'s vmx_guest_state_valid() ->
   __vmx_guest_state_valid() (arch/x86/kvm/vmx/vmx.c): cs_ss_rpl_check(), code_segment_valid(),
   stack_segment_valid(), data_segment_valid(), tr_valid(), ldtr_valid() (VM exit 33,
   qualification 0, after guest mode was entered).
7. The CPU's checks of vmcs02 KVM leaves to hardware and reflects (VM exit 33): segment bases
   (SDM 27.3.1.2) and GDTR/IDTR bases and limits (SDM 27.3.1.3).
8. The CPU's TPR-threshold check against the vTPR (SDM 27.2.1.1), which KVM makes only with
   warn_on_missed_cc: a late VMfail 7.
"""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nsvm_model as nm
from nsvm_model import x86
from nsvm_model.vmx import caps, defs as d
from nsvm_model.vmx.checks import GUEST_CHECKS, HOST_CHECKS, Env, first_failure, reader
from nsvm_model.vmx.scenarios import L1_CR0, L1_CR4, L1_HOST_RIP, MSR_LOAD_GPA, msr_entries
from kut_vmx import KUT_HOST

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

# A 48-bit host with kvm-unit-tests' CPUID (no LA57, CET or RDPID): each test adds what it needs.
BASE = nm.Scenario.vmx().with_fields(KUT_HOST)
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


# --- 6. __vmx_guest_state_valid(): KVM's own segment checks without unrestricted guest --------
# prepare_vmcs02(): if (CC(from_vmentry && !vmx_guest_state_valid(vcpu))) { *entry_failure_code =
# ENTRY_FAIL_DEFAULT; return -EINVAL; }: after enter_guest_mode(), so the late failure path.

from nsvm_model.vmx.scenarios import EPT_ON, L1_VMLAUNCH_RIP   # noqa: E402

NONCANONICAL = 0xAAAA_AAAA_AAAA_AAAA
URG_ON = {**EPT_ON, "vmcs12.secondary_vm_exec_control": d.SECONDARY_EXEC_ENABLE_EPT
          | d.SECONDARY_EXEC_UNRESTRICTED_GUEST}


def assert_guest_state_invalid(t, kernel_check):
    assert t.outcome == "vmexit:33" and t.failure == "late", (t.outcome, t.failure)
    f = t.final
    assert f["vmcs12.vm_exit_reason"] == d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE
    assert f["vmcs12.exit_qualification"] == d.ENTRY_FAIL_DEFAULT
    note = failing_check(t, "vmx.prep.guest_state_valid")
    assert f"{kernel_check} fails" in note, note
    # KVM's nested_vmx_check_guest_state() passed; the failure comes after enter_guest_mode()
    assert "vmx.enter.enter_guest_mode" in t.step_ids and "vmx.fail.leave_guest_mode" in t.step_ids
    assert f["vcpu.rip"] == L1_HOST_RIP and f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False


@pytest.mark.parametrize("bad,good,kernel_check", [
    # SS.RPL 3 against CS.RPL 0; both RPL 3 (and DPL 3) pass
    ({"vmcs12.guest_ss_selector": 0x13},
     {"vmcs12.guest_ss_selector": 0x13, "vmcs12.guest_ss_ar_bytes": 0xC0F3,
      "vmcs12.guest_cs_selector": 0x0B, "vmcs12.guest_cs_ar_bytes": 0xA0FB}, "cs_ss_rpl_check()"),
    # a conforming code segment may have DPL < RPL, not DPL > RPL; a nonconforming one DPL == RPL
    ({"vmcs12.guest_cs_ar_bytes": 0xA0BF}, {"vmcs12.guest_cs_ar_bytes": 0xA09F}, "code_segment_valid()"),
    ({"vmcs12.guest_cs_ar_bytes": 0xA0BB}, {"vmcs12.guest_cs_ar_bytes": 0xA09B}, "code_segment_valid()"),
    ({"vmcs12.guest_cs_ar_bytes": 0xA09A}, {"vmcs12.guest_cs_ar_bytes": 0xA09B}, "code_segment_valid()"),
    ({"vmcs12.guest_cs_ar_bytes": 0x1A09B}, {"vmcs12.guest_cs_ar_bytes": 0xA09B}, "code_segment_valid()"),
    # SS: type 3 or 7, DPL == RPL; an unusable SS is not checked
    ({"vmcs12.guest_ss_ar_bytes": 0xC091}, {"vmcs12.guest_ss_ar_bytes": 0xC097}, "stack_segment_valid()"),
    ({"vmcs12.guest_ss_ar_bytes": 0xC0B3}, {"vmcs12.guest_ss_ar_bytes": 0x1C0B3}, "stack_segment_valid()"),
    # DS: DPL >= RPL unless a conforming code segment; S must be 1
    ({"vmcs12.guest_ds_selector": 0x13},
     {"vmcs12.guest_ds_selector": 0x13, "vmcs12.guest_ds_ar_bytes": 0xC09F}, "data_segment_valid(DS)"),
    ({"vmcs12.guest_gs_ar_bytes": 0xC083}, {"vmcs12.guest_gs_ar_bytes": 0x1C083}, "data_segment_valid(GS)"),
    # TR: usable, TI clear, type 3 or 11
    ({"vmcs12.guest_tr_selector": 0x4C}, {"vmcs12.guest_tr_selector": 0x48}, "tr_valid()"),
    ({"vmcs12.guest_tr_ar_bytes": 0x89}, {"vmcs12.guest_tr_ar_bytes": 0x8B}, "tr_valid()"),
    ({"vmcs12.guest_tr_ar_bytes": 0x1008B}, {"vmcs12.guest_tr_ar_bytes": 0x8B}, "tr_valid()"),
    # LDTR: if usable, TI clear and type 2
    ({"vmcs12.guest_ldtr_ar_bytes": 0x83}, {"vmcs12.guest_ldtr_ar_bytes": 0x10083}, "ldtr_valid()"),
    ({"vmcs12.guest_ldtr_selector": 0x4}, {"vmcs12.guest_ldtr_selector": 0x8}, "ldtr_valid()"),
])
def test_vmx_guest_state_valid_fails_as_kvm_and_its_neighbour_passes(bad, good, kernel_check):
    assert_guest_state_invalid(run(bad), kernel_check)
    t = run(good)
    assert t.outcome == "l2_runs", (t.outcome, [s.notes for s in t.steps if s.label])


def test_the_protected_mode_checks_run_in_the_kernels_order():
    # a TR with TI set and an SS.RPL mismatch: cs_ss_rpl_check() comes first
    t = run({"vmcs12.guest_tr_selector": 0x4C, "vmcs12.guest_ss_selector": 0x13})
    assert_guest_state_invalid(t, "cs_ss_rpl_check()")
    t = run({"vmcs12.guest_tr_selector": 0x4C, "vmcs12.guest_ldtr_selector": 0x4})
    assert_guest_state_invalid(t, "tr_valid()")


def test_rflags_vm_takes_the_real_mode_checks():
    # is_protmode() but RFLAGS.VM: rmode_segment_valid() on CS first (base != selector << 4)
    t = run({"vmcs12.guest_rflags": x86.X86_EFLAGS_FIXED | x86.X86_EFLAGS_VM})
    assert_guest_state_invalid(t, "rmode_segment_valid(CS)")


def test_unrestricted_guest_skips_the_segment_checks():
    bad = {"vmcs12.guest_ss_selector": 0x13, "vmcs12.guest_tr_selector": 0x4C}
    t = run({**URG_ON, **bad})
    assert t.outcome == "l2_runs" and "vmx.prep.guest_state_valid" in t.step_ids
    assert run({**URG_ON, **bad, "cpu.unrestricted_guest": False}).outcome != "l2_runs"


@SETTINGS
@given(rpl=st.integers(0, 3), dpl=st.integers(0, 3), typ=st.integers(0, 15), s=st.booleans(),
       unusable=st.booleans())
def test_data_segment_valid_property(rpl, dpl, typ, s, unusable):
    ar = typ | s << 4 | dpl << 5 | 1 << 7 | 0xC000 | unusable << 16
    t = run({"vmcs12.guest_es_selector": 0x10 | rpl, "vmcs12.guest_es_ar_bytes": ar})
    ok = unusable or (s and not (~typ & 0xC and dpl < rpl))
    assert (t.outcome == "l2_runs") == bool(ok), (t.outcome, hex(ar), rpl)
    if not ok:
        assert_guest_state_invalid(t, "data_segment_valid(ES)")


# --- 7. The CPU's checks of guest segment bases and descriptor tables on vmcs02 ---------------
# SDM vol. 3C 27.3.1.2 and 27.3.1.3: KVM checks none of them; the CPU fails vmcs02 and
# nested_vmx_reflect_vmexit() reflects the failed VM entry (exit 33, qualification 0).

def assert_cpu_rejects(t, why):
    assert t.outcome == "vmexit:33", (t.outcome, [s.notes for s in t.steps if s.label])
    f = t.final
    assert f["vmcs12.vm_exit_reason"] == d.VMX_EXIT_REASONS_FAILED_VMENTRY | d.EXIT_REASON_INVALID_STATE
    assert f["vmcs12.exit_qualification"] == d.ENTRY_FAIL_DEFAULT
    note = failing_check(t, "vmx.l2.vcpu_run")
    assert "rejects vmcs02" in note and why in note, note
    assert "vmx.prep.guest_state_valid" in t.step_ids and f["vcpu.rip"] == L1_HOST_RIP


@pytest.mark.parametrize("bad,good,why", [
    ({"vmcs12.guest_tr_base": NONCANONICAL}, {"vmcs12.guest_tr_base": 0xFFFF_8000_0000_0000}, "TR base"),
    ({"vmcs12.guest_fs_base": 0x0000_8000_0000_0000}, {"vmcs12.guest_fs_base": 0x0000_7FFF_FFFF_FFFF}, "FS base"),
    ({"vmcs12.guest_gs_base": NONCANONICAL}, {"vmcs12.guest_gs_base": 0xFFFF_FFFF_FFFF_F000}, "GS base"),
    ({"vmcs12.guest_ldtr_base": NONCANONICAL},
     {"vmcs12.guest_ldtr_base": NONCANONICAL, "vmcs12.guest_ldtr_ar_bytes": 0x10082}, "LDTR whose base"),
    ({"vmcs12.guest_cs_base": 1 << 32}, {"vmcs12.guest_cs_base": 0xFFFF_FFFF}, "CS base bits 63:32"),
    ({"vmcs12.guest_ss_base": 1 << 60},
     {"vmcs12.guest_ss_base": 1 << 60, "vmcs12.guest_ss_ar_bytes": 0x1C093}, "SS base bits 63:32"),
    ({"vmcs12.guest_ds_base": 1 << 32},
     {"vmcs12.guest_ds_base": 1 << 32, "vmcs12.guest_ds_ar_bytes": 0x1C093}, "DS base bits 63:32"),
    ({"vmcs12.guest_es_base": 1 << 63},
     {"vmcs12.guest_es_base": 1 << 63, "vmcs12.guest_es_ar_bytes": 0x1C093}, "ES base bits 63:32"),
    ({"vmcs12.guest_gdtr_base": NONCANONICAL}, {"vmcs12.guest_gdtr_base": 0xFFFF_8000_0000_0000}, "GDTR base"),
    ({"vmcs12.guest_idtr_base": 0x0001_0000_0000_0000}, {"vmcs12.guest_idtr_base": 0}, "IDTR base"),
    ({"vmcs12.guest_gdtr_limit": 0x10000}, {"vmcs12.guest_gdtr_limit": 0xFFFF}, "GDTR limit bits 31:16"),
    ({"vmcs12.guest_idtr_limit": 0x8000_0FFF}, {"vmcs12.guest_idtr_limit": 0xFFFF}, "IDTR limit bits 31:16"),
])
def test_cpu_base_and_limit_checks_fail_as_the_sdm_says_and_neighbours_pass(bad, good, why):
    assert_cpu_rejects(run(bad), why)
    t = run(good)
    assert t.outcome == "l2_runs", (t.outcome, [s.notes for s in t.steps if s.label])


@SETTINGS
@given(base=U64, la57=st.booleans(), field=st.sampled_from(["tr", "fs", "gs", "ldtr", "gdtr", "idtr"]))
def test_canonical_bases_at_the_cpus_width_property(base, la57, field):
    """Canonical at the CPU's linear-address width: 57 bits on an LA57 host, else 48."""
    t = run({f"vmcs12.guest_{field}_base": base, "cpu.host_la57": la57})
    ok = x86.is_canonical_address(base, 57 if la57 else 48)
    assert (t.outcome == "l2_runs") == ok, (t.outcome, hex(base), la57)


@SETTINGS
@given(base=U64, seg=st.sampled_from(["cs", "ss", "ds", "es"]), unusable=st.booleans())
def test_upper_base_bits_property(base, seg, unusable):
    ar = BASE.get(f"vmcs12.guest_{seg}_ar_bytes") | (unusable << 16 if seg != "cs" else 0)
    t = run({f"vmcs12.guest_{seg}_base": base, f"vmcs12.guest_{seg}_ar_bytes": ar})
    ok = not base >> 32 or (unusable and seg != "cs")
    assert (t.outcome == "l2_runs") == ok, (t.outcome, hex(base), seg, unusable)


# --- 8. The CPU's TPR-threshold check against the vTPR (SDM 27.2.1.1): a late VMfail 7 -------
# nested_vmx_check_tpr_shadow_controls() compares the vTPR only with warn_on_missed_cc; the CPU
# VMfails vmcs02, and __nested_vmx_vmexit() with vm_fail ends in nested_vmx_fail(7).

VAPIC = 0x25000
TPR = {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW | d.CPU_BASED_TPR_SHADOW,
       "vmcs12.virtual_apic_page_addr": VAPIC}


def run_vtpr(threshold, vtpr, extra=None):
    return run({**TPR, "vmcs12.tpr_threshold": threshold, **(extra or {})}, {VAPIC + 0x80: vtpr})


def assert_late_vmfail_7(t):
    assert t.outcome == "vmfail_valid:7", (t.outcome, [s.notes for s in t.steps if s.label])
    f = t.final
    assert f["vmcs12.vm_instruction_error"] == d.VMXERR_ENTRY_INVALID_CONTROL_FIELD
    assert "vmx.late.vmfail" in t.step_ids and "vmx.run.check_controls" in t.step_ids
    assert "SDM 27.2.1.1" in failing_check(t, "vmx.l2.vcpu_run")
    assert f["vcpu.rip"] == L1_VMLAUNCH_RIP + d.VMLAUNCH_INSN_LEN and f["vcpu.arch.rflags"] & d.X86_EFLAGS_ZF
    assert f["vmx.current_vmcs"] == "vmcs01" and f["vcpu.guest_mode"] is False


def test_tpr_threshold_above_the_vtpr_class_is_a_late_vmfail_7():
    assert_late_vmfail_7(run_vtpr(5, 0x4F))
    assert run_vtpr(5, 0x50).outcome == "l2_runs"
    # only bits 7:4 of the byte at offset 0x80 count: bits 15:8 of the word are another byte
    assert_late_vmfail_7(run_vtpr(1, 0x100))


def test_virtual_apic_accesses_or_vid_turn_the_vtpr_check_off():
    vapic = {"vmcs12.cpu_based_vm_exec_control": TPR["vmcs12.cpu_based_vm_exec_control"]
             | d.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
             "vmcs12.secondary_vm_exec_control": d.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES,
             "vmcs12.apic_access_addr": 0x24000}
    assert run_vtpr(5, 0x4F, vapic).outcome == "l2_runs"
    # the secondary control counts only with ACTIVATE_SECONDARY_CONTROLS
    assert_late_vmfail_7(run_vtpr(5, 0x4F, {**vapic, "vmcs12.cpu_based_vm_exec_control":
                                             TPR["vmcs12.cpu_based_vm_exec_control"]}))
    # without the TPR shadow there is no vTPR to compare
    assert run_vtpr(5, 0x4F, {"vmcs12.cpu_based_vm_exec_control": caps.PROCBASED_LOW}).outcome == "l2_runs"


@SETTINGS
@given(threshold=st.integers(0, 15), vtpr=st.integers(0, 255))
def test_vtpr_property(threshold, vtpr):
    t = run_vtpr(threshold, vtpr)
    if threshold > vtpr >> 4:
        assert_late_vmfail_7(t)
    else:
        assert t.outcome == "l2_runs"


# --- 9. What the host offers: enable_apicv, MPX, CET (nested_vmx_setup_*_ctls()) ----------------

@pytest.mark.parametrize("knob, field, bit", [
    ("cpu.apicv", "pin_based_vm_exec_control", d.PIN_BASED_POSTED_INTR),
    ("cpu.mpx", "vm_entry_controls", d.VM_ENTRY_LOAD_BNDCFGS),
    ("cpu.mpx", "vm_exit_controls", d.VM_EXIT_CLEAR_BNDCFGS),
    ("cpu.cet", "vm_entry_controls", d.VM_ENTRY_LOAD_CET_STATE),
    ("cpu.cet", "vm_exit_controls", d.VM_EXIT_LOAD_CET_STATE),
])
def test_a_control_the_host_does_not_offer_is_vmfail_7(knob, field, bit):
    control = BASE.get(f"vmcs12.{field}") | bit
    offered = run({f"vmcs12.{field}": control})
    refused = run({f"vmcs12.{field}": control, knob: False})
    assert refused.outcome == "vmfail_valid:7"
    check = failing_check(refused, "vmx.run.check_controls").split()[0]
    assert check == {"pin_based_vm_exec_control": "X1", "vm_exit_controls": "X18", "vm_entry_controls": "X20"}[field]
    # with the knob on, that allowed-settings check passes (another rule may still refuse the value)
    assert not failing_check(offered, "vmx.run.check_controls").startswith(f"{check} fails")
    # without the control, the knob changes nothing
    assert run({knob: False}).outcome == run().outcome


def test_the_default_host_is_modern():
    sc = nm.Scenario.vmx()
    assert sc.get("cpu.features") == frozenset(caps.FEATURES)
    assert sc.get("cpu.host_la57") and sc.get("cpu.apicv") and sc.get("cpu.mpx") and sc.get("cpu.cet")
    # LA57 at the host: a 57-bit canonical host base passes by default
    assert nm.run(sc.with_fields({"vmcs12.host_fs_base": 0xFF00000000000000})).outcome == "l2_runs"
