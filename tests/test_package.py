"""`pip install .`: the suite is a package that imports from anywhere, with its front end and its
shipped layouts; Binder's postBuild installs it the same way."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    wheels = list(out.glob("nsvm_suite-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_the_wheel_holds_both_packages_and_the_stage_front_end(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("nsvm_model/__init__.py", "nsvm_model/svm/flows.py", "nsvm_model/vmx/flows.py",
                   "nsvm_model/engine/trace.py", "widgets/__init__.py", "widgets/stage.js", "widgets/stage.css",
                   "widgets/layouts/flows.json.gz"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "benchmarks/"))]
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    for dep in ("ipywidgets", "anywidget", "traitlets", "graphviz"):
        assert f"Requires-Dist: {dep}" in text, dep


def test_installed_it_imports_from_any_folder_and_draws_an_explorer(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import nsvm_model as nm, widgets; from widgets import VmrunExplorer; "
            "ex = VmrunExplorer(nm.Scenario.svm()); ex.step = 3; "
            "print(nm.__file__); print(widgets.__file__); print(len(ex.stage.data['steps']), ex.stage._esm[:40])")
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    model, views, stage = out.stdout.splitlines()
    assert model.startswith(str(target)) and views.startswith(str(target))      # the installed copy, not the repo
    steps, esm = stage.split(" ", 1)
    assert int(steps) > 10 and "stage's front end" in esm


def test_binder_installs_the_package_and_saves_widget_state():
    post = (ROOT / "postBuild").read_text()
    assert os.access(ROOT / "postBuild", os.X_OK)
    assert "pip install --no-deps" in post and "overrides.json" in post
    assert (ROOT / "apt.txt").read_text().split() == ["graphviz"]
    pins = (ROOT / "requirements.txt").read_text()
    for dep in ("ipywidgets==", "anywidget==", "jupyterlab==", "graphviz=="):
        assert dep in pins, dep


def test_a_fresh_venv_installs_the_clone_and_runs_a_notebook(tmp_path):
    """As a learner with their own Python would: a new venv, `pip install <clone>` (its
    dependencies from PyPI), then a lesson executed by that venv's own kernel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(pip + [str(ROOT), "ipykernel", "nbclient", "nbformat"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import nbformat, nsvm_model, widgets; from nbclient import NotebookClient; "
            f"nb = nbformat.read({str(ROOT / 'notebooks' / '01_three_vmcbs.ipynb')!r}, as_version=4); "
            "NotebookClient(nb, timeout=300, kernel_name='python3').execute(); "
            "errors = [o for c in nb.cells for o in c.get('outputs', []) if o.get('output_type') == 'error']; "
            "print(nsvm_model.__file__); print(len(errors))")
    out = subprocess.run([str(py), "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    where, errors = out.stdout.split()
    assert where.startswith(str(venv)) and errors == "0"
