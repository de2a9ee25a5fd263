import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def oracle_cases(isa):
    """Cases of the oracle table for one ISA: kvm-unit-tests and selftest cases with the
    outcome each asserts (tests/data/README.md says where they come from)."""
    path = DATA / "oracle-cases.jsonl"
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [c for c in cases if c["isa"] == isa]
