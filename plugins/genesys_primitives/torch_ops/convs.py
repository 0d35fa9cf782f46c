"""Mixing along time: short and long causal convolutions, and token shift (see ../convs.py)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import TorchImpl


def _causal_conv_parameters(W, kernel):
    """(weight [W, 1, kernel], bias [W]), created in that order and initialised as
    nn.Conv1d(W, W, kernel, groups=W) does: uniform in +-1/sqrt(kernel)."""
    bound = 1 / math.sqrt(kernel)
    return (nn.Parameter(torch.empty(W, 1, kernel).uniform_(-bound, bound)),
            nn.Parameter(torch.empty(W).uniform_(-bound, bound)))


def _causal_conv(x, weight, bias):
    """y[t] = bias + sum_k weight[:, 0, k] x[t - kernel + 1 + k] over x [batch, length, W]."""
    kernel = weight.shape[-1]
    u = F.pad(x.transpose(1, 2), (kernel - 1, 0))  # zeros before the first token only: causal
    return F.conv1d(u, weight, bias, groups=u.shape[1]).transpose(1, 2)


class causal_conv(nn.Module):
    """Depthwise causal convolution over the last `kernel` tokens, with bias.

    weight [W, 1, kernel] and bias [W] are those of nn.Conv1d(W, W, kernel, groups=W),
    initialised as nn.Conv1d does (uniform in +-1/sqrt(kernel)); as in Mamba, the output
    at t sees x[t - kernel + 1 .. t], so Mamba / HF conv1d weights load unchanged.
    """

    def __init__(self, W: int, kernel: int = 4):
        super().__init__()
        self.weight, self.bias = _causal_conv_parameters(W, kernel)

    def forward(self, x):
        return _causal_conv(x, self.weight, self.bias)


def token_shift(x):
    """The previous token's features, zeros at the first position (RWKV's time shift)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


class long_conv(nn.Module):
    """Hyena long convolution (Poli et al. 2023), after HazyResearch safari's HyenaFilter.

    Each channel's causal filter h, as long as the sequence, is an MLP
    (emb -> order -> order -> W, sine activations) of fixed positional features, times a
    fixed exponential decay; y = (h * x)(t) + skip * x, the convolution done by FFT.
    Departures from safari, so that the parameters are exactly the MLP and `skip`: the
    sine frequency is fixed at 1.0 (safari's initial value, which it then learns) and the
    positional features are fixed (safari trains them at a tiny learning rate). Time is
    normalised by `max_len`, as safari's l_max, so the filter tap k does not depend on the
    sequence length: a prefix gives the same outputs as the whole sequence.
    """

    def __init__(self, W: int, order: int = 64, emb: int = 33, max_len: int = 2048):
        super().__init__()
        self.emb = emb
        self.max_len = max_len
        self.fc1 = nn.Linear(emb, order)
        self.fc2 = nn.Linear(order, order)
        self.fc3 = nn.Linear(order, W, bias=False)
        self.skip = nn.Parameter(torch.randn(W))  # safari's `bias` (the D term), same init

    def filter(self, L):
        """The filter h: [L, W]; h[k] weights the input k steps back."""
        kw = dict(dtype=self.skip.dtype, device=self.skip.device)
        # features (safari's PositionalEmbedding): t = k / max_len, then cosine and sine bands
        t = torch.arange(L, **kw)[:, None] / self.max_len  # [L, 1]
        bands = (self.emb - 1) // 2
        freq = torch.linspace(1e-4, bands - 1, bands, **kw)
        angle = 2 * math.pi * t * freq  # [L, bands]
        z = torch.cat([t, angle.cos(), -angle.sin()], dim=-1)  # [L, emb]
        h = self.fc3(torch.sin(self.fc2(torch.sin(self.fc1(z)))))
        # fixed decay (safari's ExponentialModulation): rates spread evenly over the channels,
        # from a fall to 1% over 1.5 max_len (slow) to one over 0.3 max_len (fast)
        rate = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, h.shape[-1], **kw).abs()
        return h * torch.exp(-t * rate)

    def forward(self, x):
        L = x.shape[1]
        dtype = torch.promote_types(x.dtype, torch.float32)  # FFTs in (at least) float32
        u, h = x.to(dtype), self.filter(L).to(dtype)
        # zero-padding to 2L turns the FFT's circular convolution into the causal linear one
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L, dim=1) * torch.fft.rfft(h, n=2 * L, dim=0), n=2 * L, dim=1)
        return (y[:, :L] + u * self.skip).to(x.dtype)


class long_conv_reference(long_conv):
    """long_conv with the convolution written out, y[t] = sum_k h[k] x[t - k]: O(L^2), for tests."""

    def forward(self, x):
        L = x.shape[1]
        h = self.filter(L).to(x.dtype)
        y = x * self.skip
        for k in range(L):
            y = y + F.pad(h[k] * x[:, : L - k], (0, 0, k, 0))  # the input k steps back
        return y


_CONV = tuple(f"genesys_primitives.torch_ops.convs:{name}" for name in ("_causal_conv_parameters", "_causal_conv"))

IMPLEMENTATIONS: dict[str, TorchImpl] = {
    "causal_conv": TorchImpl("genesys_primitives.torch_ops.convs:causal_conv", "module", uses=_CONV),
    "token_shift": TorchImpl("genesys_primitives.torch_ops.convs:token_shift", "function"),
    "long_conv": TorchImpl("genesys_primitives.torch_ops.convs:long_conv", "module"),
}
