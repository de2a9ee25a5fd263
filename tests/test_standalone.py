"""The repository stands alone: nothing in it reads a folder beside the clone."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared|shared/reference|shared/reviews|ROOT\.parent|parents\[[2-9]\]")
TEXT_SUFFIXES = {".py", ".toml", ".txt", ".cfg", ".ini", ".sh", ".ipynb", ".md", ""}


def project_files():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).is_file()]


def test_no_file_refers_outside_the_clone():
    offenders = []
    for path in project_files():
        if path.suffix not in TEXT_SUFFIXES or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}")
    assert not offenders, "files that read outside the repository:\n" + "\n".join(offenders)


def test_a_copy_with_nothing_beside_it_collects_every_test(tmp_path):
    copy = tmp_path / "clone"
    for path in project_files():
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/test_oracle_svm.py", "tests/test_oracle_vmx.py"],
                          cwd=copy, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"(\d+) tests? collected", done.stdout) and " error" not in done.stdout
    assert int(re.search(r"(\d+) tests? collected", done.stdout).group(1)) >= 50
