"""Triton short causal depthwise convolution, forward and backward (see ../convs.py for
the primitive and ../torch_ops/convs.py for the torch implementation it must match).

y[b, t, c] = bias[c] + sum_k weight[c, 0, k] * x[b, t - (kernel - 1) + k, c], zeros
before the first token. Tokens are contiguous rows of W channels, so a program owns a
[BLOCK_T, BLOCK_C] tile of one sequence and reads the kernel - 1 tokens before it
again (cached); the kernel is short (2..16), so its taps are unrolled.
"""

import torch
import torch.nn as nn
import triton
import triton.language as tl

from ..torch_ops.convs import _causal_conv, _causal_conv_parameters
from . import TritonImpl, always


@triton.jit
def _causal_conv_tap_input(X, base, t, c, c_mask, k, L, C, K: tl.constexpr, ACC: tl.constexpr):
    """x[t - (K - 1) + k] for the outputs t of the tile: what tap k reads, zeros before the first token."""
    source = t - (K - 1) + k
    mask = ((source >= 0) & (source < L))[:, None] & c_mask[None, :]
    return tl.load(X + base + source[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)


@triton.jit
def _causal_conv_fwd_kernel(X, WEIGHT, BIAS, Y, L, C,
                            K: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    base = tl.program_id(2).to(tl.int64) * L * C
    c_mask = c < C
    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=ACC) + tl.load(BIAS + c, mask=c_mask, other=0.0).to(ACC)[None, :]
    for k in tl.static_range(K):
        x = _causal_conv_tap_input(X, base, t, c, c_mask, k, L, C, K, ACC)
        w = tl.load(WEIGHT + c * K + k, mask=c_mask, other=0.0).to(ACC)
        acc += x * w[None, :]
    tl.store(Y + base + t[:, None] * C + c[None, :], acc.to(Y.dtype.element_ty),
             mask=(t < L)[:, None] & c_mask[None, :])


@triton.jit
def _causal_conv_bwd_kernel(X, WEIGHT, DY, DX, DW, L, C,
                            K: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx[t] = sum_k w[k] dy[t + (K - 1) - k]; this tile's shares of dw[c, k] = sum_t dy[t] x[t - (K - 1) + k]
    and of dbias[c] = sum_t dy[t], written to its own slot of DW ([sequences * time tiles, C, K + 1]: the
    K taps, then the bias; summed afterwards), so dy is read once for all three."""
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    sequence = tl.program_id(2).to(tl.int64)
    base = sequence * L * C
    c_mask = c < C
    t_mask = (t < L)[:, None] & c_mask[None, :]
    dy = tl.load(DY + base + t[:, None] * C + c[None, :], mask=t_mask, other=0.0).to(ACC)
    dx = tl.zeros([BLOCK_T, BLOCK_C], dtype=ACC)
    slot = (sequence * tl.num_programs(0) + tl.program_id(0)) * C * (K + 1)
    tl.store(DW + slot + c * (K + 1) + K, tl.sum(dy, axis=0), mask=c_mask)
    for k in tl.static_range(K):
        w = tl.load(WEIGHT + c * K + k, mask=c_mask, other=0.0).to(ACC)
        later = t + (K - 1) - k  # the output that read this token through tap k
        mask = (later < L)[:, None] & c_mask[None, :]
        dx += w[None, :] * tl.load(DY + base + later[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        x = _causal_conv_tap_input(X, base, t, c, c_mask, k, L, C, K, ACC)
        tl.store(DW + slot + c * (K + 1) + k, tl.sum(dy * x, axis=0), mask=c_mask)
    tl.store(DX + base + t[:, None] * C + c[None, :], dx.to(DX.dtype.element_ty), mask=t_mask)


def _causal_conv_launch(L, C, backward):
    """(tokens, channels, warps) of a program, forward or backward: 64 tokens by every channel
    with 8 warps up to 256 channels, else by 128 channels with 4 warps. Timed against the
    others by benchmarks/sweep_conv_tiles.py on an H200 (docs/results.md): the fastest both
    ways at Mamba-2's 14M and 125M widths (256 and 1536), though the wide backward spills
    registers (benchmarks/kernel_resources.py). The same both ways as measured; `backward`
    lets the sweep vary one direction."""
    tokens = min(64, triton.next_power_of_2(L))
    if C <= 256:
        return tokens, triton.next_power_of_2(C), 8
    return tokens, 128, 4


class _CausalConvFunction(torch.autograd.Function):
    """y = causal depthwise conv of x [batch, length, C] with weight [C, 1, K] and bias [C]."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        batch, L, C = x.shape
        K = weight.shape[-1]
        x = x.contiguous()
        weight2 = weight.reshape(C, K).contiguous()
        y = torch.empty_like(x, dtype=torch.promote_types(x.dtype, weight.dtype))
        acc = tl.float64 if y.dtype == torch.float64 else tl.float32
        block_t, block_c, warps = _causal_conv_launch(L, C, backward=False)
        grid = (triton.cdiv(L, block_t), triton.cdiv(C, block_c), batch)
        _causal_conv_fwd_kernel[grid](x, weight2, bias, y, L, C, K=K, ACC=acc, BLOCK_T=block_t, BLOCK_C=block_c,
                                      num_warps=warps)
        ctx.save_for_backward(x, weight2)
        ctx.acc, ctx.weight_shape, ctx.bias_dtype = acc, weight.shape, bias.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight2 = ctx.saved_tensors
        batch, L, C = x.shape
        K = weight2.shape[-1]
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        block_t, block_c, warps = _causal_conv_launch(L, C, backward=True)
        grid = (triton.cdiv(L, block_t), triton.cdiv(C, block_c), batch)
        partial = torch.empty(batch * grid[0], C, K + 1, device=x.device,
                              dtype=torch.float64 if ctx.acc == tl.float64 else torch.float32)
        _causal_conv_bwd_kernel[grid](x, weight2, dy, dx, partial, L, C, K=K, ACC=ctx.acc,
                                      BLOCK_T=block_t, BLOCK_C=block_c, num_warps=warps)
        total = partial.sum(0)  # a fixed-order reduction
        dw = total[:, :K].reshape(ctx.weight_shape).to(weight2.dtype)
        return dx, dw, total[:, K].to(ctx.bias_dtype)


def _causal_conv_kernels_take(x):
    """Whether the kernels run on x: compiled ones need a CUDA tensor; interpreted ones
    (defined under TRITON_INTERPRET=1) take CPU tensors."""
    return x.is_cuda or not isinstance(_causal_conv_fwd_kernel, triton.runtime.JITFunction)


class causal_conv(nn.Module):
    """Depthwise causal convolution over the last `kernel` tokens, with bias. Triton kernels
    (the torch computation on a tensor they cannot take).

    weight [W, 1, kernel] and bias [W] are those of nn.Conv1d(W, W, kernel, groups=W),
    initialised as nn.Conv1d does (uniform in +-1/sqrt(kernel)); the output at t sees
    x[t - kernel + 1 .. t].
    """

    def __init__(self, W: int, kernel: int = 4):
        super().__init__()
        self.weight, self.bias = _causal_conv_parameters(W, kernel)

    def forward(self, x):
        if not _causal_conv_kernels_take(x):
            return _causal_conv(x, self.weight, self.bias)
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled(x.device.type):  # as F.conv1d under autocast: all in its dtype
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
        return _CausalConvFunction.apply(x, weight, bias)


_TORCH = tuple(f"genesys_primitives.torch_ops.convs:{name}" for name in (  # the parameters; the fallback
    "_causal_conv_parameters", "_causal_conv"))
_KERNELS = tuple(f"genesys_primitives.triton_ops.convs:{name}" for name in (
    "_causal_conv_tap_input", "_causal_conv_fwd_kernel", "_causal_conv_bwd_kernel", "_causal_conv_launch",
    "_CausalConvFunction", "_causal_conv_kernels_take"))

IMPLEMENTATIONS: dict[str, TritonImpl] = {
    "causal_conv": TritonImpl(
        "genesys_primitives.triton_ops.convs:causal_conv",
        uses=_TORCH + _KERNELS,
        supports=always,  # any width and length; the signature bounds the kernel to 2..16 taps
    ),
}
