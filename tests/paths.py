"""Where things are in the repository, for tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def seed_paths() -> list[Path]:
    return sorted(SPECS.rglob("*.gab"))
