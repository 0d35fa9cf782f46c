"""Parameter-free elementwise functions. Each works on a tensor of any shape."""

from genesys_dsl.ops import per_element, primitive


def _activation(name: str, summary: str, cost: float) -> object:
    return primitive(
        f"{name}(x: seq[*S]) -> seq[*S]",
        family="activation",
        temporal="pointwise",
        summary=summary,
        flops=per_element(cost),
    )


PRIMITIVES = [
    _activation("relu", "max(x, 0)", 1),
    _activation("relu2", "max(x, 0)^2 (squared ReLU, as in RWKV channel mixing and Primer)", 2),
    _activation("gelu", "Gaussian error linear unit (exact erf form)", 8),
    _activation("gelu_tanh", "GELU, tanh approximation (GPT-2)", 8),
    _activation("silu", "x * sigmoid(x) (swish)", 4),
    _activation("sigmoid", "1 / (1 + exp(-x))", 4),
    _activation("tanh", "hyperbolic tangent", 4),
    _activation("softplus", "log(1 + exp(x))", 4),
    _activation("identity", "x unchanged", 0),
    primitive(
        "exp(x: seq[*S]) -> seq[*S]",
        family="elementwise",
        temporal="pointwise",
        summary="exp(x)",
        flops=per_element(1),
    ),
    primitive(
        "logsigmoid(x: seq[*S]) -> seq[*S]",
        family="elementwise",
        temporal="pointwise",
        summary="log(sigmoid(x)), a log-space decay in (-inf, 0)",
        flops=per_element(4),
    ),
]
