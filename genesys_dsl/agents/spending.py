"""Token and dollar accounting for an agent client, and the spend limit it stops at.

Costs come from configured prices (dollars per million input / output tokens, per
model), never from a built-in price list that would silently go stale. A model
without a price costs 0 and leaves a note, so a missing price is visible but never
stops a run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Mapping

from .backend import AgentReply, SpendLimitReached

log = logging.getLogger(__name__)

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_MILLION


@dataclass(frozen=True)
class SpendLimit:
    """Stop before a request once either total is reached (None: no limit)."""

    dollars: float | None = None
    tokens: int | None = None

    def reached(self, dollars: float, tokens: int) -> str | None:
        """Why the limit is reached, or None."""
        if self.dollars is not None and dollars >= self.dollars:
            return f"spent ${dollars:.4f} of the ${self.dollars:.4f} limit"
        if self.tokens is not None and tokens >= self.tokens:
            return f"used {tokens} of the {self.tokens}-token limit"
        return None


@dataclass
class Totals:
    """Counters over a client's lifetime (what `Ledger.totals()` returns)."""

    requests: int = 0  # requests that reached the endpoint and got a reply
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # dollars spent
    saved: float = 0.0  # dollars the cache saved (what its hits cost the first time)
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Ledger:
    """Prices, limit and running totals; safe to share between threads."""

    def __init__(self, prices: Mapping[str, Price] | None = None, limit: SpendLimit | None = None) -> None:
        self.prices = dict(prices or {})
        self.limit = limit or SpendLimit()
        self._totals = Totals()
        self._lock = threading.Lock()
        self._unpriced: set[str] = set()

    def totals(self) -> Totals:
        with self._lock:
            return Totals(**{**asdict(self._totals), "notes": list(self._totals.notes)})

    def cost_of(self, models: tuple[str, ...], prompt_tokens: int, completion_tokens: int) -> float:
        """The cost under the first of `models` (the configured name, then the one the
        endpoint reported) that has a price; 0 and a note when none has."""
        for model in models:
            if model in self.prices:
                return self.prices[model].cost(prompt_tokens, completion_tokens)
        name = next((m for m in models if m), "?")
        with self._lock:
            if name not in self._unpriced:
                self._unpriced.add(name)
                note = f"no price configured for model '{name}': its cost is counted as 0"
                self._totals.notes.append(note)
                log.info(note)
        return 0.0

    def check_limit(self) -> None:
        """Raise SpendLimitReached when the next request must not start."""
        with self._lock:
            why = self.limit.reached(self._totals.cost, self._totals.tokens)
        if why:
            raise SpendLimitReached(f"agent spend limit reached: {why}")

    def record_reply(self, reply: AgentReply) -> None:
        with self._lock:
            self._totals.requests += 1
            self._totals.prompt_tokens += reply.prompt_tokens
            self._totals.completion_tokens += reply.completion_tokens
            self._totals.cost += reply.cost

    def record_cache_hit(self, original_cost: float) -> None:
        with self._lock:
            self._totals.cache_hits += 1
            self._totals.saved += original_cost

    def record_retry(self) -> None:
        with self._lock:
            self._totals.retries += 1

