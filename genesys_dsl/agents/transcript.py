"""The record of one design round: every request, reply, diagnostic, token and cent.

Written as JSON beside the child spec (`child.gab` -> `child.transcript.json`).
Usage is summed per role and for the whole design from the replies' own fields
(`prompt_tokens`, `completion_tokens`, `cost`, `cached`, `seconds`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backend import ROLES, AgentReply, AgentRequest

FORMAT = "genesys-transcript/1"


@dataclass
class Usage:
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    def add(self, reply: AgentReply) -> None:
        self.requests += 1
        self.cached += bool(reply.cached)
        self.prompt_tokens += int(reply.prompt_tokens)
        self.completion_tokens += int(reply.completion_tokens)
        self.cost += float(reply.cost)
        self.seconds += float(reply.seconds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost"] = round(self.cost, 6)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class Transcript:
    backend: str
    seed: int
    mode: str  # "mutation" or "crossover"
    parents: list[dict[str, str]]  # name and canonical hash of each parent
    prompts: dict[str, str]  # role -> role/version of the templates used
    settings: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=lambda: {role: Usage() for role in ROLES})
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> Usage:
        total = Usage()
        for u in self.usage.values():
            for name in ("requests", "cached", "prompt_tokens", "completion_tokens", "cost", "seconds"):
                setattr(total, name, getattr(total, name) + getattr(u, name))
        return total

    def record(self, request: AgentRequest, reply: AgentReply | None, **details: Any) -> dict[str, Any]:
        """Add one exchange (reply None: the request was not answered); returns the event
        so the caller can add what it made of the reply (diagnostics, outcome)."""
        event: dict[str, Any] = {
            "step": len(self.events) + 1,
            "role": request.role,
            **details,
            "request": {
                "messages": [dict(m) for m in request.messages],
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
                "seed": request.seed,
                "response_schema": bool(request.response_schema),
                "grammar": bool(request.grammar),
            },
            "reply": None if reply is None else {
                "text": reply.text, "model": reply.model, "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens, "cost": reply.cost, "cached": reply.cached,
                "finish_reason": reply.finish_reason, "seconds": round(reply.seconds, 3),
            },
        }
        if reply is not None:
            self.usage.setdefault(request.role, Usage()).add(reply)
        self.events.append(event)
        return event

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "backend": self.backend,
            "seed": self.seed,
            "mode": self.mode,
            "parents": self.parents,
            "prompts": self.prompts,
            "settings": self.settings,
            "usage": {"by_role": {r: u.to_dict() for r, u in self.usage.items()}, "design": self.total.to_dict()},
            "result": self.result,
            "events": self.events,
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def transcript_path(child: str | Path) -> Path:
    """Where the transcript of `child.gab` goes: `child.transcript.json`."""
    child = Path(child)
    return child.with_name(child.stem + ".transcript.json")
