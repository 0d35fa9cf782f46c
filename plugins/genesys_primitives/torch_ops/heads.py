"""Splitting features into heads, merging them back, and rotary positions (see ../heads.py)."""

import torch

from . import TorchImpl


def split_heads(x, heads):
    """[B, L, W] -> [B, L, heads, W / heads]; head h holds features h*E .. (h+1)*E - 1 (a view)."""
    return x.unflatten(-1, (heads, -1))


def merge_heads(x):
    """[B, L, H, E] -> [B, L, H * E], the inverse of split_heads."""
    return x.flatten(-2)


def rotary(x, base=10000.0):
    """Rotary position embedding (Su et al. 2021) of each head, at positions 0 .. L-1.

    The rotate-half convention of Hugging Face Llama / GPT-NeoX: feature i turns with
    feature i + E/2 by the angle t * base^(-2i/E). Angles are computed in (at least)
    float32 and their cos / sin cast to x's dtype, as HF does.
    """
    L, E = x.shape[1], x.shape[-1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    inv_freq = 1.0 / base ** (torch.arange(0, E, 2, device=x.device, dtype=dtype) / E)
    angle = torch.outer(torch.arange(L, device=x.device, dtype=dtype), inv_freq).repeat(1, 2)  # [L, E]
    cos, sin = angle.cos().to(x.dtype)[:, None], angle.sin().to(x.dtype)[:, None]  # [L, 1, E]: all heads
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


IMPLEMENTATIONS: dict[str, TorchImpl] = {
    name: TorchImpl(f"genesys_primitives.torch_ops.heads:{name}", "function")
    for name in ("split_heads", "merge_heads", "rotary")
}
