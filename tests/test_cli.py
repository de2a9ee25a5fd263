"""python -m nsvm_model: each command runs and says something checkable."""

import subprocess
import sys
from pathlib import Path

import pytest

from nsvm_model.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_help_shows_an_example_for_each_command():
    out = subprocess.run([sys.executable, "-m", "nsvm_model", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    for cmd in ("trace", "compare", "check-order", "explain"):
        assert f"python -m nsvm_model {cmd}" in out


def test_trace(capsys):
    rc, out, _ = run(capsys, "trace", "--preset", "asid_zero")
    assert rc == 0 and "vmexit_invalid (early)" in out and "C2 fails" in out


def test_trace_vmx_with_a_field(capsys):
    rc, out, _ = run(capsys, "trace", "--isa", "vmx", "--set", "vmcs12.host_tr_selector=0")
    assert rc == 0 and "vmfail_valid:8" in out


def test_compare_writes_text_and_svg(capsys, tmp_path):
    svg = tmp_path / "v6.svg"
    rc, out, _ = run(capsys, "compare", "upstream", "v6-unified", "--svg", str(svg))
    assert rc == 0 and "R18:" in out and max(map(len, out.splitlines())) <= 72
    assert svg.read_text().startswith("<?xml")


def test_check_order(capsys):
    rc, out, _ = run(capsys, "check-order", "v6-unified")
    assert rc == 0 and out.count("\nR") + out.startswith("R") == 5
    rc, out, _ = run(capsys, "check-order", "--move", "svm.enter.enter_guest_mode",
                     "--after", "svm.enter.init_mmu_context")
    assert rc == 0 and out.startswith("R14:")
    rc, out, _ = run(capsys, "check-order", "upstream")
    assert out.strip() == "no ordering rule is broken"


def test_explain(capsys):
    rc, out, _ = run(capsys, "explain", "R21")
    assert rc == 0 and "msrpm_base_pa" in out


@pytest.mark.parametrize("argv,needle", [
    (["trace", "--set", "vmcb12.control.asidd=0"], "vmcb12.control.asid"),
    (["trace", "--variant", "nope"], "unknown svm variant"),
    (["explain", "R99"], "unknown rule"),
    (["check-order"], "name a variant"),
])
def test_bad_input_is_one_line_and_status_2(capsys, argv, needle):
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and needle in err and err.count("\n") == 1


# --- mail-ready text: 72 columns, kernel functions first, the deciding step marked ----------------

@pytest.mark.parametrize("argv", [
    ["trace", "--preset", "pae_bad_pdpte"], ["trace", "--isa", "vmx", "--preset", "msr_load_fs_base"],
    ["trace", "--preset", "msrpm_unbacked", "--changes", "20"], ["check-order", "v6-unified"],
    ["explain", "R18"], ["explain", "D9"], ["compare", "upstream", "v6-unified"],
])
def test_every_output_fits_72_columns(capsys, argv):
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out.strip()
    assert max(map(len, out.splitlines())) <= 72


def test_trace_numbers_from_1_and_marks_the_deciding_step(capsys):
    import nsvm_model as nm
    t = nm.run(nm.Scenario.preset("svm", "pae_bad_pdpte"))
    rc, out, _ = run(capsys, "trace", "--preset", "pae_bad_pdpte")
    marked = [line for line in out.splitlines() if line.startswith(">>")]
    assert len(marked) == 1
    k = next(s.index for s in t.steps if s.label == "bad_pdpte")
    assert marked[0].split()[1] == str(k + 1) and "nested_svm_load_cr3()" in marked[0]
    assert "    1  P1 nested_svm_check_permissions()" in out
    rc, out, _ = run(capsys, "trace")
    assert ">>" not in out


def test_check_order_and_explain_name_kernel_functions_first(capsys):
    rc, out, _ = run(capsys, "check-order", "v6-unified")
    assert out.startswith("R3: enter_guest_mode() [svm.enter.enter_guest_mode] runs before")
    rc, out, _ = run(capsys, "explain", "R18")
    assert out.startswith("R18: nested_vmcb02_prepare_save()") and "[V] verified" in out


def test_the_svg_has_a_legend_folds_common_steps_and_names_functions(tmp_path, capsys):
    svg = tmp_path / "v6.svg"
    run(capsys, "compare", "upstream", "v6-unified", "--svg", str(svg))
    text = svg.read_text()
    assert "legend" in text and "steps both run first" in text
    assert "nested_svm_load_cr3()" in text and "svm_switch_vmcb()" in text
