"""Every reproducer of the reliability review: each gives a clear error or the right result.

A clear error is a ValueError or TypeError whose message names the field or argument,
says what is allowed, stays short, and leaves the scenario as it was.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

import nsvm_model as nm
from nsvm_model.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
ASID = "vmcb12.control.asid"
MAX_MESSAGE = 500


def clear_error(call, *names, exc=(ValueError, TypeError)):
    """Run call; it must raise exc quickly with a short message naming each of names."""
    started = time.monotonic()
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert time.monotonic() - started < 1.0, message[:200]
    assert len(message) < MAX_MESSAGE, message[:200]
    for name in names:
        assert name in message, message
    return message


# --- D3, D15: the value parser ------------------------------------------------------

@pytest.mark.parametrize("text", ["1<<99999999999", "1<<(1<<30)", "1<<(1<<31)", "1<<(1<<70)",
                                  "1+" * 5000 + "1", "~" * 100000 + "1", "()", "(" * 50 + "1" + ")" * 50,
                                  "0x" + "f" * 100000, "1<<-1", "2**64", "__import__('os')", "1.5",
                                  "'x'", "", "   ", "[1]", "a.b", "1 if 1 else 2", "0x1d01; 1"])
def test_expressions_are_refused_fast_and_short(text):
    sc = nm.Scenario.svm()
    message = clear_error(lambda: sc.with_fields({ASID: text}), ASID, "allowed", exc=ValueError)
    assert "|" in message                       # the allowed operators are listed
    assert sc == nm.Scenario.svm()


@pytest.mark.parametrize("text,value", [("0x1d01", 0x1d01), ("4096", 4096), ("1<<12", 4096),
                                        ("EFER_SVME|EFER_LME", (1 << 12) | (1 << 8)),
                                        ("~EFER_SVME & 0x1fff", 0x1fff & ~(1 << 12)), ("0b101", 5),
                                        ("1_000", 1000), ("(1 << 4) - 1", 15), ("-1", 0xFFFFFFFF),
                                        ("~0", 0xFFFFFFFF), ("1<<100 >> 72", 1 << 28)])
def test_expressions_that_are_numbers_still_read(text, value):
    assert nm.Scenario.svm().with_fields({ASID: text}).get(ASID) == value


def test_a_huge_integer_is_quoted_by_its_width():
    message = clear_error(lambda: nm.Scenario.svm().with_fields({ASID: 1 << 100000}), ASID)
    assert "bit" in message


def test_a_huge_hex_literal_in_a_set_field_is_short():
    clear_error(lambda: nm.Scenario.svm().with_fields({"vmcb12.control.intercepts": "X" * 100000}),
                "vmcb12.control.intercepts")


# --- D6: booleans and 1-bit fields from text ------------------------------------------

BOOL_FIELDS = [(isa, p) for isa in ("svm", "vmx") for p, f in nm.machine_for(isa).fields.items()
               if f.kind == "bool" or (f.kind == "int" and f.width == 1)]


def test_every_flag_field_is_listed():
    assert len(BOOL_FIELDS) >= 13 and ("svm", "l1.gif") in BOOL_FIELDS


@pytest.mark.parametrize("isa,path", BOOL_FIELDS)
@pytest.mark.parametrize("raw,want", [("0", 0), ("1", 1), ("true", 1), ("False", 0), ("yes", 1), ("NO", 0),
                                      (True, 1), (False, 0), (0, 0), (1, 1)])
def test_flags_accept_words_and_values(isa, path, raw, want):
    got = nm.Scenario.preset(isa, "default").with_fields({path: raw}).get(path)
    assert got == want and (isinstance(got, bool) == (nm.machine_for(isa).fields[path].kind == "bool"))


@pytest.mark.parametrize("raw", ["maybe", "2", 2, None, 1.0, [1]])
def test_flags_refuse_other_values(raw):
    clear_error(lambda: nm.Scenario.svm().with_fields({"cpu.npt": raw}), "cpu.npt", "True/False")


@pytest.mark.parametrize("setting,want", [("cpu.npt=0", "vcpu.arch.mmu"), ("cpu.npt=False", "vcpu.arch.mmu")])
def test_cli_sets_a_boolean(capsys, setting, want):
    assert main(["trace", "--set", setting]) == 0
    assert "l2_runs" in capsys.readouterr().out


# --- D8, D9: wrong types and wrong ISAs at every entry point ---------------------------

SVM, VMX = nm.Scenario.svm(), nm.Scenario.vmx()
WRONG_CALLS = {
    "run with a flow of the other ISA": (lambda: nm.run(SVM, nm.machine_for("vmx").flows["upstream"]), "variant"),
    "check_order with a scenario of the other ISA": (
        lambda: nm.check_order("upstream", isa="vmx", scenario=SVM), "scenario"),
    "review with a scenario of the other ISA": (lambda: nm.review("upstream", isa="vmx", scenario=SVM), "scenario"),
    "check_order with a number as scenario": (lambda: nm.check_order("v6-unified", scenario=5), "scenario"),
    "align with None": (lambda: nm.align(nm.run(SVM), None), "vmx_trace"),
    "align swapped": (lambda: nm.align(nm.run(VMX), nm.run(SVM)), "svm_trace"),
    "with_memory None": (lambda: SVM.with_memory(None), "memory"),
    "with_memory a list": (lambda: SVM.with_memory([1, 2]), "memory"),
    "with_memory a huge GPA": (lambda: SVM.with_memory({1 << 70: 0}), "memory"),
    "with_memory a float": (lambda: SVM.with_memory({0x1000: 1.5}), "memory"),
    "move a number": (lambda: nm.move(5, before="svm.vmrun.check_rax"), "step"),
    "move before a number": (lambda: nm.move("svm.vmrun.check_rax", before=5), "before"),
    "move in an unknown isa": (lambda: nm.move("call:x", before="call:y", isa="arm"), "isa"),
    "run with a list as variant": (lambda: nm.run(SVM, variant=["upstream"]), "variant"),
    "run with None as variant": (lambda: nm.run(SVM, variant=None), "variant"),
    "run with no scenario": (lambda: nm.run("svm"), "Scenario"),
    "preset with a list": (lambda: nm.Scenario.preset("svm", ["default"]), "preset"),
    "preset of an unknown isa": (lambda: nm.Scenario.preset("arm", "default"), "isa"),
    "get with a list": (lambda: SVM.get(["x"]), "field"),
    "with_fields with a list": (lambda: SVM.with_fields([("l1.cpl", 3)]), "with_fields"),
    "with_fields with a path that is not a string": (lambda: SVM.with_fields({1: 2}), "field"),
    "check_order None": (lambda: nm.check_order(None), "ordering"),
    "check_order an empty list": (lambda: nm.check_order([]), "ordering"),
    "check_order an unknown step": (lambda: nm.check_order(["svm.nope"]), "ordering"),
    "check_order a list of numbers": (lambda: nm.check_order([1, 2]), "ordering"),
    "check_order a bad isa": (lambda: nm.check_order("upstream", isa=5), "isa"),
    "review with variant 5": (lambda: nm.review(5), "ordering"),
    "move with variant 5": (lambda: nm.move("svm.vmrun.check_rax", before="svm.vmrun.check_smm", variant=5),
                            "ordering"),
    "text width 5": (lambda: nm.review("v6-unified").text(width=5), "width"),
    "text width a string": (lambda: nm.review("v6-unified").text(width="72"), "width"),
    "explain a number": (lambda: nm.explain(18), "rule"),
    "explain an unknown rule": (lambda: nm.explain("R99"), "rule"),
    "variants of an unknown isa": (lambda: nm.variants("arm"), "isa"),
    "variants of a list": (lambda: nm.variants(["svm"]), "isa"),
    "svm with an unknown l2 mode": (lambda: nm.Scenario.svm("64bit"), "l2_mode"),
}


@pytest.mark.parametrize("name", WRONG_CALLS)
def test_wrong_arguments_are_named(name):
    call, argument = WRONG_CALLS[name]
    clear_error(call, argument)


# --- D11 and the unreachable CR3 load: flows are checked when built --------------------

def test_a_call_cycle_is_refused():
    clear_error(lambda: nm.Flow("cyc", "svm", {"main": ("call:a",), "a": ("call:main",)}, {}), "cyc", "cycle")


@pytest.mark.parametrize("sequences,on,words", [
    ({"a": ()}, {}, "main"),
    ({"main": ("call:b",)}, {}, "'b'"),
    ({"main": ("svm.nope",)}, {}, "svm.nope"),
    ({"main": ("svm.vmrun.check_rax",), "orphan": ("svm.vmrun.check_smm",)}, {}, "orphan"),
    ({"main": ("svm.vmrun.check_rax",)}, {"svm.vmrun.check_rax:gp": "nowhere"}, "nowhere"),
    ({"main": "svm.vmrun.check_rax"}, {}, "tuple"),
])
def test_hand_built_flows_that_cannot_run_are_refused(sequences, on, words):
    clear_error(lambda: nm.Flow("hand", "svm", sequences, on), "hand", words)


def test_a_move_that_makes_load_cr3_unreachable_is_refused():
    clear_error(lambda: nm.move("call:nested_svm_load_cr3", before="svm.enter.load_cr3.check_legal", isa="svm"),
                "nested_svm_load_cr3")


def test_an_ordering_without_load_cr3_breaks_a_rule():
    for isa, rule in (("svm", "R30"), ("vmx", "D15")):
        upstream = nm.engine.rules.linear_order(nm.machine_for(isa).flows["upstream"])
        ids = [s for s in upstream if ".load_cr3." not in s or ".exit." in s or ".host." in s]
        assert rule in {v.id for v in nm.check_order(ids, isa=isa)}
        assert rule not in {v.id for v in nm.check_order("upstream", isa=isa)}


# --- L1 registers no CPU can hold --------------------------------------------------------

@pytest.mark.parametrize("isa", ["svm", "vmx"])
@pytest.mark.parametrize("change,field", [({"l1.cr0": 0xfffffffff000}, "l1.cr0"),
                                          ({"l1.cr0": 0x80000000}, "l1.cr0"),
                                          ({"l1.cr0": 0x20000001}, "l1.cr0"),
                                          ({"l1.cr4": 1 << 40}, "l1.cr4"),
                                          ({"l1.efer": 1 << 9}, "l1.efer"),
                                          ({"l1.rflags": 0}, "l1.rflags")])
def test_impossible_l1_registers_are_refused(isa, change, field):
    sc = nm.Scenario.preset(isa, "default")
    clear_error(lambda: sc.with_fields(change), field, "CPU")


def test_possible_l1_mode_changes_still_work():
    legacy = nm.Scenario.svm().with_fields({"l1.efer": "EFER_SVME|EFER_SCE|EFER_NX"})
    assert nm.run(legacy).outcome in ("l2_runs", "vmexit_invalid")


# --- D10: the command line never prints a traceback ----------------------------------------

@pytest.mark.parametrize("argv,words", [
    (["compare", "upstream", "v6-unified", "--svg", "/nonexistent-dir/x.svg"], "--svg"),
    (["compare", "upstream", "v6-unified", "--png", "/nonexistent-dir/x.png"], "--svg/--png"),
    (["compare", "upstream", "v6-unified", "--svg", "/"], "cannot write"),
    (["compare", "upstream", "v6-unified", "--width", "5"], "--width"),
    (["trace", "--set", "vmcb12.control.asid=1<<99999999999"], "vmcb12.control.asid"),
    (["trace", "--set", "vmcb12.control.asid=1<<(1<<70)"], "vmcb12.control.asid"),
    (["trace", "--set", "cpu.npt=maybe"], "cpu.npt"),
    (["trace", "--set", "l1.cr0=0xfffffffff000"], "l1.cr0"),
    (["trace", "--changes", "-1"], "--changes"),
    (["check-order", "--move", "call:nested_svm_load_cr3", "--before", "svm.enter.load_cr3.check_legal"], "cycle"),
])
def test_cli_errors_are_one_line(argv, words):
    done = subprocess.run([sys.executable, "-m", "nsvm_model", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and words in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith(("error:", "python -m nsvm_model"))]


# --- D13: every outcome a run can produce is listed ------------------------------------------

def test_the_readme_lists_every_outcome():
    readme = (ROOT / "README.md").read_text()
    for outcome in ("l2_runs", "vmexit_invalid", "l1_gp", "l1_ud", "userspace_exit", "shutdown",
                    "vmfail_invalid", "vmfail_valid:", "vmexit:", "vmrun_skipped", "incomplete"):
        assert f"`{outcome}" in readme, outcome
