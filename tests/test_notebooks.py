"""Notebooks are committed clean and run top to bottom without errors."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_is_a_start_page():
    assert any(p.name == "00_start_here.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and not cell.get("execution_count"), path.name
    assert "widgets" not in nb.get("metadata", {})


GRADES = ("✓ Right", "✗ Not quite", "The answer.", "Decided at step")
# The report goes to a file: a kernel's last output can miss the client on a loaded machine.
SELF_CHECK = ("import json\nfrom nsvm_model import exercises as _E\n"
              "open({path!r}, 'w').write(json.dumps([len(_E.ASKED), _E.self_check()]))")


def output_text(out) -> str:
    if "text" in out:
        return "".join(out["text"])
    return " ".join("".join(v) if isinstance(v, list) else str(v) for v in out.get("data", {}).values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_runs_without_error_grades_nothing_and_every_question_checks_out(path, tmp_path):
    """Run All: no error, no grade or answer on the page; then every question asked is graded
    right with its answer and wrong with another (a cell the test adds, not the notebook)."""
    nb = nbformat.read(path, as_version=4)
    exercises = sum(any(t.startswith("exercise:") for t in c.metadata.get("tags", [])) for c in nb.cells)
    report_file = tmp_path / "self-check.json"
    nb.cells.append(nbformat.v4.new_code_cell(SELF_CHECK.format(path=str(report_file))))
    NotebookClient(nb, timeout=180, kernel_name="python3", iopub_timeout=30,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells[:-1]:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
            assert out.get("name") != "stderr", out.get("text")
            text = output_text(out)
            shown = [mark for mark in GRADES if mark in text]
            assert not shown, f"{path.name}: Run All shows a grade or an answer: {text[:200]}"
    asked, problems = json.loads(report_file.read_text())
    assert asked >= exercises, f"{path.name}: {exercises} exercise cells but {asked} questions asked"
    assert problems == [], problems


def test_model_imports_no_ui_library():
    code = ("import sys, nsvm_model; "
            "print([m for m in ('ipywidgets','matplotlib','graphviz','IPython') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
