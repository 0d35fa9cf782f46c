"""Scales (the LM scaffold's sizes) and ladders of rungs, read from a TOML config.

The bundled config is specs/scales.toml, installed as `genesys_dsl.specs`.
`scales()` returns name -> Scale, smallest first; `ladders()` name -> Ladder. A rung
is a scale plus how long a design trains there (tokens per parameter of the scale's
reference count) and how many designs a run may score there (its budget).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SPECS_PACKAGE = "genesys_dsl.specs"
SCALES_FILE = "scales.toml"


class ConfigError(ValueError):
    """A scale or ladder config that cannot be used; the message names file and key."""


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    d_model: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    context_length: int = Field(gt=0)
    param_target: int = Field(gt=0)

    def describe(self) -> str:
        return (f"{self.name} (D={self.d_model}, N={self.n_layers}, vocab={self.vocab_size}, "
                f"L={self.context_length})")


class Rung(BaseModel):
    """One step of a ladder. Pretraining tokens = tokens_per_param x the scale's
    param_target; `train` overrides the trainer's defaults (batch size, lr, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: str
    name: str = ""  # defaults to the scale's name
    tokens_per_param: float = Field(gt=0)
    budget: int = Field(gt=0)  # designs a run may score at this rung
    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _named(self) -> Rung:
        if not self.name:
            object.__setattr__(self, "name", self.scale)
        return self


class Ladder(BaseModel):
    """Rungs from cheapest to dearest; the best `selection_ratio` of a rung's designs
    are promoted to the next. `suites` score a design when the user names none."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    rungs: list[Rung] = Field(min_length=1)
    selection_ratio: float = Field(gt=0, le=1)
    suites: list[str] = Field(default_factory=lambda: ["synthetic", "perplexity"])

    @property
    def scales(self) -> list[str]:
        return [r.scale for r in self.rungs]

    def rung(self, name: str | None = None) -> Rung:
        """A rung by name (the lowest when None); ConfigError listing the rungs otherwise."""
        if name is None:
            return self.rungs[0]
        for rung in self.rungs:
            if rung.name == name:
                return rung
        raise ConfigError(f"ladder '{self.name}' has no rung '{name}'{_did_you_mean(name, self.rung_names)} "
                          f"Its rungs: {', '.join(self.rung_names)}")

    @property
    def rung_names(self) -> list[str]:
        return [r.name for r in self.rungs]


class ScaleConfig(BaseModel):
    scales: dict[str, Scale]
    ladders: dict[str, Ladder]
    source: str


def default_config_path() -> str:
    return str(resources.files(SPECS_PACKAGE).joinpath(SCALES_FILE))


@lru_cache(maxsize=8)
def load_config(path: str | None = None) -> ScaleConfig:
    """Read and validate a scale config; errors name the file and the offending key."""
    path = path or default_config_path()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such scale config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    unknown = set(raw) - {"scales", "ladders"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; expected [scales.NAME] and [ladders.NAME]")
    scales: dict[str, Scale] = {}
    for name, settings in raw.get("scales", {}).items():
        scales[name] = _validated(Scale, path, f"scales.{name}", name, settings)
    if not scales:
        raise ConfigError(f"{path}: defines no [scales.NAME] table")
    ordered = dict(sorted(scales.items(), key=lambda kv: (kv[1].param_target, kv[1].d_model, kv[0])))
    ladders: dict[str, Ladder] = {}
    for name, settings in raw.get("ladders", {}).items():
        ladder = _validated(Ladder, path, f"ladders.{name}", name, settings)
        missing = [s for s in ladder.scales if s not in ordered]
        if missing:
            raise ConfigError(f"{path}: ladders.{name}.rungs name unknown scale(s) {missing}; "
                              f"known: {list(ordered)}")
        names = ladder.rung_names
        if len(set(names)) != len(names):
            raise ConfigError(f"{path}: ladders.{name}.rungs: two rungs share a name: {names}")
        ladders[name] = ladder
    return ScaleConfig(scales=ordered, ladders=ladders, source=path)


def _validated(model, path: str, key: str, name: str, settings) -> BaseModel:
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    try:
        return model(name=name, **settings)
    except ValidationError as err:
        problems = "; ".join(f"{key}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: {problems}") from None


def scales(path: str | None = None) -> dict[str, Scale]:
    """Scale name -> settings, smallest first."""
    return dict(load_config(path).scales)


def get_scale(scale: str | Scale | Mapping, path: str | None = None) -> Scale:
    """A scale by name, or a Scale built from a mapping of settings."""
    if isinstance(scale, Scale):
        return scale
    if isinstance(scale, Mapping):
        settings = dict(scale)
        settings.setdefault("name", "custom")
        settings.setdefault("param_target", 1)
        try:
            return Scale(**settings)
        except ValidationError as err:
            raise ConfigError("scale settings: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
    known = scales(path)
    if scale not in known:
        raise ConfigError(f"unknown scale '{scale}'{_did_you_mean(str(scale), list(known))} "
                          f"Known scales: {', '.join(known)}")
    return known[scale]


def ladders(path: str | None = None) -> dict[str, Ladder]:
    """Ladder name -> Ladder."""
    return dict(load_config(path).ladders)


def get_ladder(name: str, path: str | None = None) -> Ladder:
    """A ladder by name; ConfigError listing the ladders otherwise."""
    known = ladders(path)
    if name not in known:
        raise ConfigError(f"unknown ladder '{name}'{_did_you_mean(name, list(known))} "
                          f"Known ladders: {', '.join(known)}")
    return known[name]


def _did_you_mean(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
