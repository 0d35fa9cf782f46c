"""Moving between flat features and heads, and positional rotations of heads."""

from genesys_dsl.ops import Constraint, primitive

PRIMITIVES = [
    primitive(
        "split_heads(x: seq[W], heads: int) -> seq[heads, W / heads]",
        family="reshape",
        temporal="pointwise",
        summary="view W features as `heads` heads of W / heads features",
    ),
    primitive(
        "merge_heads(x: seq[H, E]) -> seq[H * E]",
        family="reshape",
        temporal="pointwise",
        summary="concatenate heads back into H * E features",
    ),
    primitive(
        "rotary(x: seq[H, E], base: float = 10000.0 in 100.0..10000000.0) -> seq[H, E]",
        family="position",
        temporal="pointwise",
        summary="rotary position embedding (Su et al. 2021) on each head; position is the token index",
        flops=lambda b: 3 * b["H"] * b["E"],
        constraints=[Constraint(lambda b: b["E"] % 2 == 0, "rotary needs an even head size, got {E}",
                                "choose heads so that the head size is even")],
    ),
]
