"""Review arguments, runnable: check an ordering, run it, compare it with upstream.

    nm.check_order("v6-unified")                     # the rules it breaks
    r = nm.review("v6-unified")                      # run it on the scenario that exposes it
    print(r.text())                                  # 72 columns, for a mail reply
    svg = r.svg()                                    # both flows, differences and broken rules marked

An ordering is a variant name, a Flow (e.g. ``flow.moved(...)``), or a list
of step ids in the order they should run.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from .engine.fields import quote
from .engine.rules import RuleViolation, linear_order, violations
from .engine.scenario import Scenario
from .engine.trace import Flow, Trace, prune_unreachable
from .text import format_rule, show_value

Ordering = Union[str, Flow, Sequence[str]]
WIDTH = 72
ISAS = ("svm", "vmx")


def _machine(isa):
    from . import machine_for
    return machine_for(isa)


def _check_isa(isa) -> None:
    if isa is not None and isa not in ISAS:
        raise ValueError(f"isa: {quote(isa)} is not allowed; expected one of {', '.join(ISAS)} (or None)")


def _check_scenario(scenario, flow: Flow) -> None:
    if scenario is None:
        return
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected a Scenario (nm.Scenario.{flow.isa}() or a preset) or None, "
                        f"got {type(scenario).__name__} {quote(scenario)}")
    if scenario.isa != flow.isa:
        raise ValueError(f"scenario: {quote(scenario)} is a {scenario.isa} scenario; "
                         f"the ordering {quote(flow.name)} needs a {flow.isa} scenario")


def resolve(ordering: Ordering, isa: Optional[str] = None) -> Flow:
    """The Flow an ordering names."""
    _check_isa(isa)
    if isinstance(ordering, Flow):
        if isa is not None and ordering.isa != isa:
            raise ValueError(f"ordering: flow {quote(ordering.name)} is for {ordering.isa}, not {isa}")
        return ordering
    if isinstance(ordering, str):
        for name in ([isa] if isa else ["svm", "vmx"]):
            flows = _machine(name).flows
            if ordering in flows:
                return flows[ordering]
        known = sorted({f for i in ("svm", "vmx") for f in _machine(i).flows})
        raise ValueError(f"ordering: unknown variant {quote(ordering)} (known: {', '.join(known)})")
    if not isinstance(ordering, (list, tuple)) or not ordering or not all(isinstance(s, str) for s in ordering):
        raise TypeError("ordering: expected a variant name, a Flow or a non-empty list of step ids, "
                        f"got {type(ordering).__name__} {quote(ordering)}")
    ids = list(ordering)
    isa = isa or ids[0].split(".", 1)[0]
    if isa not in ISAS:
        raise ValueError(f"ordering: {quote(ids[0])} is not a step id (step ids start with "
                         f"{' or '.join(i + '.' for i in ISAS)})")
    machine = _machine(isa)
    unknown = [s for s in ids if s not in machine.steps]
    if unknown:
        close = difflib.get_close_matches(unknown[0], machine.steps, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"ordering: unknown {isa} step {quote(unknown[0])}{hint}")
    return from_order(machine.flows["upstream"], ids)


def from_order(base: Flow, ids: Sequence[str], name: str = "edited") -> Flow:
    """A flow that runs `ids` one after another, with base's failure paths."""
    seqs = dict(base.sequences)
    seqs["main"] = tuple(ids)
    return Flow(name, base.isa, prune_unreachable(seqs, base.on), dict(base.on), "a user's ordering of the steps", "edited", base.exposes)


def move(step: str, before: str = None, after: str = None, variant: str = "upstream",
         isa: Optional[str] = None, name: Optional[str] = None) -> Flow:
    """'Move step X before (or after) step Y' in a variant ("call:SEQ" moves a whole call)."""
    for arg, value in (("step", step), ("before", before), ("after", after), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"move: {arg} must be a step id or 'call:SEQUENCE' string, "
                            f"got {type(value).__name__} {quote(value)}")
    if step is None:
        raise TypeError("move: name the step to move")
    _check_isa(isa)
    if isa is None:
        named = [s for s in (step, before, after) if s and not s.startswith("call:")]
        if not named:
            raise ValueError("move: say isa='svm' or 'vmx' when only calls are moved")
        isa = named[0].split(".", 1)[0]
    return resolve(variant, isa).moved(step, before=before, after=after, name=name)


