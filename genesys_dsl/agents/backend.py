"""The agent-backend contract: what turns one role's request into one reply.

Backends are registered by plugins through `register_agents(register)`. The flow in
genesys_dsl.agents builds `AgentRequest`s (a role, chat messages, and optionally a
JSON schema or a GBNF grammar the reply must follow) and treats every reply as
untrusted text: it is parsed and checked, never executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

ROLES = ("proposer", "reviewer", "implementer")


class AgentError(Exception):
    """A user mistake in agent configuration (unknown backend, missing model name...)."""


class SpendLimitReached(Exception):
    """The configured spend limit would be exceeded; the caller stops cleanly."""


@dataclass(frozen=True)
class AgentRequest:
    role: str  # one of ROLES
    messages: tuple[Mapping[str, str], ...]  # OpenAI chat messages: {"role": ..., "content": ...}
    response_schema: Mapping[str, Any] | None = None  # JSON Schema of a structured reply
    grammar: str | None = None  # GBNF the reply must follow (llama.cpp-compatible servers)
    temperature: float = 0.7
    max_tokens: int = 1024
    seed: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)  # structured inputs for non-LLM backends (gp)


@dataclass(frozen=True)
class AgentReply:
    text: str  # the raw reply; parsed by the caller
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # in US dollars, from the configured prices
    cached: bool = False  # answered from the response cache: nothing spent
    finish_reason: str = ""  # "stop", "length" (truncated) ...
    seconds: float = 0.0


class AgentClient(Protocol):
    def complete(self, request: AgentRequest) -> AgentReply: ...


@dataclass(frozen=True)
class AgentBackend:
    """A named backend. `create(config)` returns an AgentClient; `config` holds the
    backend's settings (model, base URL, key, prices, cache folder ...) per role."""

    name: str
    summary: str
    create: Callable[[Mapping[str, Any]], AgentClient]
    plugin: str | None = None  # which plugin registered it
