"""The engine's promises: declared access, exact replay, immutability, bad input."""

import pytest

import nsvm_model as nm
from nsvm_model.engine.step import Ctx, Step, UndeclaredAccess
from nsvm_model.engine.trace import Flow

PRESETS = [(isa, name) for isa in ("svm", "vmx") for name in nm.Scenario.presets(isa)]


@pytest.fixture(scope="module")
def traces():
    return {f"{isa}:{name}": nm.run(nm.Scenario.preset(isa, name)) for isa, name in PRESETS}


def _covered(path, declared, state):
    for d in declared:
        d = d.replace("svm->vmcb", state.get("svm.current_vmcb", "-"))
        d = d.replace("vmx->loaded_vmcs", state.get("vmx.current_vmcs", "-"))
        if d == path or (d.endswith(".*") and path.startswith(d[:-1])):
            return True
    return False


DERIVED = {"vcpu.gif", "svm.gif_location"}


def test_no_step_writes_what_it_did_not_declare(traces):
    for name, t in traces.items():
        for s in t.steps:
            for path in s.written:
                if path in DERIVED:
                    continue
                assert _covered(path, s.writes, s.before), f"{name}: {s.id} wrote {path}"


def test_no_step_reads_what_it_did_not_declare(traces):
    for t in traces.values():
        for s in t.steps:
            for path in s.read:
                if path.startswith("guest_memory["):
                    assert "guest_memory" in s.reads
                else:
                    assert _covered(path, s.reads + s.writes, s.before), f"{s.id} read {path}"


def test_an_undeclared_write_is_caught():
    def sneaky(ctx):
        ctx.set("vcpu.guest_mode", True)
    step = Step("test.sneaky", "nothing", "x.c", "P1", (), (), "", sneaky)
    state = dict(nm.run(nm.Scenario.svm()).initial)
    with pytest.raises(UndeclaredAccess, match="vcpu.guest_mode"):
        sneaky(Ctx(state, step, {}, None))


def test_an_undeclared_read_is_caught():
    def nosy(ctx):
        return ctx.get("vmcb12.control.asid")
    step = Step("test.nosy", "nothing", "x.c", "P1", (), (), "", nosy)
    with pytest.raises(UndeclaredAccess, match="vmcb12.control.asid"):
        nosy(Ctx(dict(nm.run(nm.Scenario.svm()).initial), step, {}, None))


def test_diff_is_exactly_the_change_between_snapshots(traces):
    for t in traces.values():
        prev = t.initial
        for s in t.steps:
            changed = {p for p in s.state if s.state[p] != prev[p]}
            assert changed == set(s.changed), s.id
            assert set(s.changed) <= set(s.written), s.id
            prev = s.state


def test_written_counts_a_write_of_the_same_value():
    """VMRUN saves L1's EFER, CR0, CR4, RFLAGS and RIP into vmcb01 even where vmcb01 already held them."""
    t = nm.run(nm.Scenario.svm())
    save = t.steps[t.index_of("svm.vmrun.save_l1_state")]
    saved = {p for p in save.written if p.startswith("vmcb01.save.")}
    assert {"vmcb01.save.efer", "vmcb01.save.cr0", "vmcb01.save.cr4", "vmcb01.save.rflags",
            "vmcb01.save.rip"} <= saved
    assert len(save.changed) < len(saved)


def test_snapshots_are_immutable(traces):
    t = traces["svm:default"]
    with pytest.raises(TypeError):
        t.final["vcpu.guest_mode"] = False
    with pytest.raises(TypeError):
        t.initial["vcpu.rip"] = 0


@pytest.mark.parametrize("isa", ["svm", "vmx"])
def test_every_step_cites_the_pinned_commit(isa):
    for s in nm.steps(isa).values():
        assert nm.KERNEL_COMMIT in s.source and s.function in s.source
        assert s.phase in {f"P{i}" for i in range(1, 16)}
        assert s.reason and s.title


def test_replay_from_every_step_is_exact(traces):
    for t in (traces["svm:round_trip"], traces["svm:msrpm_unbacked"], traces["svm:asid_zero"],
              traces["vmx:round_trip"], traces["vmx:msr_load_fs_base"], traces["vmx:vpid_zero"]):
        for i in range(len(t.steps)):
            r = t.replay_from(i)
            assert r.step_ids == t.step_ids
            assert [dict(s.state) for s in r.steps] == [dict(s.state) for s in t.steps]
            assert r.outcome == t.outcome


