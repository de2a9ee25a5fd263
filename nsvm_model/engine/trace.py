"""Record, then replay: running a flow computes every snapshot up front.

A flow is data: named sequences of step ids, and a table that says where a
step's outcome label leads ("svm.check_controls:invalid" -> the early
#VMEXIT sequence, "svm.check_rax:gp" -> "end:l1_gp").  The runner walks it,
applies each step's writes to a copy of the state, and keeps the copy.
Stepping through a trace is then just an index; replaying from any step
gives back exactly the same steps.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from .fields import quote
from .step import Ctx, Step

MAX_STEPS = 400   # far above any real flow; stops a user's cyclic edit
MAX_CALL_DEPTH = 32   # the deepest real flow nests 4 calls; Flow refuses call cycles anyway
END, UNWIND, CALL = "end:", "unwind:", "call:"
SUCCESS_LABELS = ("running", "host", "warn")   # outcome labels that do not mean a failure


MACHINES: Dict[str, object] = {}    # isa -> its Machine, once the ISA has registered it


class FlowError(ValueError):
    """A flow that cannot run: it names the flow and what is wrong."""


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

    def __post_init__(self):
        check_flow_shape(self)
        if self.isa in MACHINES:
            check_flow_steps(self, MACHINES[self.isa].steps)

    def moved(self, step_id: str, *, before: str = None, after: str = None,
              name: str = None) -> "Flow":
        """A copy with step_id (or "call:SEQ") taken out and put before/after another entry.

        Both entries may sit in different sequences (e.g. hoist a step out of
        a callee into its caller), as a proposed patch would move the code.
        """
        if (before is None) == (after is None):
            raise ValueError("moved: give exactly one of before= or after=")
        anchor = before or after
        for arg, value in (("step", step_id), ("before" if before else "after", anchor)):
            if not isinstance(value, str):
                raise TypeError(f"moved: {arg} must be a step id or 'call:SEQUENCE' string, got {quote(value)}")
        seqs = {k: list(v) for k, v in self.sequences.items()}
        where = [(k, i) for k, v in seqs.items() for i, e in enumerate(v) if e == step_id]
        if not where:
            raise ValueError(f"moved: {quote(step_id)} is not in flow {self.name!r}")
        for k, i in reversed(where):
            del seqs[k][i]
        targets = [(k, i) for k, v in seqs.items() for i, e in enumerate(v) if e == anchor]
        if not targets:
            raise ValueError(f"moved: anchor {quote(anchor)} is not in flow {self.name!r}")
        k, i = targets[0]
        seqs[k].insert(i if before else i + 1, step_id)
        short = step_id.removeprefix("call:").split(".")[-1]
        label = name or f"{self.name} with {short} moved"
        return Flow(label, self.isa, {k: tuple(v) for k, v in seqs.items()}, dict(self.on),
                    f"{self.name} with {step_id} moved {'before' if before else 'after'} {anchor}",
                    self.source, self.exposes)

    def reachable(self) -> List[str]:
        """Sequence names a run can enter: from main, through calls, gotos and unwinds."""
        return reachable_sequences(self.sequences, self.on)

    def step_ids(self) -> List[str]:
        """Every step the flow can run, in the order the sequences list them."""
        seen: List[str] = []
        for seq in self.sequences.values():
            for sid in seq:
                if not sid.startswith("call:") and sid not in seen:
                    seen.append(sid)
        return seen


def _target_sequence(target: str):
    """The sequence an `on` target enters, or None for an end."""
    if target.startswith(END):
        return None
    return target[len(UNWIND):] if target.startswith(UNWIND) else target


def reachable_sequences(sequences: Mapping, on: Mapping) -> List[str]:
    targets: Dict[str, List[str]] = {}        # "step" or "SEQ:done" -> the sequences its labels enter
    for key, target in on.items():
        seq = _target_sequence(target)
        if seq:
            targets.setdefault(key.rsplit(":", 1)[0], []).append(seq)
    seen, todo = [], ["main"]
    while todo:
        seq = todo.pop()
        if seq in seen or seq not in sequences:
            continue
        seen.append(seq)
        for e in sequences[seq]:
            todo += [e[len(CALL):]] if e.startswith(CALL) else targets.get(e, [])
        todo += targets.get(f"{seq}:done", [])
    return seen


def prune_unreachable(sequences: Mapping, on: Mapping) -> dict:
    """Only the sequences a run can enter: for flows built from a list or by replacing a sequence."""
    keep = reachable_sequences(sequences, on)
    return {name: seq for name, seq in sequences.items() if name in keep}


def _call_cycle(sequences: Mapping):
    """One call cycle as a list of sequence names, or None."""
    state = {}                        # name -> "open" while on the DFS path, "done" after

    def visit(seq, path):
        state[seq] = "open"
        for e in sequences.get(seq, ()):
            callee = e[len(CALL):] if e.startswith(CALL) else None
            if callee is None:
                continue
            if state.get(callee) == "open":
                return path[path.index(callee):] + [callee] if callee in path else path + [callee]
            if callee not in state:
                found = visit(callee, path + [callee])
                if found:
                    return found
        state[seq] = "done"
        return None

    for seq in sequences:
        if seq not in state:
            found = visit(seq, [seq])
            if found:
                return found
    return None


def check_flow_shape(flow: "Flow") -> None:
    """Refuse a flow that could not run: a missing sequence, a call cycle, an unreachable sequence."""
    def fail(why):
        return FlowError(f"flow {quote(flow.name)}: {why}")

    if not isinstance(flow.name, str) or not isinstance(flow.isa, str):
        raise TypeError(f"flow: name and isa are strings, got {quote(flow.name)} and {quote(flow.isa)}")
    if not isinstance(flow.sequences, Mapping) or not isinstance(flow.on, Mapping):
        raise TypeError(f"flow {quote(flow.name)}: sequences and on are mappings "
                        "(name -> tuple of step ids; 'step:label' -> target)")
    if "main" not in flow.sequences:
        raise fail("has no 'main' sequence, where a run starts")
    for name, seq in flow.sequences.items():
        if not isinstance(seq, (tuple, list)) or not all(isinstance(e, str) for e in seq):
            raise fail(f"sequence {quote(name)} must be a tuple of step ids or 'call:NAME' strings")
        for e in seq:
            if e.startswith(CALL) and e[len(CALL):] not in flow.sequences:
                raise fail(f"sequence {quote(name)} calls {quote(e[len(CALL):])}, which is not a sequence "
                           f"(known: {', '.join(flow.sequences)})")
    present = set(flow.sequences) | {e for seq in flow.sequences.values() for e in seq}
    for key, target in flow.on.items():
        if not isinstance(key, str) or not isinstance(target, str):
            raise fail(f"on: entries are 'step:label' -> target strings, got {quote(key)}: {quote(target)}")
        seq = _target_sequence(target)
        live = key.rsplit(":", 1)[0] in present      # entries of steps the flow lacks never fire
        if live and seq is not None and seq not in flow.sequences:
            raise fail(f"on[{quote(key)}] goes to {quote(target)}, which is not a sequence; "
                       "targets are a sequence name, 'unwind:NAME' or 'end:OUTCOME'")
    cycle = _call_cycle(flow.sequences)
    if cycle:
        raise fail("calls itself in a cycle (" + " -> ".join(cycle) + "); a run would never return")
    unreachable = [n for n in flow.sequences if n not in reachable_sequences(flow.sequences, flow.on)]
    if unreachable:
        raise fail(f"no run can reach {', '.join(map(quote, unreachable))} "
                   "(nothing calls it, and no step's outcome goes there)")


def check_flow_steps(flow: "Flow", steps: Mapping) -> None:
    """Refuse a flow that names a step its ISA does not define."""
    for name, seq in flow.sequences.items():
        for e in seq:
            if not e.startswith(CALL) and e not in steps:
                close = difflib.get_close_matches(e, steps, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise FlowError(f"flow {quote(flow.name)}: sequence {quote(name)} names "
                                f"{quote(e)}, which is not a step of {flow.isa}{hint}")


class TraceStep(NamedTuple):
    """One executed step: the snapshot after it, and what changed."""
    index: int
    step: Step
    pos: Tuple                          # the call stack of (sequence, index) at this step
    before: Mapping                     # the snapshot before the step
    state: Mapping                      # the snapshot after the step
    diff: Tuple[Tuple[str, object, object], ...]   # (path, before, after) for each value that changed
    wrote: Tuple[str, ...]              # concrete paths the step wrote, changed or not
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
        """Concrete paths this step wrote, even with the value they already had (a copy is a copy)."""
        return self.wrote

    @property
    def changed(self) -> Tuple[str, ...]:
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

    @property
    def failing_step(self) -> Optional[int]:
        """The index of the step whose outcome label sent a failed run down its failure path
        (None when L2 runs or an edited flow never finished)."""
        if self.outcome in ("l2_runs", "incomplete"):
            return None
        return next((s.index for s in self.steps if s.label and s.label not in SUCCESS_LABELS), None)

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


class Derived(NamedTuple):
    """State computed from other state (where GIF lives, and its value)."""
    compute: Callable[[dict], dict]
    inputs: frozenset                                   # recompute only when a step wrote one of these
    source: Callable[[Mapping], Mapping[str, str]]      # derived path -> the path its value is read from


def run_flow(flow: Flow, steps: Mapping[str, Step], state0: Mapping, memory,
             aliases: Mapping[str, str], derived: Derived,
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
        if entry.startswith(CALL):
            if len(stack) >= MAX_CALL_DEPTH:
                end = "end:incomplete"
                break
            stack.append((entry[len(CALL):], 0))
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
        changed = derived.compute(state) if derived.inputs.intersection(ctx.writes) else {}
        state.update(changed)
        touched = list(ctx.writes) + [p for p in changed if p not in ctx.writes]
        diff = tuple((p, before[p], state[p]) for p in touched if before[p] != state[p])
        # a derived value is written when it changed or when the step wrote the field it is read
        # from (svm_set_gif(false) on a GIF that was already 0 still writes GIF)
        sources = derived.source(state) if changed else {}
        wrote = tuple(ctx.writes) + tuple(p for p in changed if p not in ctx.writes
                                          and (before[p] != state[p] or sources.get(p) in ctx.writes))
        recorded.append(TraceStep(len(recorded), step, pos, before, MappingProxyType(state),
                                  diff, wrote, tuple(dict.fromkeys(ctx.reads)), label, tuple(ctx.notes)))
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
