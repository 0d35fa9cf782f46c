"""Learned linear maps and per-channel affine parameters."""

from genesys_dsl.ops import primitive

PRIMITIVES = [
    primitive(
        "Linear(x: seq[I], out: int, bias: bool = false) -> seq[out]",
        family="projection",
        temporal="pointwise",
        summary="x @ W (+ b): a learned projection from I to `out` features",
        params=lambda b: b["I"] * b["out"] + (b["out"] if b["bias"] else 0),
        flops=lambda b: 2 * b["I"] * b["out"] + (b["out"] if b["bias"] else 0),
    ),
    primitive(
        "LowRank(x: seq[I], rank: int, out: int) -> seq[out]",
        family="projection",
        temporal="pointwise",
        summary="x @ A @ B with A: I x rank, B: rank x out (no bias); LoRA-style factorised projection",
        params=lambda b: b["rank"] * (b["I"] + b["out"]),
        flops=lambda b: 2 * b["rank"] * (b["I"] + b["out"]),
    ),
    primitive(
        "Scale(x: seq[*S], init: float = 1.0) -> seq[*S]",
        family="affine",
        temporal="pointwise",
        summary="x * g with a learned per-feature gain g (initialised to `init`)",
        params=lambda b: _numel(b),
        flops=lambda b: _numel(b),
    ),
    primitive(
        "Bias(x: seq[*S], init: float = 0.0) -> seq[*S]",
        family="affine",
        temporal="pointwise",
        summary="x + c with a learned per-feature offset c (initialised to `init`)",
        params=lambda b: _numel(b),
        flops=lambda b: _numel(b),
    ),
]


def _numel(b):
    from genesys_dsl.ops import numel

    return numel(b)
