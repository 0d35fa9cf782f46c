"""Where things are in the repository, for tests."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def seed_paths() -> list[Path]:
    return sorted(SPECS.rglob("*.gab"))


def load_script(name: str):
    """A script under benchmarks/, imported by its path (benchmarks/ is not a package), with
    benchmarks/ on sys.path for the scripts it imports; a generator for a fixture to yield
    from: the module is in sys.modules while it is used, as dataclasses need."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]
        sys.path.remove(str(ROOT / "benchmarks"))
