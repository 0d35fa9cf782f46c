"""What the proposer and reviewer answer (JSON, checked by pydantic) and how a
reply's text is read: untrusted text in, a model or located diagnostics out.

Servers that honour `response_schema` return bare JSON; others wrap it in prose or
a fenced block, so `read_json` takes the first fenced block, else the first JSON
object in the text. Nothing in a reply is ever executed.
"""

from __future__ import annotations

import json
import re
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..syntax.diagnostics import Diagnostic
from .backend import AgentReply


class UnitPlan(BaseModel):
    """One unit the implementer will write."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the unit's name; 'block' for the root block")
    action: Literal["change", "add"] = Field(description="change an existing unit, or add a new one")
    change: str = Field(description="what to write or change in this unit, in one or two sentences")


class Proposal(BaseModel):
    """The proposer's answer: one design change, in units."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=200, description="a short name for the change")
    motivation: str = Field(description="why it should help: the idea and what it trades")
    units: list[UnitPlan] = Field(min_length=1, max_length=8,
                                  description="the units to write, callees before their callers")
    origin: str | None = Field(default=None, description="leave null (set by non-LLM backends)")


class Review(BaseModel):
    """The reviewer's answer: ratings from 1 (poor) to 5 (excellent)."""

    model_config = ConfigDict(extra="forbid")

    soundness: int = Field(ge=1, le=5, description="will it build, stay causal and train stably?")
    novelty: int = Field(ge=1, le=5, description="how different from the parents and the archive?")
    efficiency: int = Field(ge=1, le=5, description="parameters and FLOPs compared with the parents")
    score: int = Field(ge=1, le=5, description="overall rating")
    comments: str = Field(description="what to fix or keep, briefly")


Model = TypeVar("Model", bound=BaseModel)

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)


def reply_problem(reply: AgentReply) -> Diagnostic | None:
    """An empty or truncated reply, as a diagnostic (None when the reply is whole)."""
    if not reply.text.strip():
        return Diagnostic(code="empty-reply", message="the reply was empty", file="reply",
                          hint="answer with the requested content only")
    if reply.finish_reason == "length":
        return Diagnostic(code="truncated-reply", file="reply",
                          message=f"the reply was cut off at the token limit ({reply.completion_tokens} tokens)",
                          hint="answer more briefly: no explanations, only the requested content")
    return None


def fenced_blocks(text: str) -> list[str]:
    return [m.group(1) for m in _FENCE.finditer(text)]


def read_json(text: str) -> tuple[object | None, Diagnostic | None]:
    """The JSON value in a reply: the whole text, else a fenced block, else the first
    `{...}` that decodes."""
    candidates = [text.strip()] + [b.strip() for b in fenced_blocks(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate), None
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
            return value, None
        except json.JSONDecodeError:
            continue
    return None, Diagnostic(code="no-json", file="reply", message="the reply holds no JSON object",
                            hint="answer with one JSON object following the schema, and nothing else")


def read_model(reply: AgentReply, model: type[Model]) -> tuple[Model | None, list[Diagnostic]]:
    """A reply read as `model`, or the diagnostics saying why it is not one."""
    problem = reply_problem(reply)
    if problem is not None and problem.code == "empty-reply":
        return None, [problem]
    value, missing = read_json(reply.text)
    if missing is not None:
        return None, [problem or missing]
    try:
        return model.model_validate(value), []
    except ValidationError as err:
        diagnostics = [
            Diagnostic(code="schema", file="reply", path="/".join(str(p) for p in e["loc"]) or None,
                       message=f"{'.'.join(str(p) for p in e['loc']) or 'the reply'}: {e['msg']}",
                       hint=f"follow the JSON schema of {model.__name__}")
            for e in err.errors()[:8]
        ]
        return None, ([problem] if problem else []) + diagnostics


def schema_of(model: type[BaseModel]) -> dict:
    """The JSON Schema sent as `response_schema`."""
    return model.model_json_schema()
