"""One design round: proposer -> reviewer (-> revisions) -> implementer, unit by unit.

    result = run_round([parent], client, FlowSettings(), seed=0)
    result.status, result.child, result.transcript

The flow is modelled on Genesys's agent pipeline, on the DSL:

1. The proposer sees the parent design(s) as GAB (with scores and already explored
   siblings when known) and the language reference, and answers a `Proposal`: a
   title, a motivation and the units to change or add, callees first.
2. The reviewer rates it (`Review`, 1-5) knowing the parents' static counts and
   what is already explored; below `review_threshold` the proposer revises, at
   most `max_revisions` times.
3. The implementer writes each planned unit on its own. Every attempt is parsed,
   spliced into the design, checked at `scales` and (`verify = "unit"`) verified;
   the JSON diagnostics go back for up to `max_repairs` repairs. A unit that never
   passes is rolled back: the child keeps the parent's unit.
4. The child (units the block no longer reaches removed) must differ from the
   parents and from the archive (canonical hash), and pass the final check.

Replies are untrusted: empty, truncated, malformed or off-topic ones become
diagnostics for the next attempt. `SpendLimitReached` (from the client, or
`max_cost` per design here) and a failing backend stop the round; the transcript
keeps everything up to that point.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import ir
from ..gp import canonical_hash, diff
from ..gp.tree import prune_units
from ..syntax.diagnostics import Diagnostic
from ..syntax.grammar import RESERVED
from ..syntax.unparse import unparse
from .backend import AgentClient, AgentReply, AgentRequest, SpendLimitReached
from .config import FlowSettings
from .gbnf import gbnf
from .implement import Attempt, attempt_unit, check_design, unit_label
from .prompts import template, versions
from .replies import Proposal, Review, UnitPlan, read_model, schema_of
from .transcript import Transcript

STATUSES = ("ok", "no-proposal", "no-review", "rejected", "no-change", "duplicate", "invalid",
            "spend-limit", "backend-error")


@dataclass
class RoundResult:
    status: str  # one of STATUSES
    reason: str
    transcript: Transcript
    child: ir.Design | None = None
    proposal: Proposal | None = None
    review: Review | None = None
    units: dict[str, str] = field(default_factory=dict)  # unit -> "written" / "rolled back"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Stop(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def run_round(parents: Sequence[ir.Design], client: AgentClient, settings: FlowSettings | None = None, *,
              seed: int, backend: str = "", parent_names: Sequence[str] | None = None,
              scores: Sequence[Any] | None = None, siblings: Sequence[ir.Design] = (),
              archive_hashes: Sequence[str] = ()) -> RoundResult:
    """One proposal, review and implementation from one parent (mutation) or two
    (crossover). Never raises for what a backend answers."""
    if len(parents) not in (1, 2):
        raise ValueError(f"a round takes one or two parents, not {len(parents)}")
    return _Round(list(parents), client, settings or FlowSettings(), seed=seed, backend=backend,
                  parent_names=list(parent_names or [p.name for p in parents]), scores=list(scores or []),
                  siblings=list(siblings), archive_hashes=list(archive_hashes)).run()


class _Round:
    def __init__(self, parents: list[ir.Design], client: AgentClient, settings: FlowSettings, *, seed: int,
                 backend: str, parent_names: list[str], scores: list, siblings: list[ir.Design],
                 archive_hashes: list[str]):
        self.parents = [ir.strip_spans(p) for p in parents]
        self.client, self.settings, self.seed = client, settings, seed
        self.names, self.scores, self.siblings = parent_names, scores, siblings
        self.parent_hashes = [canonical_hash(p) for p in self.parents]
        self.archive = sorted(set(archive_hashes))
        self.rng = random.Random(seed)
        self.mode = "mutation" if len(parents) == 1 else "crossover"
        self.texts = [unparse(p) for p in self.parents]
        self.transcript = Transcript(
            backend=backend, seed=seed, mode=self.mode, prompts=versions(),
            parents=[{"name": n, "hash": h} for n, h in zip(self.names, self.parent_hashes)],
            settings=settings.model_dump(mode="json"))
        self.proposal: Proposal | None = None
        self.review: Review | None = None
        self.units: dict[str, str] = {}

    # ------------------------------------------------------------ the round

    def run(self) -> RoundResult:
        try:
            child = self.implement(self.accepted_proposal())
            status, reason = "ok", f"{len([u for u in self.units.values() if u == 'written'])} unit(s) written"
        except _Stop as stop:
            child, status, reason = None, stop.status, stop.reason
        self.transcript.result = {
            "status": status, "reason": reason,
            "proposal": self.proposal.model_dump() if self.proposal else None,
            "review": self.review.model_dump() if self.review else None,
            "units": self.units,
            "child_hash": canonical_hash(child) if child is not None else None,
            "edits": diff(self.parents[0], child) if child is not None else [],
        }
        return RoundResult(status, reason, self.transcript, child, self.proposal, self.review, self.units)

    def accepted_proposal(self) -> Proposal:
        threshold = self.settings.review_threshold
        proposal = self.propose()
        for revision in range(self.settings.max_revisions + 1):
            review = self.review_of(proposal, revision)
            if review.score >= threshold:
                return proposal
            if revision == self.settings.max_revisions:
                raise _Stop("rejected", f"the reviewer rated the proposal {review.score}/5 (the bar is {threshold}) "
                                        f"after {revision} revision(s): {review.comments}")
            proposal = self.propose(review=review, previous=proposal, revision=revision + 1)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ requests

    def ask(self, role: str, messages: list[dict[str, str]], context: dict[str, Any], *,
            schema: Mapping[str, Any] | None = None, grammar: str | None = None,
            **details: Any) -> tuple[AgentReply, dict[str, Any]]:
        """One request through the client, recorded in the transcript."""
        cap = self.settings.max_cost
        if cap is not None and self.transcript.total.cost >= cap:
            raise _Stop("spend-limit", f"this design has cost ${self.transcript.total.cost:.4f}, "
                                       f"at or over max_cost ${cap:.4f}")
        role_settings = self.settings.role(role)
        request = AgentRequest(role=role, messages=tuple(messages), response_schema=schema, grammar=grammar,
                               temperature=role_settings.temperature, max_tokens=role_settings.max_tokens,
                               seed=self.rng.getrandbits(31), context=self.context(context))
        try:
            reply = self.client.complete(request)
        except SpendLimitReached as err:
            self.transcript.record(request, None, **details, outcome="spend limit reached")
            raise _Stop("spend-limit", str(err) or "the spend limit was reached") from None
        except Exception as err:  # noqa: BLE001 - a failing backend plugin stops the round, not the caller
            self.transcript.record(request, None, **details, outcome=f"backend error: {type(err).__name__}: {err}")
            raise _Stop("backend-error", f"the backend failed: {type(err).__name__}: {err}") from None
        if not isinstance(reply, AgentReply):
            self.transcript.record(request, None, **details, outcome="backend error")
            raise _Stop("backend-error", f"the backend returned {type(reply).__name__}, not an AgentReply")
        return reply, self.transcript.record(request, reply, **details)

    def context(self, extra: dict[str, Any]) -> dict[str, Any]:
        """What a non-LLM backend reads (see docs/agents.md, "Request context")."""
        return {"mode": self.mode, "parents": self.texts, "parent_names": self.names,
                "parent_hashes": self.parent_hashes, "scores": self.scores,
                "siblings": [unparse(s) for s in self.siblings], "archive_hashes": self.archive,
                "scales": list(self.settings.scales), **extra}

    def system(self, role: str) -> str:
        reference = ""
        if self.settings.reference:
            from ..reference import reference_text

            reference = reference_text()
        schema = {"proposer": Proposal, "reviewer": Review}.get(role)
        values = {"reference": reference, "threshold": self.settings.review_threshold}
        if schema is not None:
            values["schema"] = json.dumps(schema_of(schema))
        return template(role).render("system", **values)

    # ------------------------------------------------------------ proposer

    def propose(self, *, review: Review | None = None, previous: Proposal | None = None,
                revision: int = 0) -> Proposal:
        t = template("proposer")
        base = [{"role": "system", "content": self.system("proposer")},
                {"role": "user", "content": t.render("user", task=self.task(), parents=self.parents_text(),
                                                     siblings=self.siblings_text())}]
        messages = list(base)
        if review is not None and previous is not None:
            messages += [{"role": "assistant", "content": previous.model_dump_json()},
                         {"role": "user", "content": t.render("revise", score=review.score,
                                                              threshold=self.settings.review_threshold,
                                                              review=review.model_dump_json(indent=2))}]
        follow_up = list(messages)
        for attempt in range(self.settings.max_repairs + 1):
            context = {"revision": revision, "attempt": attempt,
                       "review": review.model_dump() if review else None,
                       "previous_proposal": previous.model_dump() if previous else None}
            reply, event = self.ask("proposer", messages, context, schema=schema_of(Proposal),
                                    revision=revision, attempt=attempt)
            proposal, problems = read_model(reply, Proposal)
            if proposal is not None:
                problems = self.plan_problems(proposal)
            event["diagnostics"] = _json(problems)
            if not problems:
                event["outcome"] = "proposal"
                self.proposal = proposal
                return proposal
            event["outcome"] = "unusable"
            messages = follow_up + [{"role": "assistant", "content": reply.text},
                                    {"role": "user", "content": t.render("retry", diagnostics=_dumps(problems))}]
        raise _Stop("no-proposal", f"no usable proposal after {self.settings.max_repairs + 1} attempt(s)")

    def task(self) -> str:
        if self.mode == "mutation":
            return "Propose one change to this design (a mutation):"
        return ("Propose a child of these two designs (a crossover): start from the first and bring in "
                "units or ideas from the second.")

    def parents_text(self) -> str:
        out = []
        for i, (name, text) in enumerate(zip(self.names, self.texts)):
            score = f", score {self.scores[i]}" if i < len(self.scores) and self.scores[i] is not None else ""
            out.append(f"Design {i + 1} ({name}{score}):\n```\n{text}```\n")
        return "\n".join(out)

    def siblings_text(self) -> str:
        if not self.siblings:
            return ""
        edits = ["; ".join(diff(self.parents[0], s)[:6]) or "(same as the parent)" for s in self.siblings[:10]]
        return "Already explored from the first design (do not repeat these):\n" + \
            "".join(f"- {e}\n" for e in edits)

    def plan_problems(self, proposal: Proposal) -> list[Diagnostic]:
        """Plans that cannot be implemented: unknown units to change, adds that clash."""
        from ..ops import registry

        first = self.parents[0]
        problems, seen = [], set()
        for i, plan in enumerate(proposal.units):
            found = self.plan_problem(plan, first, seen, registry().primitives)
            if found is not None:
                message, hint = found
                problems.append(Diagnostic(code="plan", file="reply", path=f"units/{i}", message=message, hint=hint))
            seen.add(plan.name)
        return problems

    @staticmethod
    def plan_problem(plan: UnitPlan, first: ir.Design, seen: set[str], primitives) -> tuple[str, str] | None:
        """(message, hint) when this planned unit cannot be written."""
        exists = plan.name == ir.BLOCK_NAME or first.unit(plan.name) is not None
        if plan.name in seen:
            return f"unit '{plan.name}' is listed twice", "list each unit once"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", plan.name) or (
                plan.name in RESERVED and plan.name != ir.BLOCK_NAME):
            return f"'{plan.name}' is not a unit name", "unit names are identifiers and not keywords"
        if plan.action == "change" and not exists:
            units = ", ".join(["block"] + [u.name for u in first.units if not u.is_block])
            return (f"unit '{plan.name}' does not exist in the first design",
                    f"change one of {units}, or add it with action 'add'")
        if plan.action == "add" and (exists or plan.name in primitives):
            return f"'{plan.name}' already names a unit or primitive", "pick a new name, or use action 'change'"
        return None

    # ------------------------------------------------------------ reviewer

    def review_of(self, proposal: Proposal, revision: int) -> Review:
        t = template("reviewer")
        base = [{"role": "system", "content": self.system("reviewer")},
                {"role": "user", "content": t.render("user", proposal=proposal.model_dump_json(indent=2),
                                                     parents=self.parents_text(), facts=self.facts(),
                                                     scale=self.settings.scales[0], explored=self.explored())}]
        messages = list(base)
        for attempt in range(self.settings.max_repairs + 1):
            context = {"proposal": proposal.model_dump(), "threshold": self.settings.review_threshold,
                       "revision": revision, "attempt": attempt}
            reply, event = self.ask("reviewer", messages, context, schema=schema_of(Review),
                                    revision=revision, attempt=attempt)
            review, problems = read_model(reply, Review)
            event["diagnostics"] = _json(problems)
            if review is not None:
                accepted = review.score >= self.settings.review_threshold
                event["outcome"] = "accepted" if accepted else "below threshold"
                self.review = review
                return review
            event["outcome"] = "unusable"
            messages = base + [{"role": "assistant", "content": reply.text},
                               {"role": "user", "content": t.render("retry", diagnostics=_dumps(problems))}]
        raise _Stop("no-review", f"no usable review after {self.settings.max_repairs + 1} attempt(s)")

    def facts(self) -> str:
        from ..check import stats
        from ..syntax.diagnostics import DSLError

        lines = []
        for name, parent in zip(self.names, self.parents):
            try:
                s = stats(parent, self.settings.scales[0])
            except DSLError:
                lines.append(f"- {name}: does not check clean at {self.settings.scales[0]}")
                continue
            lines.append(f"- {name}: {s.params:,} parameters ({s.block_params:,} per block), "
                         f"{s.flops_per_token:,.0f} FLOPs per token")
        return "\n".join(lines)

    def explored(self) -> str:
        text = f"{len(self.archive)} design(s) are already in the archive."
        return text + ("\n" + self.siblings_text() if self.siblings else "")

    # ------------------------------------------------------------ implementer

    def implement(self, proposal: Proposal) -> ir.Design:
        design = self.parents[0].model_copy(deep=True)
        for plan in proposal.units:
            design, written = self.implement_unit(design, proposal, plan)
            self.units[plan.name] = "written" if written else "rolled back"
        child = design.model_copy(deep=True)
        prune_units(child)
        child.name = _child_name(self.parents[0].name, canonical_hash(child))
        child.description = " ".join(proposal.title.split())[:120] or None
        if canonical_hash(child) in self.parent_hashes:
            raise _Stop("no-change", "the child is the parent: " + (
                "every unit was rolled back" if "written" not in self.units.values()
                else "the written units change nothing"))
        final = check_design(child, self.settings, verify_now=self.settings.verify == "final")
        if not final.ok:
            first = final.diagnostics[0]
            raise _Stop("invalid", f"the child does not pass: {first.code}: {first.message}")
        if canonical_hash(child) in self.archive:
            raise _Stop("duplicate", f"the child is already in the archive ({canonical_hash(child)[:12]})")
        return child

    def implement_unit(self, design: ir.Design, proposal: Proposal, plan: UnitPlan) -> tuple[ir.Design, bool]:
        t = template("implementer")
        what = ("the new " if plan.action == "add" else "") + unit_label(plan.name)
        others = ""
        if self.mode == "crossover":
            others = f"\nThe other parent ({self.names[1]}); its units may be reused:\n```\n{self.texts[1]}```\n"
        base = [{"role": "system", "content": self.system("implementer")},
                {"role": "user", "content": t.render("user", title=proposal.title, motivation=proposal.motivation,
                                                     design=unparse(design), others=others, what=what,
                                                     change=plan.change)}]
        # every implementer request carries the GBNF of one definition; a backend whose
        # server takes grammars (llama.cpp) may constrain decoding with it
        grammar = gbnf("block" if plan.name == ir.BLOCK_NAME else "unit", comments=False)
        messages = list(base)
        for attempt in range(self.settings.max_repairs + 1):
            context = {"proposal": proposal.model_dump(), "unit": plan.name, "action": plan.action,
                       "design": unparse(design), "attempt": attempt}
            reply, event = self.ask("implementer", messages, context, grammar=grammar, unit=plan.name,
                                    attempt=attempt)
            result: Attempt = attempt_unit(design, reply, plan.name, self.settings)
            event["diagnostics"] = result.to_json()
            event["outcome"] = "passed" if result.ok else ("rolled back" if attempt == self.settings.max_repairs
                                                           else "repair")
            if result.ok:
                return result.design, True
            messages = base + [{"role": "assistant", "content": reply.text},
                               {"role": "user", "content": t.render("repair", what=what,
                                                                    diagnostics=json.dumps(result.to_json(),
                                                                                           indent=2))}]
        return design, False


def _json(diagnostics: list[Diagnostic]) -> list[dict]:
    from ..check import diagnostics_dict

    return diagnostics_dict(diagnostics)["diagnostics"]


def _dumps(diagnostics: list[Diagnostic]) -> str:
    return json.dumps(_json(diagnostics), indent=2)


def _child_name(parent: str, digest: str) -> str:
    base = re.sub(r"_[0-9a-f]{6}$", "", parent)  # a child of a child does not grow its name
    return f"{base}_{digest[:6]}"
