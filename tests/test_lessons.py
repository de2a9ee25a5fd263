"""The lessons teach: every objective is told, shown and practised; every preset is run;
exercises wait for the learner's answer.

Tags tie cells to objectives (notebooks/OBJECTIVES.md): `teach:O7` on a markdown cell
that states it, `demo:O7` on a code cell that shows it in a run, `exercise:O7` on a code
cell that asks about it.  Running the notebooks (tests/test_notebooks.py) checks that
Run All prints no grade and no answer, and grades every question asked.
"""

import ast
import json
import re
from pathlib import Path

import pytest

import nsvm_model as nm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ROW = re.compile(r"^\| (O\d+) \| (.+) \| (\d\d_\w+) \|$")
TAG = re.compile(r"^(teach|demo|exercise):(O\d+)$")
PINNED = re.compile(r"exercises\.(state_at|outcome|kernel_order|pick_reason|which_breaks)\(")
KIND_CELL = {"teach": "markdown", "demo": "code", "exercise": "code"}


def objectives() -> dict:
    rows = [ROW.match(line) for line in (ROOT / "notebooks" / "OBJECTIVES.md").read_text().splitlines()]
    return {m.group(1): (m.group(2), m.group(3)) for m in rows if m}


def cells(path: Path):
    return json.loads(path.read_text())["cells"]


def source(cell) -> str:
    return "".join(cell["source"])


def tagged():
    """(notebook stem, kind, objective, cell type) for every lesson tag."""
    out = []
    for path in NOTEBOOKS:
        for cell in cells(path):
            for tag in cell.get("metadata", {}).get("tags", []):
                m = TAG.match(tag)
                if m:
                    out.append((path.stem, m.group(1), m.group(2), cell["cell_type"]))
                elif tag.split(":")[0] in KIND_CELL:
                    out.append((path.stem, "malformed", tag, cell["cell_type"]))
    return out


def test_there_are_at_least_30_objectives_each_in_an_existing_notebook():
    objs = objectives()
    assert len(objs) >= 30
    assert [int(o[1:]) for o in objs] == list(range(1, len(objs) + 1))
    stems = {p.stem for p in NOTEBOOKS}
    assert {nb for _, nb in objs.values()} <= stems


@pytest.mark.parametrize("oid", sorted(objectives(), key=lambda o: int(o[1:])))
def test_each_objective_is_taught_shown_and_exercised_in_its_notebook(oid):
    notebook = objectives()[oid][1]
    kinds = {(kind, cell_type) for nb, kind, o, cell_type in tagged() if o == oid and nb == notebook}
    for kind, cell_type in KIND_CELL.items():
        assert (kind, cell_type) in kinds, f"{oid} has no {kind} {cell_type} cell in {notebook}"


def test_every_tag_names_a_known_objective_of_its_notebook():
    objs = objectives()
    bad = [(nb, kind, o) for nb, kind, o, _ in tagged() if kind == "malformed" or o not in objs
           or objs[o][1] != nb]
    assert not bad


def literals(path: Path):
    """(string literals, cell text) of every code cell."""
    for cell in cells(path):
        if cell["cell_type"] == "code":
            text = source(cell)
            yield {n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)
                   and isinstance(n.value, str)}, text


@pytest.mark.parametrize("isa", ["svm", "vmx"])
def test_every_preset_is_run_by_some_notebook(isa):
    shared = set(nm.Scenario.presets("svm")) & set(nm.Scenario.presets("vmx"))
    used = set()
    for path in NOTEBOOKS:
        for strings, text in literals(path):
            if f'"{isa}"' in text or (not shared & strings):
                used |= strings
    missing = sorted(set(nm.Scenario.presets(isa)) - used)
    assert not missing, f"{isa} presets no notebook runs: {missing}"


def check_calls(path: Path):
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(source(cell))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                yield node


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_check_cells_hold_placeholders_and_nothing_reveals(path):
    for call in check_calls(path):
        if call.func.attr == "reveal":
            pytest.fail(f"{path.name}: q.reveal() in a committed cell shows an answer on Run All")
        if call.func.attr != "check":
            continue
        for arg in call.args:
            values = arg.values if isinstance(arg, ast.Dict) else [arg]
            for v in values:
                assert isinstance(v, ast.Constant) and v.value is Ellipsis, \
                    f"{path.name}: a pre-filled answer in {ast.unparse(call)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_each_exercise_cell_asks_a_pinned_question(path):
    for cell in cells(path):
        if any(t.startswith("exercise:") for t in cell.get("metadata", {}).get("tags", [])):
            text = source(cell)
            assert PINNED.search(text), (f"{path.name}: an exercise cell must ask a question pinned by kind "
                                         f"and parameters (exercises.state_at, outcome, ...): {text[:80]}")


def test_durations_are_in_each_header():
    for path in NOTEBOOKS:
        first = source(cells(path)[0])
        assert re.search(r"\d+ min", first), path.name
