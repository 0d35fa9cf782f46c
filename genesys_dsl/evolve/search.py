"""Search choices: how a child is made and who its parents are.

Every choice draws from a `random.Random` seeded by the run's seed and the
proposal's index, so a resumed run makes the same choices it would have made.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ..gp.selection import tournament
from .config import SearchSection

KINDS = ("scratch", "mutation", "crossover")


@dataclass(frozen=True)
class Candidate:
    """A design parents can be drawn from: its combined fitness and how high it climbed."""

    id: str
    fitness: float
    rung_index: int  # highest rung with a fitness (0 = lowest)
    island: int
    seed: bool  # one of the run's seed designs


def proposal_rng(run_seed: int, index: int) -> random.Random:
    return random.Random(f"genesys-evolve:{run_seed}:{index}")


def choose_kind(search: SearchSection, rng: random.Random) -> str:
    weights = [search.scratch, search.mutation, search.crossover]
    return rng.choices(KINDS, weights=weights)[0]


def island_of(index: int, islands: int) -> int:
    """Proposals take turns over islands."""
    return index % islands


def choose_parents(kind: str, pool: Sequence[Candidate], seeds: Sequence[Candidate], island: int,
                   search: SearchSection, rng: random.Random) -> tuple[list[Candidate], list[str]]:
    """Parents for a child of `kind` on `island`, and why each was chosen (recorded)."""
    count = 2 if kind == "crossover" else 1
    local = [c for c in pool if c.island == island] or list(pool)
    parents: list[Candidate] = []
    reasons: list[str] = []
    for _ in range(count):
        options = [c for c in local if c not in parents]
        draw = rng.random()
        if kind == "scratch" or draw < search.restart or not options:
            choices = [c for c in seeds if c not in parents] or list(seeds)
            parents.append(rng.choice(choices))
            reasons.append("seed")
        elif draw < search.restart + search.exploration:
            parents.append(rng.choice(options))
            reasons.append("exploration")
        else:
            parents.append(tournament(options, lambda c: c.fitness + search.confidence_bonus * c.rung_index,
                                      rng, size=search.tournament))
            reasons.append(f"tournament of {min(search.tournament, len(options))}")
    return parents, reasons


def migrants(pool: Sequence[Candidate], islands: int) -> list[tuple[str, int]]:
    """Each island's best design moves to the next island: (design id, new island)."""
    moves = []
    for island in range(islands):
        local = [c for c in pool if c.island == island]
        if local:
            best = max(local, key=lambda c: (c.fitness, c.id))
            moves.append((best.id, (island + 1) % islands))
    return moves
