"""Exercises: nothing graded before an answer, right and wrong answers against the model,
feedback that names the deciding step, and odd answers that never raise."""

import pytest

import nsvm_model as nm
from nsvm_model import exercises as E

TEACH = nm.Scenario.preset("svm", "teaching")
VMX = nm.Scenario.preset("vmx", "teaching")


def sample_questions():
    return {
        "state_at": E.state_at(TEACH, "svm.enter.switch_vmcb02",
                               ["svm.current_vmcb", "vcpu.guest_mode", "vcpu.arch.cr3", "vcpu.gif"]),
        "state_at_single": E.state_at(TEACH, "svm.enter.set_gif", ["vcpu.gif"]),
        "outcome": E.outcome(TEACH.with_fields({"vmcb12.control.asid": 0}),
                             ["vcpu.gif", "vcpu.rip", "vmcb12.control.exit_code", "svm.current_vmcb"]),
        "outcome_single": E.outcome(nm.Scenario.preset("vmx", "host_tr_zero")),
        "kernel_order": E.kernel_order(TEACH, ["svm.enter.load_cr3.set_cr3", "svm.enter.prepare_save.regs",
                                               "svm.enter.switch_vmcb02", "svm.enter.enter_guest_mode"]),
        "pick_reason": E.pick_reason("svm", "R18", ["R14", "R21", "R3"]),
        "which_breaks": E.which_breaks(nm.Scenario.preset("svm", "pae_shadow"), "R18",
                                       ["v6.6-order", "v6-unified", "sean-v2-proposal"]),
        **{f"{g.__name__}:{seed}": g(seed) for g in E.PRACTICE for seed in range(4)},
    }


QUESTIONS = sample_questions()


def right_answer(q):
    if q.single:
        return q.items[0].right
    return {i.name: i.right for i in q.items}


def wrong_answer(q):
    def wrong(value):
        if isinstance(value, bool):
            return not value
        if isinstance(value, int):
            return value ^ 0x1000
        return "vmcb03" if not value.isupper() else "ZZZZ"
    if q.single:
        return wrong(q.items[0].right)
    return {i.name: wrong(i.right) for i in q.items}


@pytest.mark.parametrize("name", QUESTIONS)
def test_the_placeholder_grades_nothing_and_reveals_nothing(name):
    q = QUESTIONS[name]
    fb = q.check(...)
    assert fb.correct is None and "Type your answer" in fb.message
    for text in (repr(fb), fb._repr_html_(), repr(q), q._repr_html_()):
        assert "Right" not in text and "Not quite" not in text and "Decided at" not in text
    assert ".check(" in repr(q)


@pytest.mark.parametrize("name", QUESTIONS)
def test_right_and_wrong_answers_against_the_model(name):
    q = QUESTIONS[name]
    right = q.check(right_answer(q))
    assert right.correct is True, repr(right)
    wrong = q.check(wrong_answer(q))
    assert wrong.correct is False, repr(wrong)
    assert "Decided at step" in wrong.message or "Decided at step" in right.message
    assert "Right" in right._repr_html_() and "Not quite" in wrong._repr_html_()


@pytest.mark.parametrize("name", QUESTIONS)
def test_reveal_shows_every_item_and_its_deciding_step(name):
    q = QUESTIONS[name]
    fb = q.reveal()
    assert fb.correct is None and len(fb.items) == len(q.items)
    assert 0 <= q.step_index < len(q.trace.steps)
    assert f"step {q.step_index + 1}" in fb.message


def test_items_are_graded_one_by_one_and_name_their_step():
    q = QUESTIONS["state_at"]
    fb = q.check({"svm.current_vmcb": "vmcb02", "vcpu.guest_mode": "no", "vcpu.arch.cr3": 0x7A3000,
                  "vcpu.gif": ...})
    marks = {i.name: i.ok for i in fb.items}
    assert marks == {"svm.current_vmcb": True, "vcpu.guest_mode": True, "vcpu.arch.cr3": False, "vcpu.gif": None}
    assert fb.correct is False and fb.score == (2, 4)
    cr3 = next(i for i in fb.items if i.name == "vcpu.arch.cr3")
    assert "0x100000" in cr3.why and "no step" in cr3.why            # L1's CR3 is still loaded at the switch
    vmcb = next(i for i in fb.items if i.name == "svm.current_vmcb")
    assert "svm_switch_vmcb()" in vmcb.why


def test_a_write_of_the_same_value_is_named():
    """The early failure clears GIF that L1 had already cleared: the step still wrote it."""
    q = QUESTIONS["outcome"]
    gif = next(i for i in q.items if i.name == "vcpu.gif")
    assert "svm.vmrun.early_clear_gif" in gif.why() and "same value" in gif.why()


