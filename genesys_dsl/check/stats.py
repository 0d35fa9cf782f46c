"""Parameter count and forward FLOPs per token of the whole LM, from the formulas.

LM = token embedding (+ learned positions) -> N x block -> final norm -> LM head.
The block's figures come from the same instance walk as the scale checks, so a
design that checks clean at a scale has exact figures there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ir
from ..ops.registry import Registry
from ..scales import Scale, get_scale
from ..syntax.diagnostics import DSLError
from .checker import check
from .scale import Cost, ScaleWalker


@dataclass
class Stats:
    """Figures of one design at one scale. `parts` breaks `params` down by component."""

    design: str
    scale: str
    params: int
    flops_per_token: float
    block_params: int
    block_flops_per_token: float
    parts: dict[str, int] = field(default_factory=dict)
    block_tree: Cost | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "design": self.design,
            "scale": self.scale,
            "params": self.params,
            "flops_per_token": self.flops_per_token,
            "block_params": self.block_params,
            "block_flops_per_token": self.block_flops_per_token,
            "parts": self.parts,
        }


def scaffold_setting(design: ir.Design, name: str, default):
    if design.scaffold is not None:
        for s in design.scaffold.settings:
            if s.name == name:
                return s.value
    return default


def stats(design: ir.Design, scale: str | Scale | dict, *, registry: Registry | None = None) -> Stats:
    """Exact parameter count and forward FLOPs per token at `scale` (a name or settings).

    Raises `DSLError` when the design does not check clean at that scale."""
    from ..ops import registry as default_registry

    registry = registry or default_registry()
    sc = get_scale(scale)
    report = check(design, [sc], registry=registry)
    if not report.ok:
        raise DSLError(report.errors, report.source)
    design = report.design
    infos = report.infos
    block = design.block
    walker = ScaleWalker(infos, sc, report.cyclic, reuse=report.reuse)
    block_cost = walker.walk(block.name, walker.block_env(infos[block.name]))

    d, n, vocab = sc.d_model, sc.n_layers, sc.vocab_size
    norm = registry.get(scaffold_setting(design, "final_norm", "RMSNorm"))
    norm_bindings = {p.name: p.default for p in norm.signature.params if p.default is not None}
    norm_bindings.update(W=d, L=sc.context_length)
    if scaffold_setting(design, "final_norm_eps", None) is not None:
        norm_bindings["eps"] = scaffold_setting(design, "final_norm_eps", None)
    parts = {
        "embedding": vocab * d,
        "positions": sc.context_length * d if scaffold_setting(design, "positions", "none") == "learned" else 0,
        "blocks": n * block_cost.params,
        "final_norm": int(norm.params(norm_bindings)),
        "lm_head": 0 if scaffold_setting(design, "tie_embeddings", True) else vocab * d,
    }
    flops = n * block_cost.flops + float(norm.flops(norm_bindings)) + 2 * d * vocab
    return Stats(
        design=design.name, scale=sc.name, params=sum(parts.values()), flops_per_token=flops,
        block_params=block_cost.params, block_flops_per_token=block_cost.flops, parts=parts,
        block_tree=block_cost,
    )
