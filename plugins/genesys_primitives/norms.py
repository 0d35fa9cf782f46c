"""Normalisation over the feature dimension(s) of each token."""

from genesys_dsl.ops import primitive

PRIMITIVES = [
    primitive(
        "RMSNorm(x: seq[W], eps: float = 1e-06 in 1e-12..0.001) -> seq[W]",
        family="norm",
        temporal="pointwise",
        summary="x / rms(x) * g, learned gain g (Zhang & Sennrich 2019)",
        params=lambda b: b["W"],
        flops=lambda b: 4 * b["W"],
    ),
    primitive(
        "LayerNorm(x: seq[W], eps: float = 1e-05 in 1e-12..0.001, bias: bool = true) -> seq[W]",
        family="norm",
        temporal="pointwise",
        summary="(x - mean) / std * g + b (Ba et al. 2016)",
        params=lambda b: b["W"] * (2 if b["bias"] else 1),
        flops=lambda b: 6 * b["W"],
    ),
    primitive(
        "HeadRMSNorm(x: seq[H, E], eps: float = 1e-06 in 1e-12..0.001) -> seq[H, E]",
        family="head_norm",
        temporal="pointwise",
        summary="RMSNorm of each head separately, with a learned gain over all H * E features",
        params=lambda b: b["H"] * b["E"],
        flops=lambda b: 4 * b["H"] * b["E"],
    ),
    primitive(
        "GroupNorm(x: seq[H, E], eps: float = 1e-05 in 1e-12..0.001) -> seq[H, E]",
        family="head_norm",
        temporal="pointwise",
        summary="LayerNorm of each head separately, learned gain and bias over all H * E features "
        "(RetNet, RWKV-6)",
        params=lambda b: 2 * b["H"] * b["E"],
        flops=lambda b: 6 * b["H"] * b["E"],
    ),
    primitive(
        "l2norm(x: seq[H, E]) -> seq[H, E]",
        family="head_norm",
        temporal="pointwise",
        summary="each head scaled to unit L2 norm, no parameters (DeltaNet q/k)",
        flops=lambda b: 3 * b["H"] * b["E"],
    ),
]
