"""Settings of the `openai` agent backend: the config mapping, checked, plus the
usual environment variables.

Explicit config wins over the environment:

    base_url  <- OPENAI_BASE_URL      (unset: OpenAI's own API)
    api_key   <- OPENAI_API_KEY       (needed by OpenAI's API; other endpoints get a dummy key)
    model     <- GENESYS_AGENT_MODEL  (no default: the bill depends on it)

`roles: {implementer: {model: ..., base_url: ..., api_key: ...}}` overrides any of the
three for one role, so a cheap model can review while a strong one implements.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Literal, Mapping
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genesys_dsl.agents.backend import ROLES, AgentError
from genesys_dsl.agents.spending import Price, SpendLimit

OPENAI_API_HOST = "api.openai.com"
# local servers (llama.cpp, vLLM, Ollama) ignore the key but the client insists on one
DUMMY_KEY = "not-needed"

ENV_BASE_URL, ENV_API_KEY, ENV_MODEL = "OPENAI_BASE_URL", "OPENAI_API_KEY", "GENESYS_AGENT_MODEL"

Role = Literal["proposer", "reviewer", "implementer"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointConfig(_Strict):
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None


class PriceConfig(_Strict):
    input: float = Field(ge=0, allow_inf_nan=False, description="dollars per million prompt tokens")
    output: float = Field(ge=0, allow_inf_nan=False, description="dollars per million completion tokens")


class LimitConfig(_Strict):
    dollars: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tokens: int | None = Field(default=None, gt=0)


class OpenAIConfig(EndpointConfig):
    roles: dict[Role, EndpointConfig] = {}
    prices: dict[str, PriceConfig] = {}
    cache_dir: str | None = None
    spend_limit: LimitConfig | None = None
    timeout: float = Field(default=120.0, gt=0, description="seconds per HTTP request")
    max_retries: int = Field(default=4, ge=0, le=20)
    retry_base_delay: float = Field(default=1.0, ge=0, description="seconds before the first retry")
    retry_max_delay: float = Field(default=30.0, ge=0)
    retry_seed: int = 0  # seeds the backoff jitter
    grammar: bool = False  # send request.grammar as llama.cpp's `grammar` (GBNF)
    structured_output: bool = True  # send response_format json_schema when a request has a schema

    @field_validator("spend_limit", mode="before")
    @classmethod
    def _dollars(cls, value: Any) -> Any:
        """A bare number is a limit in dollars."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"dollars": value}
        if value is not None and not isinstance(value, Mapping):
            raise ValueError("give a number of dollars, or {dollars: ..., tokens: ...}")
        return value


@dataclass(frozen=True)
class Endpoint:
    """Where one role's requests go."""

    base_url: str | None  # None: the openai client's default (OpenAI's API)
    api_key: str
    model: str

    @property
    def label(self) -> str:
        return self.base_url or f"https://{OPENAI_API_HOST}/v1"


@dataclass(frozen=True)
class Settings:
    endpoints: Mapping[str, Endpoint | AgentError]  # role -> endpoint, or why the role has none
    prices: Mapping[str, Price]
    limit: SpendLimit
    cache_dir: str | None
    timeout: float
    max_retries: int
    retry_base_delay: float
    retry_max_delay: float
    retry_seed: int
    grammar: bool
    structured_output: bool


def load_settings(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Check `config` against the environment; every problem is an AgentError naming the setting."""
    environ = os.environ if environ is None else environ
    try:
        parsed = OpenAIConfig.model_validate(dict(config))
    except ValidationError as err:
        raise AgentError(_describe(err)) from None
    defaults = EndpointConfig(
        base_url=parsed.base_url or environ.get(ENV_BASE_URL) or None,
        api_key=parsed.api_key or environ.get(ENV_API_KEY) or None,
        model=parsed.model or environ.get(ENV_MODEL) or None,
    )
    endpoints = {role: _endpoint(role, defaults, parsed.roles.get(role)) for role in ROLES}
    if all(isinstance(e, AgentError) for e in endpoints.values()):
        raise AgentError(str(endpoints["implementer"]))
    limit = parsed.spend_limit
    return Settings(
        endpoints=endpoints,
        prices={model: Price(p.input, p.output) for model, p in parsed.prices.items()},
        limit=SpendLimit(limit.dollars, limit.tokens) if limit else SpendLimit(),
        cache_dir=parsed.cache_dir,
        timeout=parsed.timeout,
        max_retries=parsed.max_retries,
        retry_base_delay=parsed.retry_base_delay,
        retry_max_delay=parsed.retry_max_delay,
        retry_seed=parsed.retry_seed,
        grammar=parsed.grammar,
        structured_output=parsed.structured_output,
    )


def _endpoint(role: str, defaults: EndpointConfig, override: EndpointConfig | None) -> Endpoint | AgentError:
    """The role's endpoint; a role without a model is an error raised when it is first used,
    so a config that names a model for the implementer only still serves the implementer."""
    override = override or EndpointConfig()
    base_url = override.base_url or defaults.base_url
    api_key = override.api_key or defaults.api_key
    model = override.model or defaults.model
    where = f"openai backend config: roles.{role}" if override.model_fields_set else "openai backend config"
    if not model:
        return AgentError(f"{where}: no model named for the {role}: set `model` in the agent config, "
                          f"pass --model, or set {ENV_MODEL}")
    if base_url is not None:
        parts = urlparse(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AgentError(f"{where}: base_url {base_url!r} is not an http(s) URL "
                             f"(e.g. http://127.0.0.1:8080/v1)")
    if not api_key:
        if base_url is None or urlparse(base_url).hostname == OPENAI_API_HOST:
            raise AgentError(f"{where}: OpenAI's API needs a key: set {ENV_API_KEY} or `api_key` in the "
                             f"agent config (a local endpoint given by base_url / {ENV_BASE_URL} needs none)")
        api_key = DUMMY_KEY
    return Endpoint(base_url=base_url, api_key=api_key, model=model)


def _describe(err: ValidationError) -> str:
    """pydantic's errors as one line per problem, each naming the setting."""
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        if e["loc"][:1] == ("roles",) and e["type"] == "literal_error":
            problems.append(f"roles: unknown role {str(e['input'])!r}; the roles are {', '.join(ROLES)}")
        elif e["type"] == "extra_forbidden":
            parent = OpenAIConfig
            if len(e["loc"]) >= 2 and e["loc"][0] == "roles":
                parent = EndpointConfig
            elif len(e["loc"]) >= 2 and e["loc"][0] == "prices":
                parent = PriceConfig
            elif e["loc"][0] == "spend_limit":
                parent = LimitConfig
            known = sorted(parent.model_fields)
            name = str(e["loc"][-1])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(f"{where}: unknown setting; {hint}known: {', '.join(known)}")
        else:
            problems.append(f"{where or 'config'}: {e['msg']}")
    return "openai backend config: " + "; ".join(dict.fromkeys(problems))
