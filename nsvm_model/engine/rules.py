"""Ordering rules ("A must precede B because ...") and the checker.

A rule names steps that must all run before other steps.  The checker
lays a flow out in the order its success path runs (calls expanded) and
reports each rule whose "after" steps come before its "before" steps.
Rules whose steps are not all on that path say nothing about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple


@dataclass(frozen=True)
class Rule:
    id: str
    isa: str
    before: Tuple[str, ...]     # every one of these ...
    after: Tuple[str, ...]      # ... must precede every one of these
    reason: str
    source: str                 # kernel function(s) at the pinned commit, or the thread
    symptom: str                # what the model shows when the rule is broken
    confidence: str = "V"       # V verified in code, I inferred (see the fact sheets)
    required: bool = False      # the "after" steps without the "before" steps also break it

    def explain(self) -> str:
        return (f"{self.id}: {', '.join(self.before)} must precede {', '.join(self.after)}\n"
                f"  because {self.reason}\n  source: {self.source} [{self.confidence}]\n"
                f"  when broken: {self.symptom}")


@dataclass(frozen=True)
class RuleViolation:
    id: str
    before: str                 # the step that should have come first (or is missing) ...
    after: str                  # ... and the step that came before it
    reason: str
    source: str
    symptom: str

    def __str__(self) -> str:
        return f"{self.id}: {self.after} runs before {self.before}; {self.reason}"


def linear_order(flow, start: str = "main") -> List[str]:
    """The step ids of a flow's success path, calls expanded depth first."""
    out: List[str] = []

    def walk(seq: str, depth: int) -> None:
        if depth > 20:
            return
        for entry in flow.sequences.get(seq, ()):
            if entry.startswith("call:"):
                walk(entry[5:], depth + 1)
            else:
                out.append(entry)
    walk(start, 0)
    return out


def violations(rules: Sequence[Rule], order: Sequence[str]) -> List[RuleViolation]:
    """Rules that `order` (step ids, first to last) breaks."""
    first = {}
    for pos, sid in enumerate(order):
        first.setdefault(sid, pos)
    found = []
    for rule in rules:
        missing = [s for s in rule.before if s not in first]
        if rule.required and missing and all(s in first for s in rule.after):
            found.append(RuleViolation(rule.id, missing[0], rule.after[0], rule.reason,
                                       rule.source, rule.symptom))
            continue
        if missing or not all(s in first for s in rule.after):
            continue
        late_before = max(rule.before, key=lambda s: first[s])
        early_after = min(rule.after, key=lambda s: first[s])
        if first[early_after] < first[late_before]:
            found.append(RuleViolation(rule.id, late_before, early_after, rule.reason,
                                       rule.source, rule.symptom))
    return found
