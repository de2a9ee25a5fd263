"""nSVM: the model of KVM's nested VMRUN and #VMEXIT on AMD SVM."""

from .. import x86
from ..engine.machine import Machine
from . import flows, invariants, rules, scenarios, state, steps, variants

MACHINE = Machine(
    isa="svm",
    fields=scenarios.FIELDS,
    constants=scenarios.CONSTANTS,
    steps=steps.STEPS,
    flows={**flows.FLOWS, **variants.VARIANTS},
    initial_state=state.initial_state,
    derive=state.derive,
    derive_inputs=state.DERIVE_INPUTS,
    derive_sources=state.derive_sources,
    aliases={"svm->vmcb": "svm.current_vmcb"},
    classify=state.classify,
    invariants=invariants.INVARIANTS,
    presets=scenarios.PRESETS,
    rules=rules.RULES,
    check_values=x86.check_l1_registers,
)
