"""The `gp` agent backend: every role answered by the genetic-programming operators,
offline, with no model and no key. The default of `genesys propose`.

It reads the structured inputs the flow puts in `request.context` (see
docs/agents.md) and answers in the same form an LLM must:

* proposer: draws offspring with `genesys_dsl.gp.mutate` / `crossover` seeded by
  `request.seed`, keeps the first whose changed units can be written one at a time
  (each step checks clean; scaffold edits are skipped), and answers a `Proposal`
  naming the operator, its edits and the units, callees first. `origin` records
  `gp:<operator>:<seed>` so the other roles can redraw the same offspring.
* reviewer: redraws the offspring and rates it: novelty 1 when its canonical hash
  is a parent's or in `archive_hashes`, 3 when a sibling is one edit away, else 5;
  soundness from the checker; efficiency from static FLOPs per token against the
  first parent.
* implementer: the offspring's definition of the requested unit, in GAB.
"""

from __future__ import annotations

import random
import time
from functools import lru_cache
from typing import Any, Mapping

from genesys_dsl import ir
from genesys_dsl.agents.backend import AgentBackend, AgentReply, AgentRequest
from genesys_dsl.agents.replies import Proposal, Review, UnitPlan
from genesys_dsl.syntax.diagnostics import DSLError
from genesys_dsl.syntax.parse import parse
from genesys_dsl.syntax.unparse import unit as unit_text

DRAWS = 8  # offspring drawn per proposal before giving up


class GPBackendError(ValueError):
    """A request the gp backend cannot answer (its reply says why; the flow records it)."""


@lru_cache(maxsize=64)
def _parents(texts: tuple[str, ...]) -> tuple[ir.Design, ...]:
    return tuple(ir.strip_spans(parse(t, filename=f"parent{i + 1}")) for i, t in enumerate(texts))


@lru_cache(maxsize=256)
def _offspring(texts: tuple[str, ...], seed: int):
    from genesys_dsl.gp import crossover, mutate

    parents = _parents(texts)
    return mutate(parents[0], seed=seed) if len(parents) == 1 else crossover(parents[0], parents[1], seed=seed)


def _shape(u: ir.Unit) -> str:
    bare = u.model_copy(update={"comments": [], "end_comments": [], "doc": None})
    return unit_text(bare)


def changed_units(parent: ir.Design, child: ir.Design) -> list[UnitPlan]:
    """The units of `child` that differ from or are missing in `parent`, callees first."""
    from genesys_dsl.gp.tree import closure

    def old(u: ir.Unit) -> ir.Unit | None:
        return parent.block if u.is_block else parent.unit(u.name)

    changed = {u.name: u for u in child.units if old(u) is None or _shape(old(u)) != _shape(u)}
    block = child.block
    order = [n for n in closure(child, [u.name for u in child.units if not u.is_block]) if n in changed]
    if block is not None and block.name in changed:
        order.append(block.name)
    return [UnitPlan(name=ir.BLOCK_NAME if changed[n].is_block else n,
                     action="add" if old(changed[n]) is None else "change", change="") for n in order]


def _writable(parent: ir.Design, child: ir.Design, plans: list[UnitPlan], scales: list[str]) -> bool:
    """Whether writing the planned units one at a time checks clean at every step."""
    from genesys_dsl.agents.config import FlowSettings
    from genesys_dsl.agents.implement import check_design, splice

    settings = FlowSettings(scales=scales, verify="off")
    design = parent
    for plan in plans:
        unit = child.block if plan.name == ir.BLOCK_NAME else child.unit(plan.name)
        design = splice(design, unit)
        if not check_design(design, settings, verify_now=False).ok:
            return False
    return True


