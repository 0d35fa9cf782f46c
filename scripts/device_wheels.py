"""Fill .whl/ with what a GPU machine lacking a package index needs to run the GPU checks.

This workplace lends GPU machines (docs/kernels.md, "On a lent GPU machine") that have
Python 3.12, torch, triton, numpy, rich, pytest, hypothesis, transformers and more, but
no network. This script downloads, for CPython 3.12 on x86-64 Linux, the wheels of the
project's dependencies that such a machine does not have, at the versions this
checkout's .venv runs (so the GPU runs what is tested here). scripts/gpu_checks.sh
installs them there with `pip --no-index`, then the project itself from the working
tree that travels with the command.

    .venv/bin/python scripts/device_wheels.py      # then carry .whl to the machine

It fails, naming the package, when a dependency is neither downloadable nor on the
machine, so a missing wheel shows up here rather than in paid GPU time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"
PYTHON = "3.12"
MACHINE = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64", "os_name": "posix"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_34_x86_64"]

# The project's own dependencies, plus these extras: flash-linear-attention is the peer
# bench_kernels times against.
EXTRAS = ("fla",)

# The machine's image (/work/.library/device/KINDS.md, "Python packages already there",
# read 2026-11-17). Kept to what matters here: the closure of the dependencies stops at these.
ON_DEVICE = {
    "annotated-doc", "anyio", "attrs", "certifi", "click", "einops", "filelock", "fsspec", "h11", "httpcore",
    "httpx", "huggingface-hub", "hypothesis", "idna", "jinja2", "markdown-it-py", "markupsafe", "mdurl",
    "numpy", "packaging", "pluggy", "pygments", "pytest", "pyyaml", "regex", "requests", "rich",
    "safetensors", "setuptools", "sortedcontainers", "sympy", "tokenizers", "torch", "tqdm", "transformers",
    "triton", "typing-extensions", "urllib3", "wheel",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """The dependencies pyproject.toml declares, with those of `extras`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project["dependencies"], *(r for extra in extras for r in project["optional-dependencies"][extra])]


def closure(requirements: list[str] | None = None) -> dict[str, str]:
    """name -> version installed here, for every distribution the requirements (default:
    the project's) need that the machine lacks. Markers are evaluated for CPython 3.12 on
    x86-64 Linux; the extras of dependencies are not followed."""
    def wanted(requirement: Requirement) -> bool:
        return requirement.marker is None or requirement.marker.evaluate({**MACHINE, "extra": ""})

    needed: dict[str, str] = {}
    todo = [canonical(r.name) for r in map(Requirement, requirements or project_requirements()) if wanted(r)]
    while todo:
        name = todo.pop()
        if name in needed or name in ON_DEVICE:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"device_wheels: '{name}' is needed on the GPU machine but not installed in this .venv "
                     "(run `make install` first)")
        needed[name] = dist.version
        todo += [canonical(r.name) for r in map(Requirement, dist.requires or []) if wanted(r)]
    return needed


def download(pins: dict[str, str]) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON, "--implementation", "cp", *platforms, "-d", str(WHEELS),
               *(f"{name}=={version}" for name, version in sorted(pins.items()))]
    if subprocess.run(command).returncode != 0:
        sys.exit("device_wheels: pip could not download every wheel (above: which one); a package with no "
                 "CPython 3.12 x86-64 wheel must be built here or left out")


def main() -> int:
    pins = closure()
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir()
    download(pins)
    wheels = sorted(WHEELS.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {WHEELS.relative_to(ROOT)}/:")
    for wheel in wheels:
        print(f"  {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
