"""Predict-then-check exercises, generated from a seed (as the OSTEP simulators do).

    q = exercises.which_vmcb(seed=3)
    q                       # shows the question, not the answer
    q.check("vmcb02")       # a friendly verdict, with the reason taken from the trace

Every answer is computed by running the model, so the questions follow the
kernel flow the rest of the suite shows.  The answer is never printed by
the question itself.
"""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, List

from . import run
from .engine.scenario import Scenario
from .review import check_order, move
from .text import show_value


@dataclass
class Feedback:
    correct: bool
    message: str

    def __repr__(self) -> str:
        return ("✓ " if self.correct else "✗ ") + self.message

    def _repr_html_(self) -> str:
        color = "#009E73" if self.correct else "#D55E00"
        mark = "✓ Right." if self.correct else "✗ Not quite."
        # the message quotes the learner's answer: escape it, it is text, not markup
        return (f'<div style="border-left:4px solid {color};padding:4px 8px"><b>{mark}</b> '
                f'{html.escape(self.message)}</div>')


@dataclass
class Question:
    text: str
    choices: List[str]
    _answer: Any = field(repr=False)
    _explain: Callable[[], str] = field(repr=False)
    _normalize: Callable[[Any], Any] = field(repr=False, default=lambda a: a)

    def __repr__(self) -> str:
        hint = f"\nAnswer with one of: {', '.join(self.choices)}" if self.choices else ""
        return re.sub(r"</?code>", "", self.text) + hint

    def _repr_html_(self) -> str:
        hint = f"<br><i>Answer with one of:</i> {', '.join(self.choices)}" if self.choices else ""
        return f'<div style="border-left:4px solid #0072B2;padding:4px 8px"><b>Predict:</b> {self.text}{hint}</div>'

    def check(self, answer) -> Feedback:
        """A verdict for any answer at all: a learner's odd input is a wrong answer, never an exception."""
        try:
            given = self._normalize(answer)
        except Exception:                 # str() may fail too (huge ints, a broken __str__)
            return Feedback(False, f"{_quote(answer)} is not an answer this question understands. "
                                   + (f"Use one of: {', '.join(self.choices)}." if self.choices else ""))
        if _same(given, self._answer):
            return Feedback(True, self._explain())
        return Feedback(False, f"you said {_said(given)}. " + self._explain())


def _same(given, answer) -> bool:
    """Equal and of the same kind: False == 0 in Python, but False is no answer to "which number?"."""
    if isinstance(given, int) or isinstance(answer, int):
        return type(given) is type(answer) and given == answer
    return given == answer


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _said(given) -> str:
    try:
        return _clip(show_value(given) if isinstance(given, int) else str(given))
    except Exception:                     # show_value() of a huge negative int hits the digit limit
        return _quote(given)


def _quote(answer) -> str:
    """The answer as the feedback quotes it: short, and whatever its repr() does."""
    try:
        return _clip(repr(answer))
    except Exception:                     # e.g. an int past the int-to-str digit limit
        return f"that {type(answer).__name__}"


def _int(answer) -> int:
    if isinstance(answer, bool):          # a bool is an int to Python, not to this question
        raise TypeError("a yes/no answer is not a number")
    return answer if isinstance(answer, int) else int(str(answer).strip(), 0)


def _text(answer) -> str:
    return str(answer).strip()


# --- which VMCB is current after step k -------------------------------------------

def which_vmcb(seed: int = 0) -> Question:
    rng = random.Random(seed)
    preset = rng.choice(["default", "round_trip", "shadow_paging", "msrpm_unbacked", "pae_bad_pdpte"])
    trace = run(Scenario.preset("svm", preset))
    k = rng.randrange(len(trace.steps))
    s = trace.steps[k]
    answer = s.state["svm.current_vmcb"]
    switches = [t for t in trace.steps[:k + 1] if "svm.current_vmcb" in t.written]

    def explain():
        if not switches:
            return f"no step up to {k + 1} switched svm->vmcb, so it is still {answer}."
        last = switches[-1]
        return (f"the last switch before that is step {last.index + 1}, {last.function}(), "
                f"which pointed svm->vmcb at {answer}.")
    return Question(f"Scenario <code>{preset}</code>: after step {k + 1} (<code>{s.id}</code>, "
                    f"{s.function}()), which VMCB does svm->vmcb point at?",
                    ["vmcb01", "vmcb02"], answer, explain, _text)