class GPClient:
    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)

    def complete(self, request: AgentRequest) -> AgentReply:
        start = time.perf_counter()
        handler = {"proposer": self.propose, "reviewer": self.review, "implementer": self.implement}.get(request.role)
        try:
            text = handler(request) if handler else f"the gp backend has no role '{request.role}'"
        except GPBackendError as err:
            text = str(err)  # an unusable reply: the flow turns it into diagnostics
        return AgentReply(text=text, model="gp", finish_reason="stop", seconds=time.perf_counter() - start)

    # -- roles
    def propose(self, request: AgentRequest) -> str:
        from genesys_dsl.gp import GPError, diff

        texts = tuple(request.context["parents"])
        parent = _parents(texts)[0]
        rng = random.Random(request.seed)
        reasons = []
        for _ in range(DRAWS):
            seed = rng.getrandbits(31)
            try:
                offspring = _offspring(texts, seed)
            except GPError as err:
                raise GPBackendError(f"no GP offspring: {err}") from None
            if (offspring.design.scaffold or ir.Scaffold()) != (parent.scaffold or ir.Scaffold()):
                reasons.append(f"{offspring.operator} changed the scaffold")
                continue
            plans = changed_units(parent, offspring.design)
            if not plans or not _writable(parent, offspring.design, plans, list(request.context["scales"])):
                reasons.append(f"{offspring.operator}: its units cannot be written one at a time")
                continue
            edits = diff(parent, offspring.design)
            for plan in plans:
                label = "block" if plan.name == ir.BLOCK_NAME else plan.name
                mine = [e for e in edits if e.startswith(f"{label}:") or e.endswith(f" unit {label}")]
                plan.change = "; ".join(mine) or "as in the offspring"
            first = edits[0] if edits else offspring.operator
            return Proposal(title=f"{offspring.operator}: {first}"[:200],
                            motivation=f"The GP operator {offspring.operator} made these edits: "
                                       + "; ".join(edits),
                            units=plans, origin=f"gp:{offspring.operator}:{seed}").model_dump_json()
        raise GPBackendError("no writable GP offspring in {} draws ({})".format(DRAWS, "; ".join(reasons)))

    def review(self, request: AgentRequest) -> str:
        from genesys_dsl.check import stats
        from genesys_dsl.gp import canonical_hash, diff

        texts = tuple(request.context["parents"])
        child = self._child(request)
        parent = _parents(texts)[0]
        digest = canonical_hash(child)
        known = set(request.context.get("archive_hashes", ())) | {canonical_hash(p) for p in _parents(texts)}
        siblings = [ir.strip_spans(parse(s, filename="sibling")) for s in request.context.get("siblings", ())]
        if digest in known:
            novelty, why = 1, "the child is already explored (same canonical hash)"
        elif any(len(diff(s, child)) <= 1 for s in siblings):
            novelty, why = 3, "one edit away from an explored sibling"
        else:
            novelty, why = 5, "not explored yet"
        scale = request.context["scales"][0]
        try:
            ratio = stats(child, scale).flops_per_token / stats(parent, scale).flops_per_token
            soundness = 5
        except DSLError:
            ratio, soundness = float("inf"), 1
        efficiency = next((s for limit, s in ((1.1, 5), (1.5, 4), (2.0, 3), (4.0, 2)) if ratio <= limit), 1)
        score = 1 if 1 in (novelty, soundness) else round((novelty + soundness + efficiency) / 3)
        return Review(soundness=soundness, novelty=novelty, efficiency=efficiency, score=score,
                      comments=f"{why}; {ratio:.2f}x the FLOPs per token of the first parent").model_dump_json()

    def implement(self, request: AgentRequest) -> str:
        child = self._child(request)
        name = request.context["unit"]
        unit = child.block if name == ir.BLOCK_NAME else child.unit(name)
        if unit is None:
            raise GPBackendError(f"the GP offspring has no unit '{name}'")
        return unit_text(unit)

    def _child(self, request: AgentRequest) -> ir.Design:
        origin = (request.context.get("proposal") or {}).get("origin") or ""
        kind, _, rest = origin.partition(":")
        operator, _, seed = rest.rpartition(":")
        if kind != "gp" or not seed.isdigit():
            raise GPBackendError("the gp backend only reviews and implements its own proposals "
                                 f"(origin 'gp:<operator>:<seed>', not {origin!r})")
        offspring = _offspring(tuple(request.context["parents"]), int(seed))
        if offspring.operator != operator:
            raise GPBackendError(f"origin {origin!r} does not reproduce: seed {seed} draws {offspring.operator}")
        return offspring.design


BACKEND = AgentBackend(
    name="gp",
    summary="offline: proposals, reviews and units from the genetic-programming operators (no model, no key)",
    create=GPClient,
)