def test_the_deciding_step_of_a_failure_is_the_failing_check():
    q = QUESTIONS["outcome"]
    assert q.trace.steps[q.step_index].id == "svm.vmrun.check_controls"
    assert "C2" in q.items[0].why()
    vmx = QUESTIONS["outcome_single"]
    assert vmx.items[0].right == "vmfail_valid:8" and vmx.trace.steps[vmx.step_index].label


def test_kernel_order_is_the_trace_order_and_never_shown_as_the_question():
    q = QUESTIONS["kernel_order"]
    shown = [d.split(". ")[0] for d in q.details]
    assert "".join(shown) != q.items[0].right
    ids = [d.rsplit("(", 1)[1].rstrip(")") for d in q.details]
    by_letter = dict(zip(shown, ids))
    order = [by_letter[c] for c in q.items[0].right]
    assert order == sorted(order, key=q.trace.index_of)
    assert q.check(list(q.items[0].right)).correct and not q.check("AB").correct


def test_which_breaks_runs_every_choice():
    q = QUESTIONS["which_breaks"]
    why = q.items[0].why()
    for choice in ("v6.6-order", "v6-unified", "sean-v2-proposal"):
        assert f"{choice}: ends" in why
    with pytest.raises(ValueError, match="exactly one"):
        E.which_breaks(TEACH, "R18", ["upstream", "pre-gif-fix"])


def test_pick_reason_offers_real_reasons_and_runs_the_move():
    q = QUESTIONS["pick_reason"]
    assert len(q.details) == 4 and all(". " in d for d in q.details)
    assert "Moved first" in q.items[0].why()


@pytest.mark.parametrize("call,arg", [
    (lambda: E.state_at("teaching", 3, ["vcpu.gif"]), "scenario"),
    (lambda: E.state_at(TEACH, 999, ["vcpu.gif"]), "at"),
    (lambda: E.state_at(TEACH, "svm.nope", ["vcpu.gif"]), "at"),
    (lambda: E.state_at(TEACH, 3, ["vcpu.giff"]), "items"),
    (lambda: E.state_at(TEACH, 3, "vcpu.gif"), "items"),
    (lambda: E.kernel_order(TEACH, ["svm.enter.switch_vmcb02"]), "steps"),
    (lambda: E.pick_reason("svm", "R99", ["R1"]), "rule"),
])
def test_bad_parameters_name_the_argument(call, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        call()


def test_seeds_make_the_same_question():
    for g in E.PRACTICE:
        assert repr(g(11)) == repr(g(11)) and right_answer(g(11)) == right_answer(g(11))


# --- odd answers: a wrong verdict, never an exception, never markup ------------------------------

def test_the_learners_answer_is_escaped_in_the_html_verdict():
    html = E.which_vmcb(seed=3).check("<img src=x onerror=alert(1)>")._repr_html_()
    assert "<img" not in html and "&lt;img" in html
    html = QUESTIONS["state_at"].check({"svm.current_vmcb": "<script>x</script>"})._repr_html_()
    assert "<script>" not in html


@pytest.mark.parametrize("seed", range(4))
def test_a_bool_is_not_the_number_it_equals(seed):
    q = E.gif_after(seed)
    gif = next(i for i in q.items if i.name == "vcpu.gif")
    answer = {"outcome": q.items[0].right, "vcpu.gif": bool(gif.right)}
    assert not next(i for i in q.check(answer).items if i.name == "vcpu.gif").ok
    answer["vcpu.gif"] = str(gif.right)
    assert next(i for i in q.check(answer).items if i.name == "vcpu.gif").ok


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.mark.parametrize("name", ["state_at_single", "outcome_single", "kernel_order", "pick_reason", "which_vmcb:1"])
@pytest.mark.parametrize("answer", [10 ** 5000, -10 ** 5000, "x" * 10_000, "0x" + "f" * 10_000, "9" * 5000,
                                    Unprintable(), None, 1.5, [1], True, {"a": 1}],
                         ids=["huge", "huge-neg", "long-str", "long-hex", "long-dec", "unprintable", "none",
                              "float", "list", "bool", "dict"])
def test_any_answer_gets_a_short_wrong_verdict(name, answer):
    fb = QUESTIONS[name].check(answer)
    assert fb.correct is False
    assert len(fb.message) < 2000
    assert fb._repr_html_() and repr(fb)


@pytest.mark.parametrize("answer", [5, "vmcb02", None, {"nope": 1}, {1: 2}])
def test_a_multi_item_question_explains_its_answer_form(answer):
    fb = QUESTIONS["state_at"].check(answer)
    assert fb.correct is False and ("dict" in fb.message or "not one of" in fb.message)