def test_unknown_path_gets_a_suggestion_and_scenario_is_unchanged():
    sc = nm.Scenario.svm()
    before = dict(sc.values)
    with pytest.raises(ValueError, match=r"vmcb12.control.asid"):
        sc.with_fields({"vmcb12.control.asidd": 1})
    assert dict(sc.values) == before


@pytest.mark.parametrize("changes,exc,pattern", [
    ({"vmcb12.control.asid": 1 << 32}, ValueError, r"vmcb12.control.asid.*32 bits"),
    ({"vmcb12.control.asid": "one"}, ValueError, r"vmcb12.control.asid"),
    ({"vmcb12.control.asid": 1.5}, TypeError, r"vmcb12.control.asid"),
    ({"vmcb12.control.asid": True}, TypeError, r"vmcb12.control.asid"),
    ({"cpu.npt": 7}, ValueError, r"cpu.npt"),
    ({"l2.exit": "VMCALL"}, ValueError, r"l2.exit.*VMMCALL"),
    ({"vmcb12.control.intercepts": {"VMRUNN"}}, ValueError, r"did you mean VMRUN"),
    ({"vmcb12.save.efer": "EFER_SVMEE"}, ValueError, r"EFER_SVME"),
    ({"vmcb12.save.efer": "__import__('os')"}, ValueError, r"vmcb12.save.efer"),
])
def test_bad_values_name_the_field(changes, exc, pattern):
    sc = nm.Scenario.svm()
    with pytest.raises(exc, match=pattern):
        sc.with_fields(changes)
    assert sc == nm.Scenario.svm()


def test_values_may_be_written_as_flags_and_hex():
    sc = nm.Scenario.svm().with_fields({"vmcb12.save.efer": "EFER_SVME|EFER_LME|EFER_LMA",
                                        "vmcb12.control.asid": "0x10", "l1.rax": -1,
                                        "vmcb12.control.intercepts": "INTERCEPT_VMRUN|VMMCALL"})
    assert sc.get("vmcb12.save.efer") == 0x1500
    assert sc.get("vmcb12.control.asid") == 16
    assert sc.get("l1.rax") == (1 << 64) - 1
    assert sc.get("vmcb12.control.intercepts") == frozenset({"VMRUN", "VMMCALL"})


def test_unknown_variant_and_isa():
    with pytest.raises(ValueError, match="upstream"):
        nm.run(nm.Scenario.svm(), variant="upstreem")
    with pytest.raises(ValueError, match="svm, vmx"):
        nm.variants("arm")
    with pytest.raises(ValueError, match="l2_mode"):
        nm.Scenario.svm(l2_mode="64bit")


def test_memory_writes_are_checked():
    sc = nm.Scenario.svm()
    with pytest.raises(ValueError, match="aligned"):
        sc.with_memory({0x3001: 1})
    with pytest.raises(ValueError, match="no memory"):
        sc.with_memory({1 << 40: 1})
    with pytest.raises(ValueError, match="8 bytes"):
        sc.with_memory({0x3000: 1 << 64})


def test_a_call_cycle_is_refused_when_built():
    with pytest.raises(ValueError, match=r"cycle \(main -> main\)"):
        Flow("loop", "svm", {"main": ("svm.vmrun.check_smm", "call:main")}, {})


def test_a_looping_user_flow_stops():
    """A goto back to the start records a step each round, so MAX_STEPS ends it."""
    loop = Flow("loop", "svm", {"main": ("svm.vmrun.check_smm", "svm.l2.vcpu_run")},
                {"svm.l2.vcpu_run:running": "main"})
    t = nm.machine_for("svm").run(nm.Scenario.svm(), loop)
    assert t.outcome == "incomplete" and len(t.steps) == 400


def test_api_contract_fields():
    t = nm.run(nm.Scenario.svm())
    s = t.steps[5]
    for attr in ("id", "function", "source", "phase", "reads", "writes", "diff"):
        assert getattr(s, attr) is not None
    for path in ("svm.current_vmcb", "vcpu.guest_mode", "vcpu.gif", "vcpu.arch.cr3",
                 "vcpu.arch.mmu", "vcpu.rip", "vmcb12.control.exit_code"):
        assert path in t.final
    assert nm.variants("svm")[0] == "upstream"
