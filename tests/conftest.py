import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
IN_CI = os.environ.get("CI") == "true"


def oracle_cases(isa):
    """Cases of the public oracle table for one ISA (the file sits in ../shared)."""
    path = SHARED / "oracle-public.jsonl"
    if not path.exists():
        if IN_CI:
            raise FileNotFoundError(f"{path} is missing: CI must have shared/ beside the clone")
        return []
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [c for c in cases if c["isa"] == isa]
