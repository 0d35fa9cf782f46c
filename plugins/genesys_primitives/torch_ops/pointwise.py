"""Parameter-free elementwise functions (see ../pointwise.py); any shape in, same shape out."""

import torch
import torch.nn.functional as F

from . import TorchImpl


def relu(x):
    return F.relu(x)


def relu2(x):
    """Squared ReLU (RWKV channel mixing, Primer)."""
    return F.relu(x).square()


def gelu(x):
    """Exact GELU: x * Phi(x) with the erf form of the normal CDF."""
    return F.gelu(x)


def gelu_tanh(x):
    """GELU with the tanh approximation, as GPT-2 uses."""
    return F.gelu(x, approximate="tanh")


def silu(x):
    return F.silu(x)


def sigmoid(x):
    return torch.sigmoid(x)


def tanh(x):
    return torch.tanh(x)


def softplus(x):
    return F.softplus(x)


def identity(x):
    return x


def exp(x):
    return torch.exp(x)


def logsigmoid(x):
    """log(sigmoid(x)), computed stably (no underflow to log(0) for very negative x)."""
    return F.logsigmoid(x)


IMPLEMENTATIONS: dict[str, TorchImpl] = {
    name: TorchImpl(f"genesys_primitives.torch_ops.pointwise:{name}", "function")
    for name in (
        "relu", "relu2", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "softplus", "identity", "exp",
        "logsigmoid",
    )
}
