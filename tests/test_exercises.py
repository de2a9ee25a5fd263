"""Every exercise generator: a right answer is accepted, a wrong one explained; seeds reproduce."""

import pytest

from nsvm_model import exercises as E

GENERATORS = [E.which_vmcb, E.cr3_after_step, E.does_vmcb12_pass, E.which_rule, E.gif_after,
              E.vmx_outcome, E.rsm_outcome]
WRONG = {"which_vmcb": "vmcb03", "cr3_after_step": 0xDEAD000, "does_vmcb12_pass": "shutdown",
         "which_rule": "R99", "gif_after": 7, "vmx_outcome": "l1_gp", "rsm_outcome": "l1_ud"}


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("seed", range(6))
def test_right_and_wrong_answers(gen, seed):
    q = gen(seed)
    if isinstance(q._answer, str) and gen is not E.which_vmcb:        # the question does not give it away
        assert q._answer not in repr(q).split("Answer with")[0]
    right = q.check(q._answer if not isinstance(q._answer, int) else hex(q._answer))
    assert right.correct, right.message
    wrong = q.check(WRONG[gen.__name__])
    assert not wrong.correct and wrong.message
    assert "Right" in right._repr_html_() and "Not quite" in wrong._repr_html_()


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
def test_a_seed_makes_the_same_question(gen):
    assert repr(gen(11)) == repr(gen(11)) and gen(11)._answer == gen(11)._answer


def test_answers_are_not_on_the_page():
    q = E.does_vmcb12_pass(2)
    assert "vmexit_invalid" not in q.text and "l2_runs" not in q.text


# --- odd answers: a wrong verdict, never an exception, never markup ------------------------------

def test_the_learners_answer_is_escaped_in_the_html_verdict():
    html = E.which_vmcb(seed=3).check("<img src=x onerror=alert(1)>")._repr_html_()
    assert "<img" not in html and "&lt;img" in html


@pytest.mark.parametrize("seed", range(4))
def test_a_bool_is_not_the_number_it_equals(seed):
    q = E.gif_after(seed)
    assert type(q._answer) is int
    assert not q.check(bool(q._answer)).correct and not q.check(not q._answer).correct
    assert q.check(q._answer).correct and q.check(str(q._answer)).correct


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("answer", [10 ** 5000, -10 ** 5000, "x" * 10_000, "0x" + "f" * 10_000, "9" * 5000,
                                    Unprintable(), None, 1.5, [1], True],
                         ids=["huge", "huge-neg", "long-str", "long-hex", "long-dec", "unprintable", "none",
                              "float", "list", "bool"])
def test_any_answer_gets_a_short_wrong_verdict(gen, answer):
    fb = gen(1).check(answer)
    assert fb.correct is False
    assert len(fb.message.split(". ")[0]) <= 130           # the answer is quoted, cut to 80 characters
    assert fb._repr_html_() and repr(fb)
