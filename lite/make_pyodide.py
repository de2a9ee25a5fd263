"""Assemble the Pyodide folder of the JupyterLite site: the runtime from npm, the wheels we ship,
and a pyodide-lock.json that lists exactly those wheels.

    python lite/make_pyodide.py NPM_PACKAGE_DIR WHEEL_DIR OUT_DIR

Pyodide's own lock names Pyodide's rebuilt wheels (other hashes) and files that are not in the
npm package, so an entry from it would send the kernel to a CDN.  We keep the lock's `info`
(the Python and platform the runtime was built for) and write one entry per shipped wheel.
Only pure-Python wheels can ship (no compiler for Pyodide's ABI here); a dependency no wheel
provides stops the build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

RUNTIME = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide.js", "package.json")


def metadata(wheel: Path):
    """The wheel's METADATA headers and its top-level import names."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        top = next((n for n in names if n.endswith(".dist-info/top_level.txt")), None)
        if top:
            imports = z.read(top).decode().split()
        else:                             # the wheel's top-level modules and packages
            imports = sorted({n.split("/")[0].removesuffix(".py") for n in names
                              if not n.split("/")[0].endswith((".dist-info", ".data"))
                              and (n.endswith(".py") or "/" in n)})
    return meta, [i for i in imports if not i.startswith("_")]


def marker_env(info: dict) -> dict:
    """Where the kernel runs: CPython on Emscripten, at the lock's Python version."""
    version = info["python"]
    return {"sys_platform": "emscripten", "platform_system": "Emscripten", "os_name": "posix",
            "platform_machine": "wasm32", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "python_version": ".".join(version.split(".")[:2]),
            "python_full_version": version, "implementation_version": version, "extra": ""}


def entry(wheel: Path, env: dict) -> dict:
    name, version, _, tags = parse_wheel_filename(wheel.name)
    if not any(t.interpreter.startswith("py3") and t.abi == "none" and t.platform == "any" for t in tags):
        raise SystemExit(f"error: {wheel.name} is not a pure-Python (py3-none-any) wheel")
    meta, imports = metadata(wheel)
    depends = set()
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            depends.add(canonicalize_name(req.name))
    return {"name": str(name), "version": str(version), "file_name": wheel.name, "install_dir": "site",
            "package_type": "package", "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "imports": imports, "depends": sorted(depends), "unvendored_tests": False}


def main(npm_dir: Path, wheel_dir: Path, out: Path) -> None:
    lock = json.loads((npm_dir / "pyodide-lock.json").read_text())
    env = marker_env(lock["info"])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in RUNTIME:
        shutil.copy2(npm_dir / f, out / f)
    packages = {}
    for wheel in sorted(wheel_dir.glob("*.whl")):
        shutil.copy2(wheel, out / wheel.name)
        e = entry(wheel, env)
        packages[e["name"]] = e
    missing = sorted({d for e in packages.values() for d in e["depends"]} - set(packages))
    if missing:
        raise SystemExit(f"error: missing wheels for dependencies: {missing}")
    lock["packages"] = packages
    (out / "pyodide-lock.json").write_text(json.dumps(lock, indent=1, sort_keys=True))
    print(f"{out}: Python {lock['info']['python']}, {len(packages)} wheels")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*(Path(a) for a in sys.argv[1:]))
