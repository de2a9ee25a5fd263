"""nSVM beside nVMX, phase by phase."""

import pytest

import nsvm_model as nm


def rows_as_ids(al):
    out = {}
    for r in al.rows:
        out[r.phase] = ([al.svm.steps[i].id for i in r.svm_steps], [al.vmx.steps[i].id for i in r.vmx_steps])
    return out


def test_default_successful_runs_align():
    al = nm.align(nm.run(nm.Scenario.svm()), nm.run(nm.Scenario.vmx()))
    rows = rows_as_ids(al)
    assert [r.phase for r in al.rows] == [f"P{i}" for i in range(1, 16)]
    assert rows["P1"] == (["svm.vmrun.check_permissions", "svm.vmrun.check_hsave", "svm.vmrun.check_smm",
                           "svm.vmrun.check_rax"], ["vmx.run.check_permission"])
    assert rows["P2"] == (["svm.vmrun.map_vmcb12", "svm.vmrun.copy_control_to_cache",
                           "svm.vmrun.copy_save_to_cache"], ["vmx.run.check_current_vmcs"])
    assert rows["P3"] == (["svm.vmrun.check_controls"],
                          ["vmx.run.check_mov_ss", "vmx.run.check_launch_state", "vmx.run.check_controls"])
    assert rows["P4"] == ([], ["vmx.run.check_host_state"])
    assert rows["P5"] == (["svm.vmrun.check_save"], ["vmx.enter.check_guest_state"])
    assert rows["P7"] == (["svm.enter.set_vmcb12_gpa", "svm.enter.copy_common_state", "svm.enter.switch_vmcb02"],
                          ["vmx.enter.switch_vmcs02"])
    assert rows["P8"] == (["svm.enter.enter_guest_mode"], ["vmx.enter.enter_guest_mode"])
    assert rows["P11"] == (["svm.enter.tlb_flush", "svm.enter.init_mmu_context"],
                           ["vmx.prep.tlb_flush", "vmx.prep.ept_init_mmu_context"])
    assert rows["P12"] == ([f"svm.enter.load_cr3.{n}" for n in ("check_legal", "pdptrs", "set_cr3",
                                                                "init_mmu", "new_pgd")],
                           [f"vmx.prep.load_cr3.{n}" for n in ("check_legal", "pdptrs", "set_cr3",
                                                               "init_mmu", "new_pgd")] + ["vmx.prep.guest_cr3"])
    assert rows["P13"] == (["svm.vmrun.merge_msrpm"], ["vmx.enter.get_vmcs12_pages", "vmx.enter.load_msr"])
    assert rows["P14"] == (["svm.enter.set_gif"], [])
    assert not any(r.svm_failed_here or r.vmx_failed_here for r in al.rows)


def test_vmfail_7_beside_asid_zero():
    svm = nm.run(nm.Scenario.svm().with_fields({"vmcb12.control.asid": 0}))
    vmx = nm.run(nm.Scenario.preset("vmx", "vpid_zero"))
    al = nm.align(svm, vmx)
    rows = rows_as_ids(al)
    p3 = al.row("P3")
    assert p3.svm_failed_here and p3.vmx_failed_here
    assert "VMEXIT_INVALID" in p3.svm_failure_mode and "VMfailValid 7" in p3.vmx_failure_mode
    assert rows["P3"] == (["svm.vmrun.check_controls", "svm.vmrun.vmcb12_exit_invalid"],
                          ["vmx.run.check_mov_ss", "vmx.run.check_launch_state", "vmx.run.check_controls",
                           "vmx.run.vmfail"])
    assert rows["P14"] == (["svm.vmrun.early_clear_gif"], [])
    assert rows["P7"] == ([], []) and rows["P8"] == ([], [])      # neither side switched or entered
    assert [r.phase for r in al.rows if r.svm_failed_here or r.vmx_failed_here] == ["P3"]


def test_partner_moves_to_the_matching_phase():
    svm, vmx = nm.run(nm.Scenario.svm()), nm.run(nm.Scenario.vmx())
    al = nm.align(svm, vmx)
    i = svm.index_of("svm.enter.load_cr3.set_cr3")
    j = al.partner("svm", i)
    assert vmx.steps[j].phase == "P12"
    assert al.partner("vmx", vmx.index_of("vmx.enter.enter_guest_mode")) == svm.index_of("svm.enter.enter_guest_mode")
    # SVM has no host-state check: the partner is the last SVM step before P4
    assert svm.steps[al.partner("vmx", vmx.index_of("vmx.run.check_host_state"))].phase in ("P3", "P2")


def test_align_checks_its_arguments():
    with pytest.raises(ValueError, match="svm_trace must be a trace of svm"):
        nm.align(nm.run(nm.Scenario.vmx()), nm.run(nm.Scenario.svm()))
