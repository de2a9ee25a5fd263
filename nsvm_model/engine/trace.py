"""Record, then replay: running a flow computes every snapshot up front.

A flow is data: named sequences of step ids, and a table that says where a
step's outcome label leads ("svm.check_controls:invalid" -> the early
#VMEXIT sequence, "svm.check_rax:gp" -> "end:l1_gp").  The runner walks it,
applies each step's writes to a copy of the state, and keeps the copy.
Stepping through a trace is then just an index; replaying from any step
gives back exactly the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from .step import Ctx, Step

MAX_STEPS = 400   # far above any real flow; stops a user's cyclic edit


@dataclass(frozen=True)
class Flow:
    """One way of ordering the steps (upstream, or a variant)."""
    name: str
    isa: str
    sequences: Mapping[str, Tuple[str, ...]]   # "main" is where a run starts
    on: Mapping[str, str]                      # "step_id:label" -> sequence or "end:outcome[/failure]"
    description: str = ""
    source: str = ""                           # commit or thread the variant comes from
    exposes: str = ""                          # a preset scenario that shows its difference

    def step_ids(self) -> List[str]:
        """Every step the flow can run, in the order the sequences list them."""
        seen: List[str] = []
        for seq in self.sequences.values():
            for sid in seq:
                if not sid.startswith("call:") and sid not in seen:
                    seen.append(sid)
        return seen


@dataclass(frozen=True)
class TraceStep:
    index: int
    step: Step = field(repr=False)
    pos: Tuple                          # the call stack of (sequence, index) at this step
    before: Mapping = field(repr=False)
    state: Mapping = field(repr=False)  # the snapshot after the step
    diff: Tuple[Tuple[str, object, object], ...]
    read: Tuple[str, ...]               # concrete paths the step read
    label: Optional[str]                # the outcome label the action returned
    notes: Tuple[str, ...]

    # the step's static facts, addressable on the trace step itself
    id = property(lambda self: self.step.id)
    function = property(lambda self: self.step.function)
    source = property(lambda self: self.step.source)
    phase = property(lambda self: self.step.phase)
    reads = property(lambda self: self.step.reads)
    writes = property(lambda self: self.step.writes)
    reason = property(lambda self: self.step.reason)
    title = property(lambda self: self.step.title)
    manual = property(lambda self: self.step.manual)

    @property
    def written(self) -> Tuple[str, ...]:
        """Concrete paths whose value this step changed."""
        return tuple(p for p, _, _ in self.diff)


@dataclass(frozen=True)
class Trace:
    isa: str
    variant: str
    scenario: object
    initial: Mapping
    steps: Tuple[TraceStep, ...]
    outcome: str
    failure: Optional[str]               # "early" / "late" for a failed VMRUN
    machine: object = field(repr=False, compare=False, default=None)

    @property
    def final(self) -> Mapping:
        return self.steps[-1].state if self.steps else self.initial

    def state_at(self, i: int) -> Mapping:
        """The state after step i (i = -1: before the first step)."""
        return self.initial if i < 0 else self.steps[i].state

    def index_of(self, step_id: str) -> int:
        for s in self.steps:
            if s.id == step_id:
                return s.index
        raise KeyError(f"step {step_id!r} is not in this trace")

    @property
    def step_ids(self) -> Tuple[str, ...]:
        return tuple(s.id for s in self.steps)

    def replay_from(self, i: int) -> "Trace":
        """Run the flow again from the state before step i."""
        s = self.steps[i]
        return self.machine.resume(self, s.before, s.pos, self.steps[:i])

    def invariant_violations(self):
        return self.machine.check_invariants(self)


def run_flow(flow: Flow, steps: Mapping[str, Step], state0: Mapping, memory,
             aliases: Mapping[str, str], derive: Callable[[dict], dict],
             start: Tuple = (("main", 0),),
             prefix: Tuple[TraceStep, ...] = ()) -> Tuple[Tuple[TraceStep, ...], str]:
    """Walk the flow from start; return the recorded steps and the end marker.

    A sequence entry "call:NAME" runs sequence NAME and comes back, as a
    kernel function call does; a label's target replaces the current
    sequence (a goto), or with "unwind:NAME" replaces the whole call stack,
    as an error code returned up to the outermost function does.  A finished sequence returns to its caller; the
    outermost one ends the run with flow.on["NAME:done"].
    """
    recorded: List[TraceStep] = list(prefix)
    state = dict(state0)
    stack = list(start)
    while True:
        seq, idx = stack[-1]
        sequence = flow.sequences[seq]
        if idx >= len(sequence):
            stack.pop()
            if stack:
                continue
            end = flow.on.get(f"{seq}:done", "end:incomplete")
            break
        entry = sequence[idx]
        stack[-1] = (seq, idx + 1)
        if entry.startswith("call:"):
            stack.append((entry[5:], 0))
            continue
        if len(recorded) >= MAX_STEPS:
            end = "end:incomplete"
            break
        step = steps[entry]
        pos = tuple(stack[:-1]) + ((seq, idx),)
        ctx = Ctx(state, step, aliases, memory)
        label = step.action(ctx)
        before = MappingProxyType(state)
        state = dict(state)
        state.update(ctx.writes)
        changed = derive(state)
        state.update(changed)
        touched = list(ctx.writes) + [p for p in changed if p not in ctx.writes]
        diff = tuple((p, before[p], state[p]) for p in touched if before[p] != state[p])
        recorded.append(TraceStep(len(recorded), step, pos, before, MappingProxyType(state),
                                  diff, tuple(dict.fromkeys(ctx.reads)), label, tuple(ctx.notes)))
        target = flow.on.get(f"{step.id}:{label}") if label else None
        if target is None:
            continue
        if target.startswith("end:"):
            end = target
            break
        if target.startswith("unwind:"):      # an error returned all the way up
            stack = [(target[len("unwind:"):], 0)]
        else:
            stack[-1] = (target, 0)
    return tuple(recorded), end
