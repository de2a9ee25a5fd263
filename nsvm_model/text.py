"""Plain-text views of a trace: for a terminal, a notebook cell or a mail reply."""

from __future__ import annotations


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


def format_step(s, max_changes: int = 4) -> str:
    changes = [f"{p}: {show_value(a)} -> {show_value(b)}" for p, a, b in s.diff]
    more = f" (+{len(changes) - max_changes} more)" if len(changes) > max_changes else ""
    head = f"{s.index:3d} {s.phase:>3} {s.id:<40} {s.function}()"
    lines = [head]
    lines += [f"{'':8}= {c}" for c in changes[:max_changes]]
    if more:
        lines[-1] += more
    lines += [f"{'':8}# {n}" for n in s.notes]
    return "\n".join(lines)


def format_trace(trace, max_changes: int = 4) -> str:
    """Every step with its phase, kernel function, what it changed and what it found."""
    title = (f"{trace.isa} {trace.variant}: scenario {trace.scenario.name} -> {trace.outcome}"
             + (f" ({trace.failure})" if trace.failure else ""))
    return "\n".join([title, "=" * len(title)] + [format_step(s, max_changes) for s in trace.steps])
