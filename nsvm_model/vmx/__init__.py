"""nVMX: the model of KVM's nested VM entry and VM exit on Intel VMX."""

from .. import x86
from ..engine.machine import Machine
from . import flows, invariants, rules, scenarios, state, steps

MACHINE = Machine(
    isa="vmx",
    fields=scenarios.FIELDS,
    constants=scenarios.CONSTANTS,
    steps=steps.STEPS,
    flows=flows.FLOWS,
    initial_state=state.initial_state,
    derive=state.derive,
    derive_inputs=frozenset(),
    aliases={"vmx->loaded_vmcs": "vmx.current_vmcs"},
    classify=state.classify,
    invariants=invariants.INVARIANTS,
    presets=scenarios.PRESETS,
    rules=rules.RULES,
    check_values=x86.check_l1_registers,
)
