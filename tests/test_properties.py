"""Properties over random inputs (hypothesis)."""

from hypothesis import HealthCheck, given, settings, strategies as st

import nsvm_model as nm

SC = nm.Scenario.svm()
INT_FIELDS = sorted(p for p, f in SC.fields.items() if f.kind == "int")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70),
                   st.sampled_from([0, 1, -1, 1 << 63, (1 << 64) - 1, 0x1000, 1 << 52]),
                   st.text(max_size=12), st.booleans(), st.none(), st.floats(allow_nan=False))


def run_or_raise(base, changes):
    """Apply random changes: a documented error naming the field, or a trace that breaks nothing."""
    try:
        sc = base.with_fields(changes)
    except (ValueError, TypeError) as exc:
        assert any(p in str(exc) for p in changes), str(exc)   # the message names the field
        return None
    t = nm.run(sc)
    assert t.invariant_violations() == []
    return t


@SETTINGS
@given(st.dictionaries(st.sampled_from(INT_FIELDS), values, min_size=1, max_size=4))
def test_random_fields_run_or_raise_documented_errors(changes):
    t = run_or_raise(SC, changes)
    if t:
        assert t.outcome in {"l2_runs", "vmexit_invalid", "l1_gp", "l1_ud", "userspace_exit", "shutdown"}


masked = st.integers(min_value=0, max_value=(1 << 64) - 1)


@SETTINGS
@given(efer=masked, cr0=masked, cr4=masked, asid=st.integers(0, 3), npt=st.booleans(),
       mode=st.sampled_from(["long", "pae", "32bit"]), exit=st.sampled_from(["none", "VMMCALL"]))
def test_runs_are_deterministic_and_replay_exactly(efer, cr0, cr4, asid, npt, mode, exit):
    sc = nm.Scenario.svm(mode).with_fields({
        "vmcb12.save.efer": efer & 0x1FFFF, "vmcb12.save.cr0": cr0 & 0xE005003F,
        "vmcb12.save.cr4": cr4 & 0x3FFFFF, "vmcb12.control.asid": asid,
        "vmcb12.control.misc_ctl": int(npt), "l2.exit": exit})
    a, b = nm.run(sc), nm.run(sc)
    assert a.step_ids == b.step_ids and a.outcome == b.outcome
    assert [s.diff for s in a.steps] == [s.diff for s in b.steps]
    i = len(a.steps) // 2
    r = a.replay_from(i)
    assert [dict(s.state) for s in r.steps] == [dict(s.state) for s in a.steps]
    assert a.invariant_violations() == []


VMX = nm.Scenario.vmx()
VMX_INT_FIELDS = sorted(p for p, f in VMX.fields.items() if f.kind == "int")


@SETTINGS
@given(st.dictionaries(st.sampled_from(VMX_INT_FIELDS), values, min_size=1, max_size=4))
def test_random_vmcs12_fields_run_or_raise_documented_errors(changes):
    t = run_or_raise(VMX, changes)
    if not t:
        return
    assert t.outcome in {"l2_runs", "vmfail_invalid", "l1_gp", "l1_ud", "userspace_exit", "shutdown"} \
        or t.outcome.startswith(("vmfail_valid:", "vmexit:"))
    r = t.replay_from(len(t.steps) // 2)
    assert [dict(s.state) for s in r.steps] == [dict(s.state) for s in t.steps]
