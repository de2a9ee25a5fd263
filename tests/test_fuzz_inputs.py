"""Fuzzing every way in (hypothesis): fields of every kind, the memory writer, variants, moves.

Whatever comes in, the model either accepts it or raises ValueError/TypeError with a
message under 500 characters that names what was wrong; the scenario it was called on
is unchanged, and each call takes less than a second (the hypothesis deadline).
"""

import string
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, given, settings, strategies as st

import nsvm_model as nm

SETTINGS = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
SCENARIOS = {isa: nm.Scenario.preset(isa, "default") for isa in ("svm", "vmx")}
FIELDS = [(isa, path) for isa, sc in SCENARIOS.items() for path in sorted(sc.fields)]
CONSTANT_NAMES = sorted(nm.machine_for("svm").constants)[:60] + sorted(nm.machine_for("vmx").constants)[:60]
MOVABLE = {isa: sorted(nm.steps(isa)) + sorted({e for f in nm.machine_for(isa).flows.values()
                                                  for seq in f.sequences.values() for e in seq
                                                  if e.startswith("call:")})
           for isa in ("svm", "vmx")}

big_ints = st.one_of(st.integers(), st.integers(min_value=-(1 << 200), max_value=1 << 200),
                     st.sampled_from([0, 1, -1, 1 << 63, (1 << 64) - 1, 1 << 64, 1 << 4096, -(1 << 100)]))
expression = st.recursive(
    st.one_of(st.integers(0, 1 << 70).map(hex), st.integers(0, 1 << 20).map(str), st.sampled_from(CONSTANT_NAMES)),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["|", "&", "^", "<<", ">>", "+", "-", "*", "**", "/"]), inner)
        .map(" ".join),
        inner.map(lambda e: f"~{e}"), inner.map(lambda e: f"({e})")),
    max_leaves=12)
texts = st.one_of(expression, st.text(max_size=40), st.text(alphabet=string.printable, max_size=300),
                  st.sampled_from(["true", "no", "yes", "ON", "0", "1", "", " ", "None", "VMRUN|VMMCALL",
                                   "VMRUN,NOPE", "SMI", "VMLAUNCH", "1<<99999999999", "1<<(1<<70)",
                                   "1+" * 3000 + "1", "~" * 5000 + "1", "()", "0x" + "f" * 5000]))
values = st.one_of(big_ints, texts, st.booleans(), st.none(), st.floats(), st.binary(max_size=8),
                   st.sets(st.sampled_from(["VMRUN", "VMMCALL", "SHUTDOWN", "NPT", "NOPE", "INTERCEPT_CPUID"])),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                   st.sampled_from([Decimal("1.5"), Fraction(1, 3), object(), float("nan"), float("inf"), b"\x00"]))


def refused_clearly(exc: Exception, *names: str) -> None:
    message = str(exc)
    assert isinstance(exc, (ValueError, TypeError)), repr(exc)
    assert len(message) < 500, message[:300]
    assert any(name in message for name in names), message


def unchanged(sc, snapshot) -> None:
    assert (dict(sc.values), sc.memory, sc.name, sc.description) == snapshot


def snapshot_of(sc):
    return dict(sc.values), sc.memory, sc.name, sc.description


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=values)
def test_any_value_in_any_field(field, value):
    isa, path = field
    sc = SCENARIOS[isa]
    before = snapshot_of(sc)
    try:
        new = sc.with_fields({path: value})
    except Exception as exc:                          # noqa: BLE001: what it raised is the test
        refused_clearly(exc, path)
    else:
        assert new.get(path) is not None
    unchanged(sc, before)


@SETTINGS
@given(isa=st.sampled_from(["svm", "vmx"]),
       words=st.one_of(st.dictionaries(st.one_of(big_ints, st.integers(0, 1 << 40).map(lambda g: g & ~7),
                                                 st.sampled_from([0x1000, 0x2000, 0x10000]), st.text(max_size=3),
                                                 st.none(), st.floats()),
                                       values, max_size=3),
                       values))
def test_any_memory_write(isa, words):
    sc = SCENARIOS[isa]
    before = snapshot_of(sc)
    try:
        new = sc.with_memory(words)
    except Exception as exc:                          # noqa: BLE001
        refused_clearly(exc, "memory")
    else:
        assert new.isa == isa
    unchanged(sc, before)


@settings(max_examples=60, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(isa=st.sampled_from(["svm", "vmx"]),
       variant=st.one_of(st.sampled_from(nm.variants("svm") + nm.variants("vmx")), st.text(max_size=20), values))
def test_any_variant(isa, variant):
    sc = SCENARIOS[isa]
    try:
        trace = nm.run(sc, variant)
    except Exception as exc:                          # noqa: BLE001
        refused_clearly(exc, "variant")
    else:
        assert trace.outcome and trace.steps


@settings(max_examples=120, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), isa=st.sampled_from(["svm", "vmx"]), where=st.sampled_from(["before", "after"]))
def test_any_move(data, isa, where):
    entries = st.one_of(st.sampled_from(MOVABLE[isa]), st.sampled_from(MOVABLE["vmx" if isa == "svm" else "svm"]),
                        st.text(max_size=10), st.integers(), st.none())
    step, anchor = data.draw(entries), data.draw(entries)
    try:
        flow = nm.move(step, **{where: anchor}, isa=isa)
    except Exception as exc:                          # noqa: BLE001
        refused_clearly(exc, "move", "step", "before", "after", "flow", "isa")
        return
    trace = nm.run(SCENARIOS[isa], flow)
    assert trace.outcome and len(trace.steps) <= 400
