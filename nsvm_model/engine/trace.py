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
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

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

    def moved(self, step_id: str, *, before: str = None, after: str = None,
              name: str = None) -> "Flow":
        """A copy with step_id (or "call:SEQ") taken out and put before/after another entry.

        Both entries may sit in different sequences (e.g. hoist a step out of
        a callee into its caller), as a proposed patch would move the code.
        """
        if (before is None) == (after is None):
            raise ValueError("moved: give exactly one of before= or after=")
        anchor = before or after
        seqs = {k: list(v) for k, v in self.sequences.items()}
        where = [(k, i) for k, v in seqs.items() for i, e in enumerate(v) if e == step_id]
        if not where:
            raise ValueError(f"moved: {step_id!r} is not in flow {self.name!r}")
        for k, i in reversed(where):
            del seqs[k][i]
        targets = [(k, i) for k, v in seqs.items() for i, e in enumerate(v) if e == anchor]
        if not targets:
            raise ValueError(f"moved: anchor {anchor!r} is not in flow {self.name!r}")
        k, i = targets[0]
        seqs[k].insert(i if before else i + 1, step_id)
        short = step_id.removeprefix("call:").split(".")[-1]
        label = name or f"{self.name} with {short} moved"
        return Flow(label, self.isa, {k: tuple(v) for k, v in seqs.items()}, dict(self.on),
                    f"{self.name} with {step_id} moved {'before' if before else 'after'} {anchor}",
                    self.source, self.exposes)

    def step_ids(self) -> List[str]:
        """Every step the flow can run, in the order the sequences list them."""
        seen: List[str] = []
        for seq in self.sequences.values():
            for sid in seq:
                if not sid.startswith("call:") and sid not in seen:
                    seen.append(sid)
        return seen


class TraceStep(NamedTuple):
    """One executed step: the snapshot after it, and what changed."""
    index: int
    step: Step
    pos: Tuple                          # the call stack of (sequence, index) at this step
    before: Mapping                     # the snapshot before the step
    state: Mapping                      # the snapshot after the step
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

    def __repr__(self) -> str:
        return f"<TraceStep {self.index} {self.step.id}>"


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
    flow: Optional[Flow] = field(repr=False, compare=False, default=None)   # the ordering that ran

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
             aliases: Mapping[str, str], derive: Callable[[dict], dict], derive_inputs: frozenset,
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
        changed = derive(state) if derive_inputs.intersection(ctx.writes) else {}
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
