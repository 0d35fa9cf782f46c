"""Scales (the LM scaffold's sizes) and ladders, read from a TOML config.

The bundled config is specs/scales.toml, installed as `genesys_dsl.specs`.
`scales()` returns name -> Scale, smallest first.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    train_tokens: int = Field(gt=0)

    def describe(self) -> str:
        return (f"{self.name} (D={self.d_model}, N={self.n_layers}, vocab={self.vocab_size}, "
                f"L={self.context_length})")


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    scales: list[str] = Field(min_length=1)
    selection_ratio: float = Field(gt=0, le=1)


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
            raise ConfigError(f"{path}: ladders.{name}.scales names unknown scale(s) {missing}; "
                              f"known: {list(ordered)}")
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
        settings.setdefault("train_tokens", 1)
        try:
            return Scale(**settings)
        except ValidationError as err:
            raise ConfigError("scale settings: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
    known = scales(path)
    if scale not in known:
        import difflib

        close = difflib.get_close_matches(str(scale), list(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown scale '{scale}'{hint} Known scales: {', '.join(known)}")
    return known[scale]
