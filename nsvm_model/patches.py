"""Read a posted patch as a reviewer does: which calls it moves, in which kernel function, and
what that ordering breaks.

    python -m nsvm_model review-patch 0011.patch 0012.patch ...      # a series, in order
    nm.review_patches([text, ...])                                   # the same from Python

A patch is a unified diff against arch/x86/kvm/svm/nested.c (or vmx/nested.c).  Each hunk is
one of three kinds:
- it MOVES a call the model knows (a step or a call to a modelled function): the call leaves
  one place and comes back at another, found by the known calls (or landmarks) around it;
- it CHANGES NO ORDER: every function it touches calls the known functions in the same order
  before and after (a rename, a return type, a comment, an unmodelled function);
- it ADDS CODE THE MODEL CANNOT DERIVE: a new function body, a call with no counterpart.
Moves are replayed on the base ordering with Flow.moved(); where a posting has a hand-built
variant (its source names the patch), that variant is used for the patch's new code.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .engine.fields import quote
from .engine.scenario import Scenario
from .engine.trace import Flow, FlowError

WIDTH = 72
POSTED = Path(__file__).parent / "posted"
FILES = {"arch/x86/kvm/svm/nested.c": "svm", "arch/x86/kvm/vmx/nested.c": "vmx"}

# Kernel calls the model has, as model entries; a dict picks by the function the call sits in.
CALLS = {
    "svm": {
        "enter_guest_mode": "svm.enter.enter_guest_mode",
        "leave_guest_mode": {"nested_svm_vmexit": "svm.exit.leave_guest_mode"},
        "nested_svm_transition_tlb_flush": {"nested_vmcb02_prepare_control": "svm.enter.tlb_flush",
                                            "nested_svm_vmexit": "svm.exit.tlb_flush"},
        "nested_svm_init_mmu_context": "svm.enter.init_mmu_context",
        "nested_svm_uninit_mmu_context": "svm.exit.uninit_mmu_context",
        "nested_svm_merge_msrpm": "svm.vmrun.merge_msrpm",
        "nested_svm_copy_common_state": {"enter_svm_guest_mode": "svm.enter.copy_common_state",
                                         "nested_svm_vmexit": "svm.exit.copy_common_state"},
        "svm_switch_vmcb": {"enter_svm_guest_mode": "svm.enter.switch_vmcb02",
                            "nested_svm_vmexit": "svm.exit.switch_vmcb01"},
        "svm_set_gif": {"enter_svm_guest_mode": "svm.enter.set_gif", "nested_svm_vmexit": "svm.exit.clear_gif"},
        "nested_vmcb02_prepare_control": "call:nested_vmcb02_prepare_control",
        "nested_vmcb02_prepare_save": "call:nested_vmcb02_prepare_save",
        "nested_svm_load_cr3": {"enter_svm_guest_mode": "call:nested_svm_load_cr3",
                                "nested_svm_vmexit": "call:nested_svm_load_cr3(L1)"},
        "nested_vmcb_check_save": "svm.vmrun.check_save",
        "nested_vmcb_check_controls": "svm.vmrun.check_controls",
        "enter_svm_guest_mode": "call:enter_svm_guest_mode",
    },
    "vmx": {
        "enter_guest_mode": "vmx.enter.enter_guest_mode",
        "vmx_switch_vmcs": {"nested_vmx_enter_non_root_mode": "vmx.enter.switch_vmcs02"},
        "prepare_vmcs02_early": "vmx.enter.prepare_vmcs02_early",
        "nested_get_vmcs12_pages": "vmx.enter.get_vmcs12_pages",
        "nested_vmx_check_guest_state": "vmx.enter.check_guest_state",
        "prepare_vmcs02": "call:prepare_vmcs02",
        "nested_vmx_load_msr": "vmx.enter.load_msr",
        "nested_ept_init_mmu_context": "vmx.prep.ept_init_mmu_context",
        "nested_vmx_load_cr3": "call:nested_vmx_load_cr3",
        "nested_vmx_enter_non_root_mode": "call:nested_vmx_enter_non_root_mode",
    },
}

# Source lines that are not calls of ours but pin a place in a modelled function: the request
# for the nested state pages is the RSM half of enter_svm_guest_mode()'s tail, so on the VMRUN
# path anything added before it lands before svm_set_gif(svm, true).
LANDMARKS = {
    "svm": ((re.compile(r"KVM_REQ_GET_NESTED_STATE_PAGES"), {"enter_svm_guest_mode": "svm.enter.set_gif"}),),
    "vmx": (),
}

# Kernel functions -> the model's sequences that hold their steps (a helper the model inlines
# into its caller is listed with it).
SEQUENCES = {
    "svm": {"nested_svm_vmrun": ("main", "nested_svm_copy_vmcb12_to_cache")},
    "vmx": {"nested_vmx_run": ("main",)},
}

CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
DEFINITION = re.compile(r"^[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\([^;]*$")
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")


# --- parsing ------------------------------------------------------------------------------

@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    header: str
    lines: List[Tuple[str, str]] = field(default_factory=list)      # (' ' / '-' / '+', text)

    @property
    def span(self) -> str:
        """The hunk's line range, as its @@ header gives it."""
        end = lambda start, n: start + max(n, 1) - 1
        return (f"lines {self.old_start}-{end(self.old_start, self.old_len)} "
                f"(new {self.new_start}-{end(self.new_start, self.new_len)})")


