"""Learned projections and per-feature affine parameters (see ../projections.py)."""

import math

import torch
import torch.nn as nn

from . import TorchImpl


class Linear(nn.Linear):
    """x @ weight.T (+ bias): exactly torch.nn.Linear, built from the signature's names.

    weight is [out, I] and the initialisation is nn.Linear's (uniform in +-1/sqrt(I) for
    weight and bias), so state dicts map 1:1 onto nn.Linear and Hugging Face checkpoints.
    """

    def __init__(self, I: int, out: int, bias: bool = False):
        super().__init__(I, out, bias=bias)


class LowRank(nn.Module):
    """x @ A @ B with A: [I, rank], B: [rank, out], no bias (a factorised projection).

    Initialised like two stacked bias-free nn.Linear layers (uniform in +-1/sqrt(fan_in)),
    so the map is active from the start; LoRA's zero B suits adapters on a pretrained
    weight, not a projection standing on its own.
    """

    def __init__(self, I: int, rank: int, out: int):
        super().__init__()
        self.A = nn.Parameter(torch.empty(I, rank).uniform_(-1 / math.sqrt(I), 1 / math.sqrt(I)))
        self.B = nn.Parameter(torch.empty(rank, out).uniform_(-1 / math.sqrt(rank), 1 / math.sqrt(rank)))

    def forward(self, x):
        return x @ self.A @ self.B


class Scale(nn.Module):
    """x * weight, with a learned gain of shape S (one per feature), initialised to `init`."""

    def __init__(self, S: tuple[int, ...], init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full(tuple(S), float(init)))

    def forward(self, x):
        return x * self.weight


class Bias(nn.Module):
    """x + bias, with a learned offset of shape S (one per feature), initialised to `init`."""

    def __init__(self, S: tuple[int, ...], init: float = 0.0):
        super().__init__()
        self.bias = nn.Parameter(torch.full(tuple(S), float(init)))

    def forward(self, x):
        return x + self.bias


IMPLEMENTATIONS: dict[str, TorchImpl] = {
    name: TorchImpl(f"genesys_primitives.torch_ops.projections:{name}", "module")
    for name in ("Linear", "LowRank", "Scale", "Bias")
}
