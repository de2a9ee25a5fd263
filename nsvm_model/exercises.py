"""Predict, commit, then check: exercises whose answers come from running the model.

    q = exercises.state_at(nm.Scenario.preset("svm", "teaching"), "svm.enter.switch_vmcb02",
                           ["svm.current_vmcb", "vcpu.guest_mode", "vcpu.arch.cr3"])
    q                           # the question and a template to fill in; never the answer
    q.check(...)                # "type your answer": Run All grades nothing
    q.check({"svm.current_vmcb": "vmcb02", "vcpu.guest_mode": False, "vcpu.arch.cr3": 0x100000})
    q.reveal()                  # the answer, when the learner asks for it

A question is pinned by its kind and parameters, so a notebook asks exactly what
its lesson meant.  Every answer and every explanation is read off a trace: the
feedback names the step that decides each item, and ``widgets.explore(q)`` opens
the explorer there.  The seeded generators at the end (``which_vmcb(seed=3)``)
draw parameters from a table, as the OSTEP simulators' ``-s SEED`` does, for
practice beyond the lesson.
"""

from __future__ import annotations

import collections
import difflib
import html
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import machine_for, run
from .engine.fields import parse_bool, parse_int_expression, quote
from .engine.scenario import Scenario
from .engine.trace import Trace
from .phases import PHASES
from .review import check_order, move
from .text import show_value

PLACEHOLDER = ...
OUTCOMES = {
    "svm": ("l2_runs", "vmexit_invalid", "l1_gp", "l1_ud", "userspace_exit", "shutdown"),
    "vmx": ("l2_runs", "vmfail_invalid", "vmfail_valid:4", "vmfail_valid:5", "vmfail_valid:7",
            "vmfail_valid:8", "vmfail_valid:26", "vmexit:33", "vmexit:34", "l1_gp", "l1_ud",
            "userspace_exit", "shutdown"),
}
# Words a learner may answer with, for the paths whose values are names.
NAMED_VALUES = {
    "svm.current_vmcb": ("vmcb01", "vmcb02"), "vmx.current_vmcs": ("vmcs01", "vmcs02"),
    "vcpu.arch.mmu": ("root_mmu", "guest_mmu"),
    "svm.gif_location": ("vmcb01.control.int_ctl", "vmcb02.control.int_ctl", "svm->guest_gif"),
}
MASK64 = (1 << 64) - 1


# --- feedback ------------------------------------------------------------------------

@dataclass
class ItemResult:
    name: str
    given: Any
    right: Any
    ok: Optional[bool]              # None: not answered
    why: str