# --- CR3 after step k ----------------------------------------------------------------

def cr3_after_step(seed: int = 0) -> Question:
    rng = random.Random(seed)
    preset = rng.choice(["default", "shadow_paging", "pae_shadow", "round_trip", "pae_bad_pdpte"])
    sc = Scenario.preset("svm", preset)
    if rng.random() < 0.6:
        sc = sc.with_fields({"vmcb12.save.cr3": rng.choice([0x700000, 0x7a3000, 0x12345000])})
    trace = run(sc)
    candidates = [t for t in trace.steps if t.function == "nested_svm_load_cr3"]
    s = rng.choice(candidates) if candidates else trace.steps[-1]
    answer = s.state["vcpu.arch.cr3"]

    def explain():
        setters = [t for t in trace.steps[:s.index + 1] if "vcpu.arch.cr3" in t.written]
        where = (f"step {setters[-1].index + 1} ({setters[-1].id}) set it" if setters
                 else "no step had changed it yet: it is still L1's CR3")
        return f"vcpu.arch.cr3 is {answer:#x} there: {where}. L2's CR3 in vmcb12 is {sc.get('vmcb12.save.cr3'):#x}."
    return Question(f"Scenario <code>{preset}</code> with vmcb12.save.cr3 = {sc.get('vmcb12.save.cr3'):#x} and "
                    f"L1's CR3 = {sc.get('l1.cr3'):#x}: what is vcpu.arch.cr3 after step {s.index + 1} "
                    f"(<code>{s.id}</code>)?", [], answer, explain, _int)


# --- does this vmcb12 pass? -------------------------------------------------------------

MUTATIONS = [
    ("vmcb12.control.asid", 0), ("vmcb12.control.asid", 7),
    ("vmcb12.save.efer", 0x0d01), ("vmcb12.save.efer", 0x1d01 | 1 << 15),
    ("vmcb12.save.cr0", 0x80010031 | 1 << 29), ("vmcb12.save.cr0", 0x80010031 | 3 << 29),
    ("vmcb12.save.cs.attrib", 0xA99 | 1 << 10), ("vmcb12.save.dr7", 0x400 | 1 << 32),
    ("vmcb12.control.event_inj", 0x80000302), ("vmcb12.control.event_inj", 0x8000030E),
    ("vmcb12.control.intercepts", frozenset({"VMMCALL"})), ("vmcb12.save.cr4", 0x620 | 1 << 14),
    ("vmcb12.control.nested_cr3", 1 << 50), ("vmcb12.control.iopm_base_pa", (1 << 48) - 0x2000),
    ("vmcb12.save.cr3", 0x100000 | 1 << 0), ("vmcb12.save.es.base", 0xAAAA000000000000),
]


def does_vmcb12_pass(seed: int = 0) -> Question:
    rng = random.Random(seed)
    path, value = rng.choice(MUTATIONS)
    trace = run(Scenario.svm().with_fields({path: value}))
    answer = "l2_runs" if trace.outcome == "l2_runs" else "vmexit_invalid"

    def explain():
        notes = [n for t in trace.steps for n in t.notes if " fails:" in n]
        if notes:
            return f"nested_svm_copy_vmcb12_to_cache() rejects it: {notes[0]} → VMEXIT_INVALID, L2 never runs."
        return "every consistency check (S1-S7, C1-C7) passes and nested_svm_load_cr3() succeeds: L2 runs."
    shown = show_value(value) if not isinstance(value, frozenset) else "{" + ", ".join(sorted(value)) + "}"
    return Question(f"vmcb_ident with <code>{path} = {shown}</code>: does VMRUN run L2?",
                    ["l2_runs", "vmexit_invalid"], answer, explain, _text)