@dataclass
class Patch:
    name: str
    subject: str
    message_id: str
    path: str
    isa: str
    hunks: List[Hunk]


def parse_patch(text: str, name: str = "patch") -> Patch:
    """A unified diff of one of the two nested.c files; a ValueError naming the file otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected the text of a patch, got {type(text).__name__}")
    subject = _header(text, "Subject")
    message_id = _header(text, "Message-ID").strip("<>")
    paths, hunks, current = [], [], None
    for line in text.splitlines():
        if line.startswith("+++ "):
            paths.append(line[4:].strip().removeprefix("b/"))
            continue
        m = HUNK.match(line)
        if m:
            current = Hunk(int(m.group(1)), int(m.group(2) or 1), int(m.group(3)), int(m.group(4) or 1), m.group(5))
            hunks.append(current)
        elif current is not None and line[:1] in (" ", "-", "+") and not line.startswith(("--- ", "-- ")):
            current.lines.append((line[0], line[1:]))
        elif current is not None and line == "":
            current.lines.append((" ", ""))
    if not hunks or not paths:
        raise ValueError(f"{name}: not a patch (no unified diff hunk found)")
    others = [p for p in paths if p not in FILES]
    if others or len(set(paths)) != 1:
        raise ValueError(f"{name}: a patch for {quote(others[0] if others else ', '.join(sorted(set(paths))))}; "
                         f"review-patch reads one of {', '.join(FILES)}")
    return Patch(name, subject, message_id, paths[0], FILES[paths[0]], hunks)


def _header(text: str, key: str) -> str:
    m = re.search(rf"^{key}:\s*(.+(?:\n[ \t].+)*)", text, re.M | re.I)
    return " ".join(m.group(1).split()) if m else ""


# --- what each hunk does ------------------------------------------------------------------

@dataclass
class Event:
    kind: str            # ' ', '-', '+'
    function: str        # the kernel function the line sits in
    call: str            # the kernel call, or "@entry" for a landmark
    hunk: int


def _code(text: str) -> str:
    s = text.strip()
    return "" if s.startswith(("/*", "*", "//")) else s


def _events(patch: Patch) -> Tuple[List[Event], Dict[int, List[str]]]:
    """Known calls and landmarks, hunk by hunk, and the functions each hunk defines anew."""
    calls, marks = CALLS[patch.isa], LANDMARKS[patch.isa]
    events, defined = [], {}
    for k, h in enumerate(patch.hunks):
        m = CALL.findall(h.header)
        function = m[0] if m else "?"
        for kind, text in h.lines:
            d = DEFINITION.match(text) if text[:1] not in (" ", "\t", "") else None
            if d:
                function = d.group(1)
                if kind in "+-":
                    defined.setdefault(k, []).append(kind + function)
                continue
            code = _code(text)
            for name in CALL.findall(code):
                if name in calls:
                    events.append(Event(kind, function, name, k))
            for pattern, where in marks:
                if pattern.search(code) and function in where:
                    events.append(Event(kind, function, "@" + where[function], k))
    # a definition both removed and added is the same function with a new signature
    gone = {n[1:] for names in defined.values() for n in names if n[0] == "-"}
    new_functions = {k: [n[1:] for n in names if n[0] == "+" and n[1:] not in gone] for k, names in defined.items()}
    return events, {k: names for k, names in new_functions.items() if names}


def entry(isa: str, call: str, function: str) -> Optional[str]:
    """The model entry a call in a function stands for (None: not in that function)."""
    if call.startswith("@"):
        return call[1:]
    target = CALLS[isa][call]
    return target.get(function) if isinstance(target, dict) else target


def sequences_of(isa: str, function: str) -> Tuple[str, ...]:
    return SEQUENCES[isa].get(function, (function,))


@dataclass
class Move:
    call: str
    entry: str
    source: str          # kernel function it leaves
    target: str          # kernel function it joins
    before: Optional[str] = None
    after: Optional[str] = None
    anchor_call: str = ""

    def text(self) -> str:
        where = f"before {self.anchor_call}" if self.before else f"after {self.anchor_call}"
        return f"{self.call}(): {self.source}() -> {self.target}(), {where}"


@dataclass
class PatchReading:
    patch: Patch
    moves: List[Move]
    unchanged: List[str]           # hunks that change no order
    unmodelled: List[str]          # hunks the model cannot derive, said plainly
    hand_built: Optional[Flow] = None


def read_patch(patch: Patch, flow: Flow) -> PatchReading:
    """Classify every hunk and find the moves, against the functions `flow` models."""
    events, defined = _events(patch)
    modelled = lambda fn: any(s in flow.sequences for s in sequences_of(patch.isa, fn))
    old = {fn: [e for e in events if e.function == fn and e.kind != "+"] for fn in {e.function for e in events}}
    new = {fn: [e for e in events if e.function == fn and e.kind != "-"] for fn in old}
    removed = [e for e in events if e.kind == "-" and not e.call.startswith("@")]
    added = []
    for e in (e for e in events if e.kind == "+" and not e.call.startswith("@")):
        same = next((r for r in removed if r.call == e.call and r.function == e.function), None)
        if same is not None and _context(old[e.function], same) == _context(new[e.function], e):
            removed.remove(same)          # rewritten where it was (a new return type, a negation)
            continue
        added.append((e, new[e.function], new[e.function].index(e)))
    moves, unmodelled = [], []
    moved_hunks = set()
    for e, new, pos in reversed(added):     # last first: each anchors on one already in place
        if e.call.startswith("@"):
            continue
        gone = next((r for r in removed if r.call == e.call), None)
        if gone is None or not modelled(e.function):
            if modelled(e.function):
                unmodelled.append(f"hunk {e.hunk + 1} ({patch.hunks[e.hunk].span}): adds a call to "
                                  f"{e.call}() in {e.function}(), which the model cannot derive")
            elif gone is not None and modelled(gone.function) and e.function in sum(defined.values(), []):
                unmodelled.append(f"hunk {e.hunk + 1} ({patch.hunks[e.hunk].span}): moves {e.call}() out of "
                                  f"{gone.function}() into {e.function}(), a new function the model does not have")
            continue
        move = _place(patch.isa, e, gone, new, pos)
        if move is None:
            unmodelled.append(f"hunk {e.hunk + 1} ({patch.hunks[e.hunk].span}): moves {e.call}() within "
                              f"{e.function}() to a place its context does not pin down")
            continue
        moves.append(move)
        moved_hunks |= {e.hunk, gone.hunk}
    for r in removed:
        if not r.call.startswith("@") and modelled(r.function) and not any(a.call == r.call for a, _, _ in added):
            unmodelled.append(f"hunk {r.hunk + 1} ({patch.hunks[r.hunk].span}): drops the call to {r.call}() "
                              f"from {r.function}()")
            moved_hunks.add(r.hunk)
    for k, names in defined.items():
        unmodelled.append(f"hunk {k + 1} ({patch.hunks[k].span}): adds {', '.join(n + '()' for n in names)}, "
                          f"a new function body the model cannot derive")
        moved_hunks.add(k)
    unchanged = [f"hunk {k + 1} ({h.span}) in {(CALL.findall(h.header) or ['?'])[0]}(): changes no order"
                 for k, h in enumerate(patch.hunks) if k not in moved_hunks
                 and not any(e.hunk == k for e in removed) and not any(e.hunk == k for e, _, _ in added)]
    return PatchReading(patch, list(reversed(moves)), unchanged, _dedupe(unmodelled), _hand_built(patch))


def _context(seq: List[Event], e: Event) -> Tuple[str, str]:
    """The nearest unchanged known calls around e: the same pair before and after the patch means
    the call did not move."""
    k = seq.index(e)
    before = next((x.call for x in reversed(seq[:k]) if x.kind == " "), "")
    after = next((x.call for x in seq[k + 1:] if x.kind == " "), "")
    return before, after


def _place(isa: str, e: Event, gone: Event, new: List[Event], pos: int) -> Optional[Move]:
    me = entry(isa, e.call, e.function) or entry(isa, e.call, gone.function)
    if me is None:
        return None
    for neighbour in new[pos + 1:]:
        anchor = entry(isa, neighbour.call, neighbour.function)
        if anchor and anchor != me:
            return Move(e.call, me, gone.function, e.function, before=anchor, anchor_call=_callname(neighbour))
    for neighbour in reversed(new[:pos]):
        anchor = entry(isa, neighbour.call, neighbour.function)
        if anchor and anchor != me:
            return Move(e.call, me, gone.function, e.function, after=anchor, anchor_call=_callname(neighbour))
    return None


def _callname(e: Event) -> str:
    return f"the step {e.call[1:]}" if e.call.startswith("@") else f"{e.call}()"


def _dedupe(items: Sequence[str]) -> List[str]:
    return list(dict.fromkeys(items))


def _hand_built(patch: Patch) -> Optional[Flow]:
    """A variant built by hand for this posting (its source names the patch's subject)."""
    from . import machine_for
    title = re.sub(r"^\[PATCH[^\]]*\]\s*", "", patch.subject)
    if not title:
        return None
    for flow in machine_for(patch.isa).flows.values():
        if title in flow.source and patch.subject.split("]")[0].split()[-1] in flow.source:
            return flow
    return None


# --- the base, the series, and what breaks ------------------------------------------------

def consistent(reading_events: List[Event], isa: str, flow: Flow) -> bool:
    """Does the ordering hold what the patch's context and removed lines show: each known call
    where the hunk says it is?"""
    for e in reading_events:
        if e.kind == "+" or e.call.startswith("@"):
            continue
        seqs = [s for s in sequences_of(isa, e.function) if s in flow.sequences]
        if not seqs:
            continue                      # a function the model does not have: nothing to hold
        me = entry(isa, e.call, e.function)
        if me is None or not any(me in flow.sequences[s] for s in seqs):
            return False
    return True


def find_base(patch: Patch, base: Optional[str] = None) -> Tuple[Flow, List[str]]:
    """The variant the first patch applies to (or `base`), and every variant that also fits."""
    from . import machine_for
    flows = machine_for(patch.isa).flows
    if base is not None:
        if base not in flows:
            raise ValueError(f"--base: unknown {patch.isa} variant {quote(base)} (known: {', '.join(flows)})")
        return flows[base], [base]
    events, _ = _events(patch)
    fits = [name for name, flow in flows.items() if consistent(events, patch.isa, flow)]
    if not fits:
        raise ValueError(f"{patch.name}: its context matches no {patch.isa} variant of the model "
                         f"({', '.join(flows)}); name one with --base")
    return flows[fits[0]], fits


def apply(reading: PatchReading, flow: Flow, name: str) -> Flow:
    """The ordering after the patch: its moves replayed on `flow`; a hand-built variant of the
    posting stands in for what the moves cannot say (new failure paths)."""
    if reading.hand_built is not None:
        return reading.hand_built
    for m in reading.moves:
        try:
            flow = flow.moved(m.entry, before=m.before, after=m.after, name=name)
        except (FlowError, ValueError) as exc:
            raise ValueError(f"{reading.patch.name}: cannot replay {m.text()}: {exc}") from exc
    p = reading.patch
    cite = f"{p.subject} <{p.message_id}>" if p.message_id else (p.subject or p.name)
    return dataclasses.replace(flow, name=name, source=cite,
                               description=f"built by review-patch from {p.name} on {flow.name}")


@dataclass
class PatchVerdict:
    reading: PatchReading
    alone: Flow                      # the base with this patch only
    series: Flow                     # the base with every patch so far
    broken_alone: list
    broken_series: list
    differing: List[str]             # presets whose outcome or final state differ (series vs base)
    verdict: str


def _broken(flow: Flow, base_ids: set) -> list:
    from . import check_order
    return [v for v in check_order(flow) if v.id not in base_ids]


def _differing(base: Flow, flow: Flow) -> List[str]:
    from . import machine_for
    machine = machine_for(flow.isa)
    out = []
    for name in Scenario.presets(flow.isa):
        sc = Scenario.preset(flow.isa, name)
        a, b = machine.run(sc, base), machine.run(sc, flow)
        if a.outcome != b.outcome or dict(a.final) != dict(b.final):
            out.append(name)
    return out


def review_patches(texts: Sequence[str], names: Optional[Sequence[str]] = None,
                   base: Optional[str] = None) -> "SeriesReview":
    """Read a series of patches (texts, in order), replay them on the base, and judge each."""
    if isinstance(texts, str) or not texts:
        raise TypeError("patches: expected a non-empty list of patch texts")
    names = list(names or [f"patch {k + 1}" for k in range(len(texts))])
    patches = [parse_patch(t, n) for t, n in zip(texts, names)]
    isas = {p.isa for p in patches}
    if len(isas) != 1:
        raise ValueError("patches: a series touches one ISA's nested.c; these mix svm and vmx")
    start, fits = find_base(patches[0], base)
    before_ids = base_ids = _rule_ids(start)
    series, verdicts = start, []
    for k, p in enumerate(patches):
        reading = read_patch(p, series)
        alone = apply(read_patch(p, start), start, f"{start.name}+{_short(p)}")
        series = apply(reading, series, f"{start.name}+{'+'.join(_short(q) for q in patches[:k + 1])}")
        broken_alone = _broken(alone, base_ids)
        broken_series = _broken(series, before_ids)       # new on top of the earlier patches
        before_ids = _rule_ids(series)
        differing = _differing(start, series) if (reading.moves or reading.hand_built) else []
        verdicts.append(PatchVerdict(reading, alone, series, broken_alone, broken_series, differing,
                                     _verdict(reading, broken_alone, broken_series, k > 0)))
    return SeriesReview(start, fits, verdicts)


def _rule_ids(flow: Flow) -> set:
    from . import check_order
    return {v.id for v in check_order(flow)}


def _short(p: Patch) -> str:
    m = re.search(r"(\d+)/\d+\]", p.subject)
    return m.group(1) if m else p.name


def _verdict(r: PatchReading, alone: list, series: list, has_earlier: bool) -> str:
    if r.hand_built is not None:
        return (f"harmful ({', '.join(v.id for v in series)}), with the code of the hand-built "
                f"variant {r.hand_built.name}" if series else f"harmless (the hand-built variant {r.hand_built.name})")
    if not r.moves:
        return "not modelled" if r.unmodelled else "changes no order"
    rest = "; the rest not modelled" if r.unmodelled else ""
    if alone and (series or not has_earlier):
        return ("harmful by itself and with the earlier patches" if has_earlier else "harmful by itself") + rest
    if alone:
        return "harmful by itself, harmless on top of the earlier patches (it needs them first)" + rest
    if series:
        return "harmless by itself, harmful on top of the earlier patches" + rest
    return "harmless by itself" + rest


@dataclass
class SeriesReview:
    base: Flow
    fits: List[str]
    patches: List[PatchVerdict]

    def text(self, width: int = WIDTH) -> str:
        wrap = lambda s, ind="  ": textwrap.fill(s, width, initial_indent=ind, subsequent_indent=ind + "  ")
        out = [textwrap.fill(f"Base: {self.base.name} ({self.base.source})", width)]
        if len(self.fits) > 1:
            out.append(wrap(f"(the context also fits {', '.join(f for f in self.fits if f != self.base.name)}; "
                            f"--base picks one)", ""))
        for k, v in enumerate(self.patches):
            p = v.reading.patch
            out += ["", textwrap.fill(f"{p.name}: {p.subject or '(no subject)'}", width,
                                      subsequent_indent="  ")]
            if p.message_id:
                out.append(wrap(f"<{p.message_id}>"))
            for m in v.reading.moves:
                out.append(wrap(f"moves {m.text()}"))
            if v.reading.hand_built is not None:
                out.append(wrap(f"adds code the model has as the variant {v.reading.hand_built.name} "
                                f"({v.reading.hand_built.source}); the series is that variant from here"))
            for u in v.reading.unmodelled:
                out.append(wrap(u))
            for u in v.reading.unchanged:
                out.append(wrap(u))
            self._rules(out, wrap, "breaks by itself (on the base alone):", v.broken_alone)
            if k > 0 and (v.reading.moves or v.reading.hand_built):
                self._rules(out, wrap, "breaks on top of the earlier patches:", v.broken_series,
                            "on top of the earlier patches it breaks no further rule")
            if v.differing:
                shown = ", ".join(v.differing[:8]) + (f" and {len(v.differing) - 8} more" if len(v.differing) > 8 else "")
                out.append(wrap(f"presets whose outcome or final state differ from {self.base.name}: {shown}"))
            out.append(wrap(f"verdict: {v.verdict}"))
        return "\n".join(out)

    def summary(self, width: int = WIDTH) -> str:
        """One short paragraph per patch: what it moves, which rules break, the verdict."""
        out = []
        for k, v in enumerate(self.patches):
            r = v.reading
            did = ([f"moves {m.call}() into {m.target}()" for m in r.moves[:3]]
                   + ([f"and {len(r.moves) - 3} more"] if len(r.moves) > 3 else [])
                   or ["moves no known call"])
            if r.hand_built is not None:
                did.append(f"new code = variant {r.hand_built.name}")
            ids = lambda vs: ", ".join(x.id for x in vs) or "none"
            text = (f"{_short(r.patch)}: {'; '.join(did)}. Breaks by itself: {ids(v.broken_alone)}"
                    + (f"; newly on top of the earlier ones: {ids(v.broken_series)}" if k else "")
                    + f". Verdict: {v.verdict}.")
            out.append(textwrap.fill(text, width, subsequent_indent="    "))
        return "\n".join(out)

    @staticmethod
    def _rules(out, wrap, title, broken, none=""):
        if not broken:
            if none:
                out.append(wrap(none))
            return
        out.append(wrap(title))
        for r in broken:
            out.append(wrap(f"{r.id}: {r.after} runs before {r.before}. {r.reason}. "
                            f"Symptom: {r.symptom}. Source: {r.source}", "    "))


def posted_series(version: str = "v6") -> List[Tuple[str, str]]:
    """The posted patches the package carries (nsvm_model/posted/), as (file name, text), in order:
    v6 11-16 of "Nested SVM fixes, cleanups, and hardening", each with its Message-ID."""
    files = sorted(POSTED.glob(f"{version}-*.patch"))
    if not files:
        raise ValueError(f"version: no posted series {quote(version)} (there is: v6)")
    return [(f.name, f.read_text()) for f in files]


def posted_variants(version: str = "v6", base: str = "pre-gif-fix") -> Dict[str, Flow]:
    """The series as orderings: after each posted patch (cumulative), named like the file
    ("v6-11" ... "v6-16"), each citing its posting; built from the posted text."""
    names, texts = zip(*posted_series(version))
    review = review_patches(texts, names, base=base)
    return {v.reading.patch.name.removesuffix(".patch"): v.series for v in review.patches}