@dataclass
class Feedback:
    """A verdict (correct True/False), or no verdict at all (None: nothing to grade yet)."""
    correct: Optional[bool]
    message: str
    items: List[ItemResult] = field(default_factory=list)
    step_index: Optional[int] = None

    @property
    def score(self) -> Tuple[int, int]:
        graded = [i for i in self.items if i.ok is not None]
        return sum(bool(i.ok) for i in graded), len(self.items)

    def __repr__(self) -> str:
        mark = {True: "✓ ", False: "✗ ", None: "… "}[self.correct]
        lines = [mark + self.message]
        for i in self.items:
            tick = {True: "✓", False: "✗", None: "·"}[i.ok]
            lines.append(f"  {tick} {i.name}: {i.why}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        color = {True: "#009E73", False: "#D55E00", None: "#0072B2"}[self.correct]
        mark = {True: "✓ Right.", False: "✗ Not quite.", None: ""}[self.correct]
        rows = "".join(f"<li>{ {True: '✓', False: '✗', None: '·'}[i.ok]} <code>{html.escape(i.name)}</code>: "
                       f"{html.escape(i.why)}</li>" for i in self.items)
        # every piece of text may quote the learner's answer: it is text, never markup
        return (f'<div style="border-left:4px solid {color};padding:4px 8px"><b>{mark}</b> '
                f'{html.escape(self.message)}{"<ul>" + rows + "</ul>" if rows else ""}</div>')


# --- one item of a question ----------------------------------------------------------------

@dataclass
class Item:
    """One thing to predict: its right value, how to read an answer, why it is so."""
    name: str
    right: Any
    read: Callable[[Any], Any]
    why: Callable[[], str]
    step_index: Optional[int] = None     # the step that decides it
    hint: str = ""

    def grade(self, answer) -> ItemResult:
        if answer is PLACEHOLDER:
            return ItemResult(self.name, answer, self.right, None, "not answered yet")
        try:
            given = self.read(answer)
        except Exception:                # any odd answer is a wrong answer, never an exception
            return ItemResult(self.name, answer, self.right, False,
                              f"{quote(answer)} is not an answer here ({self.hint}); {self.explained()}")
        ok = _same(given, self.right)
        said = "" if ok else f"you said {_said(given)}; "
        return ItemResult(self.name, given, self.right, ok, said + self.explained())

    def explained(self) -> str:
        """The right value and the reason for it, read off the trace."""
        return f"it is {_said(self.right)}: {self.why()}"


def _same(given, right) -> bool:
    """Equal and of the same kind: False == 0 in Python, but False is no answer to "which number?"."""
    if isinstance(given, bool) or isinstance(right, bool):
        return type(given) is type(right) and given == right
    if isinstance(right, int):
        return isinstance(given, int) and (given & MASK64) == (right & MASK64)
    if isinstance(right, str):
        return isinstance(given, str) and given.casefold() == right.casefold()
    return given == right


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _said(given) -> str:
    try:
        return _clip(show_value(given))
    except Exception:                    # show_value() of a huge negative int hits the digit limit
        return quote(given)


# --- readers: an answer in the form the right value has --------------------------------------

def reader_for(value, constants=None, choices: Sequence[str] = ()) -> Tuple[Callable, str]:
    """(read, hint): how to read a learner's answer for a value like `value`."""
    if isinstance(value, bool):
        return (lambda a: parse_bool(a, "answer")), "yes/no or True/False"
    if isinstance(value, int):
        def read_int(a):
            if isinstance(a, bool):
                raise TypeError("a yes/no answer is not a number")
            if isinstance(a, int):
                return a
            if isinstance(a, str):
                return parse_int_expression(a, constants or {}, "answer")
            raise TypeError("expected a number")
        return read_int, "a number, e.g. 0x7a3000"
    if isinstance(value, frozenset):
        def read_set(a):
            names = a.replace(",", "|").split("|") if isinstance(a, str) else list(a)
            return frozenset(n.strip() for n in names if n.strip())
        return read_set, "a set of names"

    def read_text(a):
        if not isinstance(a, str):
            raise TypeError("expected text")
        return a.strip()
    return read_text, ("one of " + ", ".join(choices)) if choices else "text"


# --- a question -------------------------------------------------------------------------------

@dataclass
class Question:
    kind: str
    prompt: str                          # plain text; escaped when shown
    items: List[Item]
    trace: Trace                         # the run that decides the answer
    step_index: int                      # the step a learner should look at afterwards
    focus: List[str]                     # the state rows that matter
    choices: Dict[str, Sequence[str]] = field(default_factory=dict)
    details: List[str] = field(default_factory=list)   # lines shown under the prompt (choices, steps)
    answer_form: str = ""                # how to write the answer in q.check(...)

    def __post_init__(self):
        ASKED.append(self)               # so a notebook's questions can be checked after Run All

    @property
    def single(self) -> bool:
        return len(self.items) == 1 and self.items[0].name == "answer"

    def template(self) -> str:
        if self.answer_form:
            return self.answer_form
        if self.single:
            return ".check(...)   # replace ... with your answer"
        body = ", ".join(f'"{i.name}": ...' for i in self.items)
        return ".check({" + body + "})"

    def __repr__(self) -> str:
        lines = [f"Predict: {self.prompt}"] + [f"  {d}" for d in self.details]
        for i in self.items:
            if not self.single:
                lines.append(f"  - {i.name} ({i.hint})")
        if self.single and self.items[0].hint:
            lines.append(f"  Answer with {self.items[0].hint}.")
        lines.append(f"Answer in the check cell: {self.template()}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        details = "".join(f"<div>{esc(d)}</div>" for d in self.details)
        items = "" if self.single else "<ul>" + "".join(
            f"<li><code>{esc(i.name)}</code> <i>({esc(i.hint)})</i></li>" for i in self.items) + "</ul>"
        hint = f"<div><i>Answer with {esc(self.items[0].hint)}.</i></div>" if self.single and self.items[0].hint else ""
        return (f'<div style="border-left:4px solid #0072B2;padding:4px 8px"><b>Predict:</b> {esc(self.prompt)}'
                f'{details}{items}{hint}<div>Then put your answer in the check cell below, '
                f'<code>{esc(self.template())}</code>, in place of each <code>...</code>.</div></div>')

    def check(self, answer=PLACEHOLDER) -> Feedback:
        """Grade an answer item by item; `...` (the notebook's placeholder) grades nothing."""
        answers = self._by_item(answer)
        if answers is None:
            return Feedback(None, f"Type your answer in place of ..., then run the cell again: {self.template()}. "
                                  "Stuck? .reveal() on the question shows the answer.")
        if isinstance(answers, Feedback):
            return answers
        results = [item.grade(answers.get(item.name, PLACEHOLDER)) for item in self.items]
        if all(r.ok is None for r in results):
            return Feedback(None, f"Type your answer in place of each ..., then run the cell again: "
                                  f"{self.template()}. Stuck? .reveal() on the question shows the answer.")
        good, total = sum(bool(r.ok) for r in results), len(results)
        first_wrong = next((it for it, r in zip(self.items, results) if r.ok is False), None)
        step = first_wrong.step_index if first_wrong and first_wrong.step_index is not None else self.step_index
        where = self._see_step(step)
        if self.single:
            r = results[0]
            return Feedback(bool(r.ok), r.why + where, [], step)
        return Feedback(good == total, f"{good} of {total} right." + where, results, step)

    def reveal(self) -> Feedback:
        """The answer and the reasons, when the learner asks for them."""
        results = [ItemResult(i.name, None, i.right, None, i.explained()) for i in self.items]
        return Feedback(None, "The answer." + self._see_step(self.step_index), results, self.step_index)

    # -- helpers --
    def _by_item(self, answer):
        if answer is PLACEHOLDER:
            return None
        if self.single:
            return {"answer": answer}
        if not isinstance(answer, dict):
            names = ", ".join(i.name for i in self.items)
            return Feedback(False, f"This question has several items: answer with a dict of {names}, "
                                   f"as in {self.template()}.")
        unknown = [k for k in answer if not isinstance(k, str) or k not in {i.name for i in self.items}]
        if unknown:
            return Feedback(False, f"{quote(unknown[0])} is not one of this question's items "
                                   f"({', '.join(i.name for i in self.items)}).")
        return answer

    def _see_step(self, index: Optional[int]) -> str:
        if index is None:
            return ""
        s = self.trace.steps[index]
        return (f" Decided at step {index + 1}: {s.function}() ({s.id}); explore() on the question "
                f"opens the explorer there.")


ASKED: "collections.deque[Question]" = collections.deque(maxlen=500)


def wrong_value(value):
    """A value of the same kind that is not the right one (for self_check)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value ^ 0x1000
    if isinstance(value, frozenset):
        return value ^ {"VMRUN"}
    return "ZZZZ" if value.isupper() else "vmcb03"


def self_check(questions=None) -> List[str]:
    """Grade each question with its own right answer and with a wrong one; list what misbehaves."""
    problems = []
    for q in list(ASKED if questions is None else questions):
        right = {i.name: i.right for i in q.items}
        wrong = {i.name: wrong_value(i.right) for i in q.items}
        if q.single:
            right, wrong = right["answer"], wrong["answer"]
        if q.check(right).correct is not True:
            problems.append(f"{q.kind}: the right answer is not accepted: {q.prompt[:80]}")
        if q.check(wrong).correct is not False:
            problems.append(f"{q.kind}: a wrong answer is accepted: {q.prompt[:80]}")
        if q.check(...).correct is not None:
            problems.append(f"{q.kind}: the placeholder is graded: {q.prompt[:80]}")
    return problems


# --- checking a question's parameters ----------------------------------------------------------

def _scenario(scenario) -> Scenario:
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected a Scenario such as nm.Scenario.preset('svm', 'teaching'), "
                        f"got {type(scenario).__name__} {quote(scenario)}")
    return scenario


def _step_index(trace: Trace, at) -> int:
    if isinstance(at, int) and not isinstance(at, bool):
        if not 0 <= at < len(trace.steps):
            raise ValueError(f"at: step {at} is outside this run (0 to {len(trace.steps) - 1})")
        return at
    if isinstance(at, str):
        if at in trace.step_ids:
            return trace.index_of(at)
        close = difflib.get_close_matches(at, trace.step_ids, n=3)
        raise ValueError(f"at: {quote(at)} is not a step of this run"
                         + (f"; did you mean {', '.join(close)}?" if close else ""))
    raise TypeError(f"at: expected a step id or index, got {type(at).__name__} {quote(at)}")


def _paths(trace: Trace, items) -> List[str]:
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(p, str) for p in items):
        raise TypeError(f"items: expected a list of state paths such as ['svm.current_vmcb', 'vcpu.gif'], "
                        f"got {quote(items)}")
    for p in items:
        if p not in trace.final:
            close = difflib.get_close_matches(p, trace.final, n=3)
            raise ValueError(f"items: {quote(p)} is not a state path of this run"
                             + (f"; did you mean {', '.join(close)}?" if close else ""))
    return list(items)


# --- what decides a value -------------------------------------------------------------------------

def last_writer(trace: Trace, path: str, upto: int) -> Optional[int]:
    """The last step at or before `upto` that wrote `path`, or None (the value is the initial one)."""
    for s in reversed(trace.steps[:upto + 1]):
        if path in s.written:
            return s.index
    return None


def deciding_step(trace: Trace) -> int:
    """The step that sent the run where it ended: the failing check, else the last step."""
    failing = trace.failing_step
    return len(trace.steps) - 1 if failing is None else failing


ONE_BIT = {"vcpu.gif", "svm.guest_gif"}


def _state_item(trace: Trace, path: str, upto: int) -> Item:
    value = trace.steps[upto].state[path]
    read, hint = reader_for(value, trace.machine.constants, NAMED_VALUES.get(path, ()))
    hint = "0 or 1" if path in ONE_BIT else hint
    writer = last_writer(trace, path, upto)

    def why() -> str:
        if writer is None:
            return f"no step up to {upto + 1} wrote it, so it still holds its value from before VMRUN."
        s = trace.steps[writer]
        same = " (the same value it had)" if path not in s.changed else ""
        return f"step {writer + 1}, {s.function}() ({s.id}), wrote it{same}."
    return Item(path, value, read, why, writer, hint)


def _outcome_item(trace: Trace) -> Item:
    decider = deciding_step(trace)
    choices = OUTCOMES[trace.isa]
    read, _ = reader_for("", choices=choices)

    def why() -> str:
        s = trace.steps[decider]
        notes = "; ".join(s.notes[:2])
        article = "an" if (trace.failure or "x")[0] in "aeiou" else "a"
        failure = f"{article} {trace.failure} failure: " if trace.failure else ""
        if trace.outcome == "l2_runs":
            return f"every check passed and step {decider + 1}, {s.function}(), runs L2."
        return (f"{failure}step {decider + 1}, {s.function}() ({s.id}), "
                f"took the '{s.label}' branch" + (f": {notes}" if notes else "") + ".")
    return Item("outcome", trace.outcome, read, why, decider, "one of " + ", ".join(choices))


def _scenario_text(scenario: Scenario, variant: str) -> str:
    flow = "" if variant == "upstream" else f" under the {variant} ordering"
    return f"scenario {scenario.name} ({scenario.isa}){flow}"


def _as_single(q_items: List[Item]) -> List[Item]:
    item = q_items[0]
    return [Item("answer", item.right, item.read, item.why, item.step_index, item.hint)]


# --- the kinds ------------------------------------------------------------------------------------

def state_at(scenario: Scenario, at, items: Sequence[str], variant: str = "upstream") -> Question:
    """Freeze the run after step `at` and predict several state items, graded one by one."""
    trace = run(_scenario(scenario), variant)
    k = _step_index(trace, at)
    paths = _paths(trace, items)
    s = trace.steps[k]
    its = [_state_item(trace, p, k) for p in paths]
    prompt = (f"In {_scenario_text(scenario, variant)}, freeze the run right after step {k + 1}, "
              f"{s.function}() ({s.id}). What does each item hold?")
    if len(its) == 1:
        prompt = prompt.replace("What does each item hold?", f"What is {paths[0]}?")
        its = _as_single(its)
    return Question("state_at", prompt, its, trace, k, paths)


def outcome(scenario: Scenario, items: Sequence[str] = (), variant: str = "upstream") -> Question:
    """Predict how the run ends and, item by item, the exact state it leaves."""
    trace = run(_scenario(scenario), variant)
    last = len(trace.steps) - 1
    paths = _paths(trace, items) if items else []
    its = [_outcome_item(trace)] + [_state_item(trace, p, last) for p in paths]
    prompt = (f"Run {_scenario_text(scenario, variant)}: {scenario.description}. How does it end"
              + (", and what state does it leave?" if paths else "?"))
    if not paths:
        its = _as_single(its)
    return Question("outcome", prompt, its, trace, deciding_step(trace), ["vcpu.guest_mode"] + paths)


LETTERS = "ABCDEFGHIJ"


def kernel_order(scenario: Scenario, steps: Sequence[str], seed: int = 0) -> Question:
    """Put these steps in the order KVM runs them (answer with the letters, e.g. "CADB")."""
    trace = run(_scenario(scenario))
    if not isinstance(steps, (list, tuple)) or not 2 <= len(steps) <= len(LETTERS):
        raise TypeError(f"steps: expected a list of 2 to {len(LETTERS)} step ids, got {quote(steps)}")
    index = {sid: _step_index(trace, sid) for sid in steps}
    right = sorted(steps, key=index.get)
    shown = list(steps)
    random.Random(seed).shuffle(shown)
    if shown == right:                    # never show the answer as the question
        shown = shown[1:] + shown[:1]
    letter = {sid: LETTERS[i] for i, sid in enumerate(shown)}
    answer = "".join(letter[sid] for sid in right)
    rules = trace.machine.rules

    def read(a):
        seq = list(a) if isinstance(a, (list, tuple)) else list(str(a).replace(",", "").replace(" ", "").upper())
        seq = [letter.get(x, x) if isinstance(x, str) and x in letter else str(x).upper() for x in seq]
        if sorted(seq) != sorted(answer):
            raise ValueError("use each letter once")
        return "".join(seq)

    def why() -> str:
        parts = []
        for a, b in zip(right, right[1:]):
            rule = next((r for r in rules if a in r.before and b in r.after), None)
            because = f" ({rule.id}: {rule.reason})" if rule else ""
            parts.append(f"{letter[a]} {trace.steps[index[a]].function}() before {letter[b]} "
                         f"{trace.steps[index[b]].function}(){because}")
        return "; ".join(parts) + "."
    details = [f"{letter[sid]}. {_describe(trace.steps[index[sid]])}" for sid in shown]
    item = Item("answer", answer, read, why, index[right[0]], f"the {len(steps)} letters in kernel order")
    return Question("kernel_order", f"In {_scenario_text(scenario, 'upstream')}, put these steps in the order "
                    "KVM runs them.", [item], trace, index[right[0]], [], details=details,
                    answer_form='.check("...")   # the letters in order, e.g. "' + "".join(sorted(answer)) + '"')


def _describe(s) -> str:
    """A step for a list: its function and what it does, said once."""
    if s.title.startswith(s.function + "("):    # the title already names the call
        return f"{s.title} ({s.id})"
    return f"{s.function}(): {s.title} ({s.id})"


def pick_reason(isa: str, rule_id: str, distractors: Sequence[str], seed: int = 0) -> Question:
    """Why must A precede B?  The wrong choices are the reasons of other real rules."""
    rules = {r.id: r for r in machine_for(isa).rules}
    for rid in [rule_id, *distractors]:
        if rid not in rules:
            raise ValueError(f"rule: unknown {isa} rule {quote(rid)} (known: {', '.join(rules)})")
    rule = rules[rule_id]
    options = [rule_id, *distractors]
    random.Random(seed).shuffle(options)
    letter = {rid: LETTERS[i] for i, rid in enumerate(options)}
    trace = run(Scenario.preset(isa, "teaching"))
    before, after = rule.before[0], rule.after[0]
    k = trace.index_of(after) if after in trace.step_ids else len(trace.steps) - 1
    read, _ = reader_for("", choices=tuple(letter.values()))

    def why() -> str:
        return (f"{rule.reason}. When it is broken: {rule.symptom}. "
                f"Source: {rule.source}. {_moved_run(isa, before, after)}")
    details = [f"{letter[rid]}. {rules[rid].reason}" for rid in options]
    item = Item("answer", letter[rule_id], lambda a: read(a).upper(), why, k, "one letter")
    return Question("pick_reason", f"Why must {before} run before {after}?", [item], trace, k,
                    [], details=details)


def _moved_run(isa: str, before: str, after: str) -> str:
    """Run the reordering that breaks the rule, to show what happens."""
    try:
        flow = move(after, before=before, isa=isa, name=f"{after.split('.')[-1]} first")
        t = run(Scenario.preset(isa, "teaching"), flow)
    except ValueError:
        return ""
    broken = ", ".join(v.id for v in check_order(flow, scenario=Scenario.preset(isa, "teaching"))) or "none"
    return f"Moved first, the run ends {t.outcome} and breaks {broken}."


def which_breaks(scenario: Scenario, rule_id: str, choices: Sequence[str]) -> Question:
    """Which of these real orderings breaks the rule?  The feedback runs every one of them."""
    sc = _scenario(scenario)
    if not isinstance(choices, (list, tuple)) or len(choices) < 2:
        raise TypeError(f"choices: expected a list of at least two variant names, got {quote(choices)}")
    breaking = [c for c in choices if rule_id in {v.id for v in check_order(c, isa=sc.isa, scenario=sc)}]
    if len(breaking) != 1:
        raise ValueError(f"choices: exactly one of {', '.join(choices)} must break {rule_id}; "
                         f"{len(breaking)} do ({', '.join(breaking) or 'none'})")
    rule = next(r for r in machine_for(sc.isa).rules if r.id == rule_id)
    runs = {c: run(sc, c) for c in choices}
    base = run(sc)
    read, _ = reader_for("", choices=tuple(choices))

    def why() -> str:
        lines = []
        for c in choices:
            t = runs[c]
            broken = [v.id for v in check_order(c, isa=sc.isa, scenario=sc)]
            differ = [p for p in t.final if p in base.final and t.final[p] != base.final[p] and ".local." not in p]
            lines.append(f"{c}: ends {t.outcome} in {len(t.steps)} steps, breaks {', '.join(broken) or 'no rule'}, "
                         f"{len(differ)} final fields differ from upstream")
        return (f"it breaks {rule_id} ({rule.reason}; symptom: {rule.symptom}). "
                + " | ".join(lines))
    t = runs[breaking[0]]
    k = next((s.index for s in t.steps if s.id in rule.after), len(t.steps) - 1)
    item = Item("answer", breaking[0], read, why, None, "one of " + ", ".join(choices))
    q = Question("which_breaks", f"On {sc.name}, which of these orderings breaks {rule_id}: "
                 f"{', '.join(rule.before)} must precede {', '.join(rule.after)}?",
                 [item], t, k, [])
    return q


# --- seeded practice: parameters drawn from a table, the same kinds underneath --------------------

def _teaching(isa: str, changes: Optional[dict] = None) -> Scenario:
    sc = Scenario.preset(isa, "teaching")
    return sc.with_fields(changes) if changes else sc


def which_vmcb(seed: int = 0) -> Question:
    """After a random step of a random run: which VMCB is current?"""
    rng = random.Random(seed)
    sc = Scenario.preset("svm", rng.choice(["teaching", "round_trip", "shadow_paging", "msrpm_unbacked",
                                            "pae_bad_pdpte"]))
    k = rng.randrange(len(run(sc).steps))
    return state_at(sc, k, ["svm.current_vmcb"])


def cr3_after_step(seed: int = 0) -> Question:
    """After one of nested_svm_load_cr3()'s steps: what is vcpu.arch.cr3?"""
    rng = random.Random(seed)
    sc = Scenario.preset("svm", rng.choice(["teaching", "shadow_paging", "pae_shadow", "round_trip"]))
    sc = sc.with_fields({"vmcb12.save.cr3": rng.choice([0x7A3000, 0x700000, 0x12345000])})
    trace = run(sc)
    ks = [s.index for s in trace.steps if s.function == "nested_svm_load_cr3"]
    return state_at(sc, rng.choice(ks), ["vcpu.arch.cr3"])


MUTATIONS = [
    ("vmcb12.control.asid", 0), ("vmcb12.control.asid", 9),
    ("vmcb12.save.efer", 0x0500), ("vmcb12.save.efer", 0x1500 | 1 << 15),
    ("vmcb12.save.cr0", 0x80000031 | 1 << 29), ("vmcb12.save.cr0", 0x80000031 | 3 << 29),
    ("vmcb12.save.cs.attrib", 0xA99 | 1 << 10), ("vmcb12.save.dr7", 0x400 | 1 << 32),
    ("vmcb12.control.event_inj", 0x80000302), ("vmcb12.control.event_inj", 0x8000030E),
    ("vmcb12.control.intercepts", frozenset({"VMMCALL"})), ("vmcb12.save.cr4", 0x6A0 | 1 << 14),
    ("vmcb12.control.nested_cr3", 1 << 50), ("vmcb12.control.iopm_base_pa", (1 << 48) - 0x2000),
    ("vmcb12.save.cr3", 0x7A3000 | 1 << 0), ("vmcb12.save.es.base", 0xAAAA000000000000),
]


def does_vmcb12_pass(seed: int = 0) -> Question:
    """One field of the teaching vmcb12 changed: how does VMRUN end?"""
    path, value = random.Random(seed).choice(MUTATIONS)
    sc = _teaching("svm", {path: value})
    return outcome(sc.with_fields({}, name=f"teaching with {path} = {show_value(value)}",
                                  description=f"the teaching vmcb12 with {path} = {show_value(value)}"))


MOVES = [
    ("call:nested_svm_load_cr3", "before", "call:nested_vmcb02_prepare_save"),
    ("svm.enter.enter_guest_mode", "after", "svm.enter.init_mmu_context"),
    ("svm.vmrun.merge_msrpm", "before", "svm.enter.switch_vmcb02"),
    ("svm.enter.set_gif", "before", "svm.enter.prepare_control.int_ctl"),
    ("svm.vmrun.skip_instruction", "before", "svm.vmrun.check_rax"),
    ("svm.exit.clear_gif", "before", "svm.exit.switch_vmcb01"),
    ("svm.exit.single_step_db", "before", "svm.exit.drop_events"),
]


def which_rule(seed: int = 0) -> Question:
    """Move one step: which ordering rule breaks first?"""
    step, where, anchor = random.Random(seed).choice(MOVES)
    flow = move(step, **{where: anchor}, isa="svm")
    found = check_order(flow)
    trace = run(_teaching("svm"), flow)
    v = found[0]
    k = next((s.index for s in trace.steps if s.id == v.after), len(trace.steps) - 1)

    def why() -> str:
        more = f" (it also breaks {', '.join(x.id for x in found[1:])})" if len(found) > 1 else ""
        return f"{v.before} must come first because {v.reason}. Symptom: {v.symptom}{more}."
    item = Item("answer", v.id, lambda a: str(a).strip().upper(), why, k, "a rule id such as R7")
    return Question("which_rule", f"Move {step} {where} {anchor}. Which ordering rule breaks first? "
                    "(nm.explain('R7') shows any rule.)", [item], trace, k, [])


def gif_after(seed: int = 0) -> Question:
    """L1 ran STGI (GIF=1), then VMRUN under one of two orderings: GIF at the end?"""
    rng = random.Random(seed)
    variant = rng.choice(["upstream", "pre-gif-fix"])
    sc = _teaching("svm", {"l1.gif": 1, **rng.choice([{"vmcb12.control.asid": 0}, {"vmcb12.save.efer": 0x500},
                                                      {}, {"l2.exit": "VMMCALL"}])})
    return outcome(sc, ["vcpu.gif"], variant)


VMX_MUTATIONS = [
    ("vmcs12.host_tr_selector", 0), ("vmcs12.host_cr0", 0x80010031 & ~1), ("vmcs12.cr3_target_count", 1),
    ("vmcs12.guest_cr3", 0x7A3000 | 1 << 52), ("vmcs12.vm_entry_intr_info_field", 0x80000200),
    ("vmcs12.guest_activity_state", 2), ("vmcs12.host_rip", 0xAAAAAAAAAAAAAAAA), ("vmcs12.guest_rflags", 0),
    ("vmcs12.virtual_processor_id", 0), ("vmcs12.vm_entry_msr_load_count", 600),
]


def vmx_outcome(seed: int = 0) -> Question:
    """One field of the teaching vmcs12 changed: how does VMLAUNCH end?"""
    path, value = random.Random(seed).choice(VMX_MUTATIONS)
    sc = _teaching("vmx", {path: value})
    return outcome(sc.with_fields({}, name=f"teaching with {path} = {show_value(value)}",
                                  description=f"the teaching vmcs12 with {path} = {show_value(value)}"))


def rsm_outcome(seed: int = 0) -> Question:
    """An SMI in L2, L1's SMM handler edits vmcb12's ASID, then RSM: how does it end?"""
    rng = random.Random(seed)
    variant = rng.choice(["smm-check", "smm-nocheck"])
    asid = rng.choice([0, 0, 5])
    sc = Scenario.preset("svm", "smi_in_l2").with_fields(
        {"smm.vmcb12_asid": asid}, description=f"an SMI in L2; the SMM handler writes ASID {asid} into vmcb12; RSM")
    return outcome(sc, variant=variant)


PRACTICE = (which_vmcb, cr3_after_step, does_vmcb12_pass, which_rule, gif_after, vmx_outcome, rsm_outcome)