def check_order(ordering: Ordering, isa: Optional[str] = None, scenario=None) -> List[RuleViolation]:
    """The ordering rules an ordering breaks.

    The flow's success path is checked, and so is what actually ran on the
    scenario (default: the preset that exposes the variant), so rules about a
    branch such as RSM are seen too.
    """
    flow = resolve(ordering, isa)
    _check_scenario(scenario, flow)
    machine = _machine(flow.isa)
    found = {v.id: v for v in violations(machine.rules, linear_order(flow))}
    trace = machine.run(scenario or _exposing_scenario(flow), flow)
    for v in violations(machine.rules, trace.step_ids):
        found.setdefault(v.id, v)
    order = [r.id for r in machine.rules]
    return sorted(found.values(), key=lambda v: order.index(v.id))


def _exposing_scenario(flow: Flow):
    machine = _machine(flow.isa)
    return Scenario.preset(flow.isa, flow.exposes if flow.exposes in machine.presets else "default")


def explain(rule_id: str) -> str:
    if not isinstance(rule_id, str):
        raise TypeError(f"rule: expected a rule id such as 'R18', got {type(rule_id).__name__} {quote(rule_id)}")
    for isa in ("svm", "vmx"):
        for rule in _machine(isa).rules:
            if rule.id == rule_id:
                return format_rule(rule)
    ids = [r.id for isa in ("svm", "vmx") for r in _machine(isa).rules]
    raise ValueError(f"rule: unknown rule {quote(rule_id)} (known: {', '.join(ids)})")


@dataclass
class Review:
    """An ordering run next to upstream on one scenario."""
    flow: Flow
    baseline: Flow
    scenario: object
    trace: Trace
    baseline_trace: Trace
    rules: List[RuleViolation]

    @property
    def invariants(self):
        return self.trace.invariant_violations()

    def state_diff(self, include_locals: bool = False) -> dict:
        """Final-state paths whose value differs: path -> (baseline, this ordering)."""
        a, b = self.baseline_trace.final, self.trace.final
        return {p: (a[p], b[p]) for p in b if p in a and a[p] != b[p]
                and (include_locals or ".local." not in p)}

    def text(self, width: int = WIDTH) -> str:
        return compare_text(self, width)

    def svg(self) -> str:
        return compare_graph(self).pipe(format="svg", encoding="utf-8")

    def png(self) -> bytes:
        return compare_graph(self).pipe(format="png")


def review(ordering: Ordering, scenario=None, baseline: Ordering = "upstream",
           isa: Optional[str] = None) -> Review:
    flow = resolve(ordering, isa)
    base = resolve(baseline, flow.isa)
    _check_scenario(scenario, flow)
    sc = scenario or _exposing_scenario(flow)
    machine = _machine(flow.isa)
    return Review(flow, base, sc, machine.run(sc, flow), machine.run(sc, base),
                  check_order(flow, scenario=sc))


# --- plain text, for a mail reply ----------------------------------------------

def _short(step_id: str) -> str:
    return step_id.split(".", 1)[1]


