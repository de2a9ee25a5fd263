"""Plain-text views of a trace: for a terminal, a notebook cell or a mail reply."""

from __future__ import annotations

import textwrap


def show_value(value) -> str:
    """A state value as a reader wants it: hex for numbers, sorted names for sets."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        if value == (1 << 64) - 1:
            return "0xffffffffffffffff (-1)"
        return str(value) if value < 10 else hex(value)
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}" if value else "{}"
    if isinstance(value, tuple):
        return "(" + ", ".join(show_value(v) for v in value) + ")"
    return str(value)


WIDTH = 72
FAILED_MARK = ">>"


def wrap(text: str, width: int = WIDTH, first: str = "", rest: str = "") -> list:
    """Lines of at most `width` columns; long words (paths, sets) break too."""
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def format_step(s, max_changes: int = 4, width: int = WIDTH, decided: bool = False) -> str:
    """One step: number (1-based), phase, kernel function first, then its id, changes and notes."""
    mark = FAILED_MARK if decided else "  "
    label = f" -> {s.label}" if s.label else ""
    head = f"{mark}{s.index + 1:>3} {s.phase:>3} {s.function}(){label}"
    lines = wrap(head, width, rest=" " * 10)
    lines += wrap(s.id, width, " " * 10, " " * 10)
    changes = [f"{p}: {show_value(a)} -> {show_value(b)}" for p, a, b in s.diff]
    for c in changes[:max_changes]:
        lines += wrap(c, width, " " * 10 + "= ", " " * 12)
    if len(changes) > max_changes:
        lines.append(" " * 10 + f"(+{len(changes) - max_changes} more changes)")
    for n in s.notes:
        lines += wrap(n, width, " " * 10 + "# ", " " * 12)
    return "\n".join(lines)


def format_trace(trace, max_changes: int = 4, width: int = WIDTH) -> str:
    """Every step with its phase, kernel function, what it changed and what it found, in
    `width` columns; ">>" marks the step that decided a failed run."""
    title = (f"{trace.isa} {trace.variant}: scenario {trace.scenario.name} -> {trace.outcome}"
             + (f" ({trace.failure})" if trace.failure else ""))
    decided = trace.failing_step
    legend = wrap(f"{len(trace.steps)} steps, numbered from 1; P1..P15 are the phases of "
                  "nm.PHASES; = a value the step changed; # what it found"
                  + ("; >> the step that decided the outcome" if decided is not None else ""), width)
    head = wrap(title, width)
    return "\n".join(head + ["=" * min(width, max(map(len, head)))] + legend + [""]
                     + [format_step(s, max_changes, width, s.index == decided) for s in trace.steps])


def describe_step(isa: str, step_id: str) -> str:
    """A step for prose: its kernel function first, then its id."""
    from . import machine_for
    step = machine_for(isa).steps.get(step_id)
    return f"{step.function}() [{step_id}]" if step else step_id


def format_rule_violation(v, isa: str, width: int = WIDTH) -> str:
    """A broken ordering rule for a mail reply: what runs too early, why it must not, what shows."""
    lines = wrap(f"{v.id}: {describe_step(isa, v.after)} runs before {describe_step(isa, v.before)}",
                 width, rest="    ")
    lines += wrap(f"why: {v.reason}", width, "    ", "      ")
    lines += wrap(f"symptom: {v.symptom}", width, "    ", "      ")
    lines += wrap(f"source: {v.source}", width, "    ", "      ")
    return "\n".join(lines)


CONFIDENCE = {"V": "verified in the kernel code at the pinned commit",
              "I": "inferred from the code; the reason is not written in the kernel"}


def format_rule(rule, width: int = WIDTH) -> str:
    """One ordering rule, explained, in `width` columns."""
    before = ", ".join(describe_step(rule.isa, s) for s in rule.before)
    after = ", ".join(describe_step(rule.isa, s) for s in rule.after)
    lines = wrap(f"{rule.id}: {before} must run before {after}", width, rest="    ")
    lines += wrap(f"why: {rule.reason}", width, "    ", "      ")
    lines += wrap(f"when broken: {rule.symptom}", width, "    ", "      ")
    lines += wrap(f"source: {rule.source}", width, "    ", "      ")
    lines += wrap(f"[{rule.confidence}] {CONFIDENCE.get(rule.confidence, '')}", width, "    ", "      ")
    if rule.required:
        lines += wrap("also broken when the first steps never run at all", width, "    ", "      ")
    return "\n".join(lines)
