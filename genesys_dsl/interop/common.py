"""What the three importers share: the error, config checks, GAB literals and domains,
activation names, and copying tensors between state dicts."""

from __future__ import annotations

from typing import Any, Mapping

from ..syntax.unparse import value as lit  # a number or bool as GAB text

# Hugging Face activation names (transformers.activations.ACT2FN) with an exact primitive.
# gelu_new / gelu_fast are the tanh formula written out; F.gelu(approximate="tanh") is the same
# function (they differ in the last bits only).
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
    "relu2": "relu2",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "identity",
}


class UnsupportedConfig(ValueError):
    """A Hugging Face config uses something a design cannot express exactly.

    `field` names the config attribute (e.g. "rope_parameters.rope_type"), when one is to blame."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def require(ok: bool, config: Any, field: str, value: Any, why: str) -> None:
    """Raise UnsupportedConfig naming config.<field> unless `ok`."""
    if not ok:
        raise UnsupportedConfig(f"{type(config).__name__}.{field}={value!r}: {why}", field)


def require_equal(config: Any, field: str, expected: Any, why: str) -> None:
    """The config attribute `field` must equal `expected` (the only value we express)."""
    actual = getattr(config, field, expected)
    require(actual == expected, config, field, actual, why)


def activation(config: Any, field: str) -> str:
    """The primitive for the activation named by config.<field>."""
    name = getattr(config, field)
    require(name in ACTIVATIONS, config, field, name,
            f"no primitive computes this activation (supported: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def final_norm_eps(config: Any, field: str, norm: str) -> str:
    """`, final_norm_eps=...` for the scaffold when the config's eps is not the norm's default."""
    from ..ops import registry

    (eps,) = (p.default for p in registry().get(norm).signature.params if p.name == "eps")
    actual = getattr(config, field)
    return "" if actual == eps else f", final_norm_eps={lit(actual)}"


def int_range(default: int, lo: int, hi: int) -> str:
    """`default in lo..hi`, widened to hold the default (an imported size may be unusual)."""
    return f"{default} in {min(lo, default)}..{max(hi, default)}"


def int_set(default: int, options: tuple[int, ...]) -> str:
    """`default in {options}`, with the default added when it is not among them."""
    values = sorted(set(options) | {default})
    return f"{default} in {{{', '.join(map(str, values))}}}"


def float_range(default: float, lo: float, hi: float) -> str:
    """`default in lo..hi` for a float, widened to hold the default."""
    return f"{lit(float(default))} in {lit(min(lo, default))}..{lit(max(hi, default))}"


def bias(flag: bool) -> str:
    """The keyword argument of a Linear call with the config's bias setting."""
    return ", bias=true" if flag else ""


def copy_module(out: dict, ours: str, theirs: Mapping, prefix: str, transpose: bool = False) -> None:
    """Copy `prefix`weight (and `prefix`bias if there is one) to `ours`.weight / .bias."""
    weight = theirs[prefix + "weight"]
    out[ours + ".weight"] = weight.t() if transpose else weight
    if prefix + "bias" in theirs:
        out[ours + ".bias"] = theirs[prefix + "bias"]


def split_rows(out: dict, names: list[str], weight, sizes: list[int], suffix: str) -> None:
    """Split a fused tensor along its first dim into our separate modules, in order."""
    for name, part in zip(names, weight.split(sizes, dim=0), strict=True):
        out[f"{name}.{suffix}"] = part
