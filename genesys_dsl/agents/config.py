"""Settings of a design round, from a TOML file (`genesys propose --config FILE`).

    backend = "openai"             # default "gp"
    review_threshold = 4           # accept proposals rated at least this (1-5)
    max_revisions = 2              # proposer revisions after a low review
    max_repairs = 3                # repair rounds per unit (K), and retries of bad JSON
    verify = "unit"                # "unit": verify every attempt; "final": the child; "off"
    max_cost = 2.0                 # US dollars per design; the round stops cleanly past it

    [roles.implementer]            # request settings per role
    temperature = 0.2
    max_tokens = 1500

    [backends.openai]              # handed to that backend's create(), as it is
    base_url = "http://127.0.0.1:8080/v1"
    model = "local"

Unknown keys and bad values are errors naming the file and the key.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .backend import ROLES, AgentError


class RoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=16, le=65536)


def _roles() -> dict[str, RoleSettings]:
    return {"proposer": RoleSettings(), "reviewer": RoleSettings(temperature=0.2, max_tokens=512),
            "implementer": RoleSettings(temperature=0.2, max_tokens=1500)}


class FlowSettings(BaseModel):
    """How one design round runs (everything but the backend)."""

    model_config = ConfigDict(extra="forbid")

    review_threshold: int = Field(default=4, ge=1, le=5)
    max_revisions: int = Field(default=2, ge=0, le=10)
    max_repairs: int = Field(default=3, ge=0, le=10)
    verify: Literal["unit", "final", "off"] = "unit"
    verify_checks: list[str] = ["budget", "causality", "gradients"]
    scales: list[str] = Field(default=["cpu-xs"], min_length=1)  # checked at all; verified at the first
    reference: bool = True  # include the language reference in system prompts
    max_cost: float | None = Field(default=None, gt=0)
    roles: dict[str, RoleSettings] = Field(default_factory=_roles)

    def role(self, name: str) -> RoleSettings:
        return self.roles.get(name) or _roles()[name]


class AgentsConfig(FlowSettings):
    backend: str = "gp"
    backends: dict[str, dict[str, Any]] = {}

    @property
    def flow(self) -> FlowSettings:
        return FlowSettings.model_validate(self.model_dump(exclude={"backend", "backends"}))

    def backend_config(self, model: str | None = None) -> dict[str, Any]:
        """What the chosen backend's create() gets: its `[backends.NAME]` table, with
        `model` overridden by --model."""
        config = dict(self.backends.get(self.backend, {}))
        if model:
            config["model"] = model
        return config


def load_config(path: str | Path | None = None, **overrides: Any) -> AgentsConfig:
    """The settings in `path` (defaults without one), with `overrides` (None values skipped)."""
    data: dict[str, Any] = {}
    where = str(path) if path is not None else "settings"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AgentError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise AgentError(f"{path}: cannot read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise AgentError(f"{path}: not valid TOML: {err}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "roles" in data and isinstance(data["roles"], dict):
        unknown = sorted(set(data["roles"]) - set(ROLES))
        if unknown:
            raise AgentError(f"{where}: unknown role(s) {', '.join(unknown)} in [roles]; roles: {', '.join(ROLES)}")
        data["roles"] = {**_roles(), **data["roles"]}
    try:
        config = AgentsConfig.model_validate(data)
    except ValidationError as err:
        raise AgentError(f"{where}: {_describe(err)}") from None
    if config.verify != "off":
        from ..verify import CHECKS  # imports torch: only when verifying

        bad = sorted(set(config.verify_checks) - set(CHECKS))
    if config.verify != "off" and bad:
        raise AgentError(f"{where}: verify_checks: unknown check(s) {', '.join(bad)}; available: {', '.join(CHECKS)}")
    from ..scales import ConfigError, get_scale

    for scale in config.scales:
        try:
            get_scale(scale)
        except ConfigError as err:
            raise AgentError(f"{where}: scales: {err}") from None
    return config


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        known = list(AgentsConfig.model_fields) if len(first["loc"]) == 1 else list(RoleSettings.model_fields)
        close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
        return f"unknown setting '{key}'{hint}"
    return f"{key}: {first['msg']}"
