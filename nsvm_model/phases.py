"""The phase table (nvmx-flow.md section 7) as data, and the alignment of two traces.

Every step carries a phase P1..P15.  Two traces, one per ISA, line up phase
by phase: a row holds the steps each side ran in that phase and how that
side fails there.  The side-by-side stepper moves one side to the partner
step of the other through ``Alignment.partner``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .engine.fields import quote
from .engine.trace import Trace

# phase -> (title, {isa: how that ISA fails in this phase})
PHASES: Dict[str, Tuple[str, Dict[str, str]]] = {
    "P1": ("Instruction-level checks and faults",
           {"svm": "#UD or #GP injected, RIP not advanced",
            "vmx": "#UD or #GP injected, RIP not advanced"}),
    "P2": ("Locate and map L1's structure",
           {"svm": "vmcb12 unmappable: exit to userspace, RIP not advanced",
            "vmx": "no current VMCS: VMfailInvalid"}),
    "P3": ("Control checks",
           {"svm": "early #VMEXIT(VMEXIT_INVALID) into vmcb12, GIF=0, RIP past VMRUN",
            "vmx": "VMfailValid 7 (26, 4, 5 for the basic checks), nothing loaded"}),
    "P4": ("Host (L1) state checks",
           {"svm": "none: VMRUN saves L1's own state into vmcb01",
            "vmx": "VMfailValid 8: vmcs12's host area is what a VM exit will load"}),
    "P5": ("Guest (L2) state checks",
           {"svm": "early #VMEXIT(VMEXIT_INVALID), nothing of L2 loaded",
            "vmx": "VM exit 33 (qualification 0 or 4), host state loaded from vmcs12"}),
    "P6": ("Save L1 state",
           {"svm": "-", "vmx": "-"}),
    "P7": ("Switch to the 02 structure",
           {"svm": "later failures go through nested_svm_vmexit(), which switches back",
            "vmx": "any later failure must switch back to vmcs01"}),
    "P8": ("Enter guest mode", {"svm": "-", "vmx": "-"}),
    "P9": ("Prepare controls",
           {"svm": "-", "vmx": "unmappable L1 pages: KVM internal error to userspace"}),
    "P10": ("Prepare L2 save state",
            {"svm": "-", "vmx": "VM exit 33 (vmx_guest_state_valid)"}),
    "P11": ("MMU init", {"svm": "-", "vmx": "-"}),
    "P12": ("Load CR3",
            {"svm": "late #VMEXIT(VMEXIT_INVALID) through the full nested_svm_vmexit()",
             "vmx": "VM exit 33, qualification 0 (illegal CR3) or 2 (PDPTE)"}),
    "P13": ("MSRs",
            {"svm": "MSR bitmap unreadable: late #VMEXIT(VMEXIT_INVALID)",
             "vmx": "VM exit 34, qualification = 1-based index of the failing entry"}),
    "P14": ("GIF and event injection",
            {"svm": "GIF set last; every #VMEXIT clears it",
             "vmx": "no GIF; a bad injection was already VMfail 7"}),
    "P15": ("Run L2",
            {"svm": "a hardware VMRUN failure is reflected to L1 as #VMEXIT(VMEXIT_INVALID)",
             "vmx": "hardware-detected bad guest state is reflected as VM exit 33"}),
}

PHASE_ORDER = tuple(PHASES)


@dataclass(frozen=True)
class Row:
    phase: str
    title: str
    svm_steps: Tuple[int, ...]        # indexes into the SVM trace, in trace order
    vmx_steps: Tuple[int, ...]
    svm_failure_mode: str
    vmx_failure_mode: str
    svm_failed_here: bool             # this side's run ended in a failure in this phase
    vmx_failed_here: bool


@dataclass(frozen=True)
class Alignment:
    svm: object
    vmx: object
    rows: Tuple[Row, ...]

    def row(self, phase: str) -> Row:
        for r in self.rows:
            if r.phase == phase:
                return r
        raise KeyError(f"phase {phase!r}: expected one of {', '.join(PHASE_ORDER)}")

    def partner(self, isa: str, index: int) -> Optional[int]:
        """The other side's step for step `index` of `isa`: the first step of the same
        phase, else the last step the other side ran before that phase."""
        mine = self.svm if isa == "svm" else self.vmx
        other_isa = "vmx" if isa == "svm" else "svm"
        phase = mine.steps[index].phase
        row = self.row(phase)
        theirs = row.vmx_steps if isa == "svm" else row.svm_steps
        if theirs:
            return theirs[0]
        earlier = [i for r in self.rows[:PHASE_ORDER.index(phase)]
                   for i in (r.vmx_steps if other_isa == "vmx" else r.svm_steps)]
        return max(earlier) if earlier else None


def failing_phase(trace) -> Optional[str]:
    """The phase of the step whose outcome label sent the run down a failure path."""
    i = trace.failing_step
    return None if i is None else trace.steps[i].phase


def align(svm_trace, vmx_trace) -> Alignment:
    """Pair two traces phase by phase (P1..P15)."""
    for arg, value, isa in (("svm_trace", svm_trace, "svm"), ("vmx_trace", vmx_trace, "vmx")):
        if not isinstance(value, Trace):
            raise TypeError(f"align: {arg} must be a Trace (nm.run(...)), got {type(value).__name__} {quote(value)}")
        if value.isa != isa:
            raise ValueError(f"align: {arg} must be a trace of {isa}, got one of {value.isa} "
                             "(call align(svm_trace, vmx_trace))")
    svm_fail, vmx_fail = failing_phase(svm_trace), failing_phase(vmx_trace)
    rows = []
    for phase, (title, modes) in PHASES.items():
        rows.append(Row(
            phase, title,
            tuple(s.index for s in svm_trace.steps if s.phase == phase),
            tuple(s.index for s in vmx_trace.steps if s.phase == phase),
            modes["svm"], modes["vmx"], svm_fail == phase, vmx_fail == phase))
    return Alignment(svm_trace, vmx_trace, tuple(rows))
