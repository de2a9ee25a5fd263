"""A model of how Linux KVM emulates nested virtualization: nested VMRUN
and #VMEXIT on AMD SVM (and nested VM entry on Intel VMX), step by step,
each step named after its kernel function at a pinned commit.

    import nsvm_model as nm
    trace = nm.run(nm.Scenario.svm().with_fields({"vmcb12.control.asid": 0}))
    trace.outcome, trace.failure          # ('vmexit_invalid', 'early')

Pure Python; it imports no UI library.
"""

from __future__ import annotations

from .engine.fields import quote
from .engine.scenario import Scenario
from .engine.trace import Flow, Trace, TraceStep
from .kernel import KERNEL_COMMIT, KERNEL_REPO, source_url
from .phases import PHASES, Alignment, align
from .review import Review, check_order, explain, move, review
from .svm.defs import SVM_EXIT_ERR

__all__ = ["Scenario", "Trace", "TraceStep", "Flow", "run", "variants", "machine_for",
           "KERNEL_COMMIT", "KERNEL_REPO", "SVM_EXIT_ERR", "source_url", "steps", "field_alias",
           "align", "Alignment", "PHASES", "check_order", "review", "Review", "move", "explain",
           "review_patches"]

ISAS = ("svm", "vmx")

# Older or looser spellings of a path, mapped to the kernel's name at the pinned commit.
FIELD_ALIASES = {
    "svm": {"vcpu.arch.rip": "vcpu.rip", "vmcb12.control.nested_ctl": "vmcb12.control.misc_ctl",
            "vmcb12.control.intercept": "vmcb12.control.intercepts",
            "svm.vmcb": "svm.current_vmcb", "vcpu.is_guest_mode": "vcpu.guest_mode"},
    "vmx": {"vcpu.arch.rip": "vcpu.rip", "vcpu.is_guest_mode": "vcpu.guest_mode"},
}


def field_alias(isa: str, path: str) -> str:
    return FIELD_ALIASES.get(isa, {}).get(path, path)


def machine_for(isa: str):
    """The ISA's machine: its fields, steps, flows and invariants."""
    if isa == "svm":
        from .svm import MACHINE
        return MACHINE
    if isa == "vmx":
        from .vmx import MACHINE
        return MACHINE
    raise ValueError(f"isa: {quote(isa)} is not allowed; expected one of {', '.join(ISAS)}")


def run(scenario: Scenario, variant="upstream") -> Trace:
    """Record the whole trace of a scenario under a flow variant."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"run: expected a Scenario, got {type(scenario).__name__}")
    return machine_for(scenario.isa).run(scenario, variant)


def variants(isa: str) -> list:
    """The names of the flow variants for an ISA ('upstream' first)."""
    return list(machine_for(isa).flows)


def steps(isa: str) -> dict:
    """Every step the ISA defines, by id."""
    return dict(machine_for(isa).steps)


def review_patches(texts, names=None, base=None):
    """Review a posted patch series (see nsvm_model.patches); imported on first use."""
    from .patches import review_patches as review
    return review(texts, names, base)

