"""The README's agreement table is the one the oracle data gives (tests/oracle_counts.py)."""

from pathlib import Path

from oracle_counts import table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_carries_the_current_agreement_table():
    assert table() in README.read_text(), "README.md: paste the output of python tests/oracle_counts.py"


def test_every_case_but_the_named_gaps_agrees():
    rows = [line.split("|") for line in table().splitlines() if line.startswith("| **")]
    assert len(rows) == 3
    cases = {r[1].strip(" *"): (int(r[3].strip(" *").replace(",", "")), int(r[4].strip(" *").replace(",", "")))
             for r in rows}
    assert cases["kvm-unit-tests `x86/svm_tests.c`"] == (325, 325)
    assert cases["kvm-unit-tests `x86/vmx_tests.c`"] == (3948, 3948)
    assert cases["KVM selftests"] == (17, 16)
