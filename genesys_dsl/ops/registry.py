"""The primitive registry: what a spec may call besides its own units.

A primitive declares its interface in GAB signature syntax (parsed by the same
grammar as specs), so the checker treats primitives and units alike:

    Linear(x: seq[I], out: int, bias: bool = false) -> seq[out]

Beside the signature it carries everything later stages need: its family (which
primitives it may replace), its temporal class (pointwise / causal / acausal), a
parameter-count formula and a forward-FLOPs-per-token formula over the bound sizes,
constraints checked at each scale, and slots for its torch and Triton code.

Formulas receive `Bindings`: every name in the signature bound to a concrete value
(`*S` rest dims bind to a tuple of ints), plus `L`, the context length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

from .. import ir

Temporal = Literal["pointwise", "causal", "acausal"]
TEMPORAL_CLASSES: tuple[str, ...] = ("pointwise", "causal", "acausal")

Bindings = Mapping[str, Any]
Formula = Callable[[Bindings], float]


class RegistryError(ValueError):
    """A primitive definition that cannot be registered (raised at plugin load)."""


def _zero(_: Bindings) -> int:
    return 0


@dataclass(frozen=True)
class Constraint:
    """A condition on bound sizes, checked at every scale.

    `message` and `hint` are format strings over the bindings, e.g.
    "query heads {H} are not a multiple of key/value heads {G}".
    """

    holds: Callable[[Bindings], bool]
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Primitive:
    name: str
    signature: ir.Signature
    family: str
    temporal: Temporal
    summary: str
    params: Formula = _zero
    flops: Formula = _zero
    constraints: tuple[Constraint, ...] = ()
    reference: str | None = None  # the paper or implementation it follows
    torch: Any = None  # the module whose IMPLEMENTATIONS holds its TorchImpl (a name, imported to compile)
    triton: Any = None  # optional: the module whose IMPLEMENTATIONS holds its TritonImpl (docs/kernels.md)
    plugin: str | None = None  # which plugin registered it

    @property
    def text(self) -> str:
        from ..syntax.unparse import unparse_signature

        return unparse_signature(self.signature)

    @property
    def learns(self) -> bool:
        """Whether the primitive has learned parameters, probed at generic sizes."""
        return self.params(probe_bindings(self)) > 0

    @property
    def tensor_inputs(self) -> list[ir.Param]:
        return [p for p in self.signature.params if isinstance(p.type, ir.SeqType)]


def primitive(
    signature: str,
    *,
    family: str,
    temporal: Temporal,
    summary: str,
    params: Formula = _zero,
    flops: Formula = _zero,
    constraints: Iterable[Constraint] = (),
    reference: str | None = None,
) -> Primitive:
    """Declare a primitive from its GAB signature text."""
    from ..syntax.diagnostics import DSLError
    from ..syntax.parse import parse_signature

    try:
        sig = parse_signature(signature, filename="<primitive>")
    except DSLError as err:
        raise RegistryError(f"bad primitive signature {signature!r}: {err}") from None
    if temporal not in TEMPORAL_CLASSES:
        raise RegistryError(f"{sig.name}: temporal must be one of {TEMPORAL_CLASSES}, not {temporal!r}")
    return Primitive(
        name=sig.name, signature=sig, family=family, temporal=temporal, summary=summary,
        params=params, flops=flops, constraints=tuple(constraints), reference=reference,
    )


@dataclass
class Registry:
    """Name -> Primitive. Built from plugins; one per plugin manager."""

    primitives: dict[str, Primitive] = field(default_factory=dict)

    def register(self, prim: Primitive) -> None:
        if not isinstance(prim, Primitive):
            raise RegistryError(f"register() takes a Primitive, got {type(prim).__name__}")
        if prim.name in self.primitives:
            owner = self.primitives[prim.name].plugin or "another plugin"
            raise RegistryError(f"primitive '{prim.name}' is already registered by {owner}")
        self.primitives[prim.name] = prim

    def get(self, name: str) -> Primitive | None:
        return self.primitives.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.primitives

    def __iter__(self) -> Iterator[Primitive]:
        return iter(sorted(self.primitives.values(), key=lambda p: (p.family, p.name)))

    def __len__(self) -> int:
        return len(self.primitives)

    def families(self) -> dict[str, list[Primitive]]:
        out: dict[str, list[Primitive]] = {}
        for p in self:
            out.setdefault(p.family, []).append(p)
        return out


def probe_bindings(prim: Primitive, size: int = 8) -> dict[str, Any]:
    """Every name of the signature bound to a plausible value: sizes to `size`,
    hyperparameters to their defaults (or `size` / true when they have none)."""
    out: dict[str, Any] = {"L": 4 * size}
    for p in prim.signature.params:
        if isinstance(p.type, ir.SeqType):
            for d in p.type.dims:
                if isinstance(d, ir.RestDim):
                    out[d.name] = (size,)
                elif isinstance(d, ir.Name):
                    out.setdefault(d.id, size)
        elif p.default is not None:
            out[p.name] = p.default
        else:
            out[p.name] = True if p.type.kind == "bool" else size
    return out


# ---------------------------------------------------------------- formula helpers


def numel(b: Bindings, name: str = "S") -> int:
    """Elements per token of a rest-dim tensor (`seq[*S]`)."""
    return math.prod(b[name])


def per_element(cost: float, name: str = "S") -> Formula:
    """FLOPs formula for an elementwise op costing `cost` per element."""
    return lambda b: cost * numel(b, name)
