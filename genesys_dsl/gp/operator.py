"""The operator contract of genetic programming.

An operator edits design trees: `op(parents, rng) -> Design`. `arity` is how many
parents it takes (1 = mutation, 2 = crossover); `weight` is its default share among
operators of the same arity. It returns a new design and never changes its parents;
everything random comes from `rng` (a `random.Random`), so the same seed gives the
same offspring. Operators are registered by plugins through the
`register_operators(register)` hook, exactly like the built-in ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from ..ir import Design

OperatorFunction = Callable[[Sequence[Design], random.Random], Design]


class OperatorError(ValueError):
    """An operator that cannot be registered, or that cannot apply to these parents."""


@dataclass(frozen=True)
class Operator:
    name: str
    arity: int
    weight: float
    function: OperatorFunction
    summary: str = ""
    plugin: str | None = None  # which plugin registered it

    def __post_init__(self) -> None:
        if self.arity not in (1, 2):
            raise OperatorError(f"operator '{self.name}': arity must be 1 (mutation) or 2 (crossover)")
        if not self.weight >= 0:
            raise OperatorError(f"operator '{self.name}': weight must be a non-negative number")

    def __call__(self, parents: Sequence[Design], rng: random.Random) -> Design:
        if len(parents) != self.arity:
            raise OperatorError(f"operator '{self.name}' takes {self.arity} parent(s), got {len(parents)}")
        return self.function(parents, rng)


class NotApplicable(OperatorError):
    """Raised by an operator when these parents offer nothing to edit (e.g. no hyperparameter
    with a domain); the caller tries another operator. Not a plugin failure."""
