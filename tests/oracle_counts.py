"""The README's table of how many cases of KVM's own tests the model agrees with, per area.

`python tests/oracle_counts.py` prints it; tests/test_oracle_counts.py checks that the README
carries exactly this table.  "Agree" counts the cases with no `model_gap`: every one of them
runs in the test suite and must pass.
"""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def _rows(cases, key):
    counts = collections.Counter(key(c) for c in cases)
    gaps = collections.Counter(key(c) for c in cases if c.get("model_gap"))
    return [(area, n, n - gaps[area]) for area, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def table() -> str:
    suites = [
        ("kvm-unit-tests `x86/svm_tests.c`", _lines(DATA / "kut-svm-cases.jsonl"), lambda c: c["area"]),
        ("kvm-unit-tests `x86/vmx_tests.c`", _lines(DATA / "kut-vmx-cases.jsonl.gz"), lambda c: c["area"]),
        ("KVM selftests", _lines(DATA / "selftests-cases.jsonl"),
         lambda c: f"`{c['source']['path'].rsplit('/', 1)[-1]}` ({c['isa']})"),
    ]
    out = ["| suite | area | cases | agree |", "|---|---|---:|---:|"]
    for suite, cases, key in suites:
        rows = _rows(cases, key)
        total, agree = sum(r[1] for r in rows), sum(r[2] for r in rows)
        out.append(f"| **{suite}** | **all** | **{total:,}** | **{agree:,}** |")
        out += [f"| | {area} | {n:,} | {a:,} |" for area, n, a in rows]
    return "\n".join(out)


if __name__ == "__main__":
    print(table())