# --- which rule does this ordering break? ---------------------------------------------------

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
    rng = random.Random(seed)
    step, where, anchor = rng.choice(MOVES)
    flow = move(step, **{where: anchor}, isa="svm")
    found = check_order(flow)
    answer = found[0].id

    def explain():
        v = found[0]
        more = f" (it also breaks {', '.join(x.id for x in found[1:])})" if len(found) > 1 else ""
        return f"{v.id}: {v.before} must come first because {v.reason}. Symptom: {v.symptom}{more}."
    return Question(f"Move <code>{step}</code> {where} <code>{anchor}</code>. Which ordering rule breaks "
                    "first (its id, e.g. R7)? <code>nm.explain('R7')</code> shows any rule.",
                    [], answer, explain, lambda a: _text(a).upper())


# --- GIF after a run -------------------------------------------------------------------------

def gif_after(seed: int = 0) -> Question:
    rng = random.Random(seed)
    variant = rng.choice(["upstream", "pre-gif-fix"])
    preset = rng.choice(["asid_zero", "efer_svme_clear", "default", "round_trip"])
    trace = run(Scenario.preset("svm", preset), variant)
    answer = trace.final["vcpu.gif"]

    def explain():
        last = [t for t in trace.steps if "vcpu.gif" in t.written]
        where = f"step {last[-1].index + 1} ({last[-1].id}) last changed it" if last else "nothing changed it"
        return (f"GIF ends at {answer} ({trace.final['svm.gif_location']}): {where}. L1 had GIF=1 before VMRUN; "
                "since f85a6ce06e4a every #VMEXIT, VMEXIT_INVALID included, clears it.")
    return Question(f"L1 has GIF=1 and runs <code>{preset}</code> under the <code>{variant}</code> flow. "
                    "What is GIF when the run ends?", ["0", "1"], answer, explain, _int)


# --- nVMX outcomes ------------------------------------------------------------------------------

VMX_MUTATIONS = [
    ("vmcs12.host_tr_selector", 0), ("vmcs12.host_cr0", 0x80010031 & ~1), ("vmcs12.cr3_target_count", 1),
    ("vmcs12.guest_cr3", 0x100000 | 1 << 52), ("vmcs12.vm_entry_intr_info_field", 0x80000200),
    ("vmcs12.guest_activity_state", 2), ("vmcs12.host_rip", 0xAAAAAAAAAAAAAAAA), ("vmcs12.guest_rflags", 0),
    ("vmcs12.virtual_processor_id", 0), ("vmcs12.vm_entry_msr_load_count", 600),
]


def vmx_outcome(seed: int = 0) -> Question:
    rng = random.Random(seed)
    path, value = rng.choice(VMX_MUTATIONS)
    trace = run(Scenario.vmx().with_fields({path: value}))
    answer = trace.outcome

    def explain():
        notes = [n for t in trace.steps for n in t.notes if "fails" in n or "rejects" in n]
        why = notes[0] if notes else "every check passes"
        return f"{why} → {answer}" + (f" ({trace.failure})" if trace.failure else "") + "."
    return Question(f"init_vmcs with <code>{path} = {show_value(value)}</code>: what does VMLAUNCH end in?",
                    ["l2_runs", "vmfail_valid:7", "vmfail_valid:8", "vmexit:33", "vmexit:34"],
                    answer, explain, _text)


# --- RSM back into L2 -------------------------------------------------------------------------

def rsm_outcome(seed: int = 0) -> Question:
    rng = random.Random(seed)
    variant = rng.choice(["smm-check", "smm-nocheck"])
    asid = rng.choice([0, 0, 5])
    trace = run(Scenario.preset("svm", "smi_in_l2").with_fields({"smm.vmcb12_asid": asid}), variant)
    answer = trace.outcome

    def explain():
        checked = "svm.smm.check_controls" in trace.step_ids
        return (f"the SMM handler left ASID {asid}; {'svm_leave_smm() checks vmcb12 again' if checked else 'this svm_leave_smm() does not check vmcb12 again'}"
                f", so RSM ends in {answer}.")
    return Question(f"An SMI arrives while L2 runs; L1's SMM handler writes ASID {asid} into vmcb12; then RSM, "
                    f"under <code>{variant}</code>. How does it end?", ["l2_runs", "shutdown"], answer, explain, _text)
