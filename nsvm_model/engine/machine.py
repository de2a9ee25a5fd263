"""One engine for both ISAs: an ISA is data handed to Machine.

An ISA module supplies its scenario fields, its steps, its flows
(upstream and the variants), how the initial state is built from a
scenario, which state is derived (e.g. where GIF is read from), how an
end of the flow maps to an outcome, and its invariants.  Running,
recording, replaying and checking invariants are the same code for SVM
and VMX.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Tuple

from .fields import Field
from .step import Step
from .fields import quote
from .trace import MACHINES, Derived, Flow, Trace, TraceStep, check_flow_steps, run_flow


@dataclass(frozen=True)
class Invariant:
    id: str
    text: str                                             # the claim, in one sentence
    check: Callable[[Trace, int], bool] = field(repr=False)  # False: broken after step i


@dataclass(frozen=True)
class Violation:
    invariant: str
    text: str
    step_index: int
    step_id: str

    def __str__(self) -> str:
        return f"{self.invariant} broken after step {self.step_index} ({self.step_id}); must hold: {self.text}"


@dataclass
class Machine:
    isa: str
    fields: Dict[str, Field]
    constants: Dict[str, int]
    steps: Dict[str, Step]
    flows: Dict[str, Flow]
    initial_state: Callable[[object], dict]
    derive: Callable[[dict], dict]
    derive_inputs: frozenset             # derived values change only when one of these does
    aliases: Dict[str, str]
    classify: Callable[[str, Mapping], Tuple[str, object]]
    invariants: Tuple[Invariant, ...] = ()
    presets: Dict[str, Callable] = field(default_factory=dict)
    rules: Tuple = ()                    # ordering rules (engine/rules.py)
    check_values: Callable[[Mapping], None] = lambda values: None   # raises on impossible values
    derive_sources: Callable[[Mapping], Mapping[str, str]] = lambda state: {}   # derived path -> its source

    def __post_init__(self):
        for flow in self.flows.values():
            check_flow_steps(flow, self.steps)
        MACHINES[self.isa] = self          # from now on, flows of this ISA are checked when built

    # -- running ----------------------------------------------------------
    def flow(self, variant) -> Flow:
        if isinstance(variant, Flow):
            if variant.isa != self.isa:
                raise ValueError(f"variant: flow {quote(variant.name)} is a flow for {variant.isa}; "
                                 f"this run needs a flow for {self.isa} (known: {', '.join(self.flows)})")
            return variant
        if not isinstance(variant, str):
            raise TypeError(f"variant: expected a variant name or a Flow, got {type(variant).__name__} "
                            f"{quote(variant)} (known: {', '.join(self.flows)})")
        if variant not in self.flows:
            close = difflib.get_close_matches(str(variant), self.flows, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"variant: unknown {self.isa} variant {quote(variant)}{hint} "
                             f"(known: {', '.join(self.flows)})")
        return self.flows[variant]

    def run(self, scenario, variant="upstream") -> Trace:
        if getattr(scenario, "isa", None) != self.isa:
            raise ValueError(f"scenario: a {self.isa} run needs a {self.isa} scenario, "
                             f"got {quote(scenario)}")
        flow = self.flow(variant)
        state0 = self.initial_state(scenario)
        state0.update(self.derive(state0))
        return self._record(scenario, flow, MappingProxyType(state0), state0, (("main", 0),), ())

    def resume(self, trace: Trace, state: Mapping, pos, prefix) -> Trace:
        flow = trace.flow or self.flow(trace.variant)
        return self._record(trace.scenario, flow, trace.initial, state, pos, tuple(prefix))

    def _record(self, scenario, flow, initial, state, pos, prefix) -> Trace:
        steps, end = run_flow(flow, self.steps, state, scenario.memory, self.aliases,
                              Derived(self.derive, self.derive_inputs, self.derive_sources), pos, prefix)
        final = steps[-1].state if steps else initial
        outcome, failure = self.classify(end, final)
        return Trace(self.isa, flow.name, scenario, initial, steps, outcome, failure, self, flow)

    # -- checking ---------------------------------------------------------
    def check_invariants(self, trace: Trace) -> List[Violation]:
        found: List[Violation] = []
        broken = set()
        for s in trace.steps:
            for inv in self.invariants:
                if inv.id in broken:
                    continue
                if not inv.check(trace, s.index):
                    broken.add(inv.id)            # report where it first breaks
                    found.append(Violation(inv.id, inv.text, s.index, s.id))
        return found
