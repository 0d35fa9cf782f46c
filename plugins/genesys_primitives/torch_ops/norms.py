"""Normalisation over each token's features, or each head's (see ../norms.py)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import TorchImpl


def _rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) over the last dim, times weight.

    As Llama / HF LlamaRMSNorm: normalised in (at least) float32, cast back to x's dtype,
    then scaled, so half-precision inputs lose nothing in the mean of squares.
    """
    h = x.to(torch.promote_types(x.dtype, torch.float32))
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019) over the W features; gain initialised to ones."""

    def __init__(self, W: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(W))

    def forward(self, x):
        return _rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.LayerNorm):
    """LayerNorm (Ba et al. 2016) over the W features: exactly torch.nn.LayerNorm
    (gain ones, bias zeros)."""

    def __init__(self, W: int, eps: float = 1e-5, bias: bool = True):
        super().__init__(W, eps=eps, bias=bias)


class HeadRMSNorm(nn.Module):
    """RMSNorm of each head over its E features, with a gain of shape [H, E] (ones)."""

    def __init__(self, H: int, E: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(H, E))

    def forward(self, x):
        return _rms_norm(x, self.weight, self.eps)


class GroupNorm(nn.Module):
    """LayerNorm of each head over its E features, gain (ones) and bias (zeros) of shape [H, E].

    The group norm of RetNet and RWKV-6: the same as nn.GroupNorm(H, H * E) on the merged
    heads, whose weight is this one flattened.
    """

    def __init__(self, H: int, E: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(H, E))
        self.bias = nn.Parameter(torch.zeros(H, E))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


def l2norm(x):
    """Each head divided by its L2 norm over E: x / sqrt(sum(x^2) + 1e-6).

    The eps is the one of FLA's l2norm (DeltaNet q/k); it keeps a zero head finite.
    Computed in (at least) float32 and cast back.
    """
    h = x.to(torch.promote_types(x.dtype, torch.float32))
    return (h * torch.rsqrt(h.pow(2).sum(-1, keepdim=True) + 1e-6)).to(x.dtype)


_RMS = ("genesys_primitives.torch_ops.norms:_rms_norm",)

IMPLEMENTATIONS: dict[str, TorchImpl] = {
    "RMSNorm": TorchImpl("genesys_primitives.torch_ops.norms:RMSNorm", "module", uses=_RMS),
    "LayerNorm": TorchImpl("genesys_primitives.torch_ops.norms:LayerNorm", "module"),
    "HeadRMSNorm": TorchImpl("genesys_primitives.torch_ops.norms:HeadRMSNorm", "module", uses=_RMS),
    "GroupNorm": TorchImpl("genesys_primitives.torch_ops.norms:GroupNorm", "module"),
    "l2norm": TorchImpl("genesys_primitives.torch_ops.norms:l2norm", "function"),
}
