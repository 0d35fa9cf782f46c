"""The archive-store contract (the embedded default is SQLite, see sqlite_store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class StoreKind:
    """A named store. `open(location)` returns a Store for a run (a folder path)."""

    name: str
    summary: str
    open: Callable[[str], Any]
    plugin: str | None = None  # which plugin registered it