def aligned_rows(a: Sequence[str], b: Sequence[str]):
    """Pair two step lists the way a diff would: (left or None, right or None)."""
    rows = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, list(a), list(b), autojunk=False).get_opcodes():
        if op == "equal":
            rows += [(a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
        else:
            rows += [(a[i], None) for i in range(i1, i2)]
            rows += [(None, b[j]) for j in range(j1, j2)]
    return rows


def _wrap(text: str, width: int, indent: str = "  ") -> List[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + "  ")


MIN_WIDTH, MAX_WIDTH = 40, 400


def compare_text(r: Review, width: int = WIDTH) -> str:
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"width: expected an integer from {MIN_WIDTH} to {MAX_WIDTH} columns, got {quote(width)}")
    col = (width - 6) // 2
    fit = lambda s: "" if s is None else (s if len(s) <= col else s[:col - 1] + "~")
    a, b = r.baseline_trace, r.trace
    lines = [f"{r.flow.isa.upper()} {r.baseline.name} vs {r.flow.name}, scenario {r.scenario.name}"[:width],
             f"outcome: {a.outcome} vs {b.outcome}"[:width], "",
             f"   {r.baseline.name[:col]:<{col}}   {r.flow.name[:col]}", "-" * width]
    for left, right in aligned_rows(a.step_ids, b.step_ids):
        mark = " " if left == right else ("<" if right is None else ">")
        lines.append(f" {mark} {fit(left and _short(left)):<{col}} {mark} {fit(right and _short(right))}".rstrip())
    lines += ["-" * width, "< only in " + r.baseline.name + ", > only in " + r.flow.name, ""]
    lines.append(f"Ordering rules {r.flow.name} breaks: {len(r.rules)}")
    for v in r.rules:
        lines += _wrap(f"{v.id}: {_short(v.after)} runs before {_short(v.before)}: {v.reason}.", width)
        lines += _wrap(f"Symptom: {v.symptom}. Source: {v.source}.", width, "    ")
    lines.append(f"Invariants broken on {r.scenario.name}: {len(r.invariants)}")
    for inv in r.invariants:
        lines += _wrap(f"{inv.invariant} after step {inv.step_index + 1} ({_short(inv.step_id)}): {inv.text}.", width)
    diff = r.state_diff()
    lines.append(f"Final state that differs from {r.baseline.name}: {len(diff)} fields")
    for path, (x, y) in list(diff.items())[:20]:
        lines += _wrap(f"{path}: {show_value(x)} -> {show_value(y)}", width)
    if len(diff) > 20:
        lines.append(f"  ... and {len(diff) - 20} more")
    return "\n".join(line[:width] for line in lines)


# --- a diagram ------------------------------------------------------------------

OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000"}


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def compare_graph(r: Review):
    """Both flows as columns, nodes named by kernel function; the steps both run first are
    folded into one node; moved steps sky blue (◆), steps of a broken rule vermillion (✗),
    a dashed arrow from each rule's early step to the step it should have followed; a legend."""
    import graphviz   # only the review diagram needs it

    broken = {v.after for v in r.rules} | {v.before for v in r.rules}
    base_ids, ids = r.baseline_trace.step_ids, r.trace.step_ids
    same_place = {l for l, rr in aligned_rows(base_ids, ids) if l == rr}
    folded = _common_prefix(base_ids, ids)
    steps = _machine(r.flow.isa).steps
    font = {"fontname": "Helvetica"}
    g = graphviz.Digraph("compare", graph_attr={"rankdir": "TB", "nodesep": "0.25", "ranksep": "0.12",
                                                "label": f"{r.baseline.name} vs {r.flow.name} on {r.scenario.name}",
                                                "labelloc": "t", **font},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontsize": "10",
                                    "fillcolor": "white", "height": "0.25", **font})

    def label(sid: str) -> str:
        step = steps.get(sid)
        return f"{step.function}()\n{_short(sid)}" if step else _short(sid)

    for side, flow_ids in (("a", base_ids), ("b", ids)):
        with g.subgraph(name=f"cluster_{side}") as c:
            c.attr(label=r.baseline.name if side == "a" else r.flow.name, color=OKABE_ITO["black"])
            prev = None
            if folded > 1:
                prev = f"{side}fold"
                c.node(prev, f"{folded} steps both run first\n{_short(flow_ids[0])} ... "
                             f"{_short(flow_ids[folded - 1])}", fillcolor="#eeeeee", style="rounded,filled,dashed")
            for i, sid in enumerate(flow_ids):
                if i < folded and folded > 1:
                    continue
                node = f"{side}{i}"
                text, color = label(sid), "white"
                if side == "b" and sid in broken:
                    text, color = "✗ " + text, OKABE_ITO["vermillion"]
                elif side == "b" and sid not in same_place:
                    text, color = "◆ " + text, OKABE_ITO["sky"]
                c.node(node, text, fillcolor=color)
                if prev:
                    c.edge(prev, node, arrowsize="0.5")
                prev = node
    first = {}
    for i, sid in enumerate(ids):
        if i >= folded or folded <= 1:
            first.setdefault(sid, i)
    for v in r.rules:
        if v.before in first and v.after in first:
            g.edge(f"b{first[v.after]}", f"b{first[v.before]}", label=v.id, color=OKABE_ITO["vermillion"],
                   fontcolor=OKABE_ITO["vermillion"], style="dashed", constraint="false", **font)
    with g.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", color=OKABE_ITO["black"], fontsize="10")
        c.node("legend_moved", "◆ runs elsewhere than in " + r.baseline.name, fillcolor=OKABE_ITO["sky"])
        c.node("legend_broken", "✗ step of a broken ordering rule", fillcolor=OKABE_ITO["vermillion"])
        c.node("legend_edge", "- - R18 ->  runs before the step it must follow", shape="plaintext",
               style="", fontcolor=OKABE_ITO["vermillion"])
        c.edge("legend_moved", "legend_broken", style="invis")
        c.edge("legend_broken", "legend_edge", style="invis")
    return g
