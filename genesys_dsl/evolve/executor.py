"""The executor contract: where candidate evaluations run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class ExecutorKind:
    """A named executor. `create(settings)` returns an Executor."""

    name: str
    summary: str
    create: Callable[[Mapping[str, Any]], Any]
    plugin: str | None = None  # which plugin registered it
