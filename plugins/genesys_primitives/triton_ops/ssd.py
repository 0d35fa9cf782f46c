"""Triton kernels for chunked linear attention with one log-decay per head and token:
Mamba-2's SSD chunk scan, and retention (a constant decay per head) through it.

The torch forms are in ../torch_ops/mixers.py (`_chunk_scalar_decay`, `ssd`, `retention`);
this computes the same recurrence, S_t = exp(a_t) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t,
in the layout [batch, length, heads, dim]. q and k may have fewer heads (groups) than v:
head h reads group h // (H / G), as SSD's B and C do.

Algorithm (flash-linear-attention's chunk form; written afresh here):
  forward   1. state kernel: one program per (K tile, V tile, batch*head) walks the chunks
               in order and stores the state at each chunk's start, S_i [K, V] in float32;
            2. output kernel: one program per (V tile, chunk, batch*head):
               o = exp(c) * (q S_i) + (q k^T * exp(c_t - c_s))_{s <= t} v, all times scale,
               where c is the inclusive cumulative log-decay inside the chunk.
  backward  3. state-gradient kernel: the same walk backwards, storing dS_{i+1} (the gradient
               of the state at chunk i's end) for every chunk i;
            4. dv kernel and 5. dq/dk kernel, one program per (tile, chunk, batch*head).
  The gradient of the log-decays uses the identity dL/dA_t = q_t . dq_t - k_t . dk_t for the
  global cumulative log-decay A (o depends on a only through exp(A_t - A_s)), so
  da = the reverse cumulative sum over time of (q . dq - k . dk); a token's term with itself
  (undecayed, so it adds nothing) is left out, where it would cancel only up to rounding.
  The kernels write the per-position dot products; three cheap torch ops finish the job
  (not kernels): the sum over K tiles, the reverse cumulative sum over time, and, with
  groups, the sum of dq and dk over the heads that share a group.

The chunk walk's addressing, the backward's products over V and the launches are the
`_chunked_*` helpers of chunked.py, which GLA's kernels share.

Masked decays are set to -inf before the exp, so nothing overflows however strong the decay.
Inputs are read in their dtype, everything accumulates in float32, and the output is
written in v's dtype. Operands of tl.dot are cast to the inputs' dtype (bfloat16 runs on
tensor cores; float32 inputs are multiplied in full float32, `input_precision="ieee"`, as
torch does, not in Triton's default TF32).
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import nn

# the torch form (for tensors the kernels do not take) and the chunk walk shared with GLA (the
# copied kernels find these by name)
from ..torch_ops.mixers import _chunk_scalar_decay, _chunk_tokens, _ssd_parameters
from .chunked import (_chunked_backward_dh_dv, _chunked_dims, _chunked_dqk_over_v, _chunked_forward,
                      _chunked_kernels_take, _chunked_load, _chunked_load_qk, _chunked_load_state, _chunked_rows,
                      _chunked_store, _chunked_store_state)


# ------------------------------------------------------------------- the scalar-decay kernels


@triton.jit
def _scalar_decay_chunk_decays(a, row, m_t, i_h, H: tl.constexpr):
    """The chunk's inclusive cumulative log-decay c [BT] and its total, in float32. Padded
    positions load a = 0: they neither decay nor change the total."""
    b_a = tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    return tl.cumsum(b_a, 0), tl.sum(b_a, 0)


@triton.jit
def _scalar_decay_between(b_c, keep):
    """[t, s] -> exp(c_t - c_s) where keep[t, s], else 0 (masked before the exp: no overflow)."""
    return tl.exp(tl.where(keep, b_c[:, None] - b_c[None, :], float("-inf")))


@triton.jit
def _scalar_decay_fwd_h_kernel(k, v, a, h, T, NT, G: tl.constexpr, H: tl.constexpr, K: tl.constexpr,
                               V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """h[b, h, i] = the state at the start of chunk i (K x V tile of it)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    state = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(NT):
        _chunked_store_state(h, state, i_bh, i_t, NT, o_k, o_v, K, V)
        _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
        # padded positions load a = 0, k = v = 0: they neither decay nor write the state
        b_c, b_last = _scalar_decay_chunk_decays(a, row, m_t, i_h, H)
        b_k = _chunked_load(k, row, m_t, i_g, G, o_k, K)
        b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
        b_kd = (b_k * tl.exp(b_last - b_c)[:, None]).to(b_v.dtype)  # decayed to the chunk's end
        state = state * tl.exp(b_last) + tl.dot(tl.trans(b_kd), b_v, input_precision="ieee")


@triton.jit
def _scalar_decay_fwd_o_kernel(q, k, v, a, h, o, scale, T, NT, G: tl.constexpr, H: tl.constexpr,
                               K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                               BV: tl.constexpr):
    """o for one chunk and V tile: from the chunk's start state, plus the chunk itself."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q, b_k = _chunked_load_qk(q, k, row, m_t, i_g, G, o_k, K)
        b_h = _chunked_load_state(h, i_bh, i_t, NT, o_k, o_v, K, V)
        b_o = tl.dot(b_q, b_h.to(b_q.dtype), b_o, input_precision="ieee")
        b_A = tl.dot(b_q, tl.trans(b_k), b_A, input_precision="ieee")
    b_c, _ = _scalar_decay_chunk_decays(a, row, m_t, i_h, H)
    b_A = b_A * _scalar_decay_between(b_c, o_t[:, None] >= o_t[None, :])
    b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
    b_o = b_o * tl.exp(b_c)[:, None]
    b_o = tl.dot(b_A.to(b_v.dtype), b_v, b_o, input_precision="ieee") * scale
    _chunked_store(o, b_o, row, m_t, i_h, H, o_v, V)


@triton.jit
def _scalar_decay_bwd_dh_kernel(q, a, do, dh, scale, T, NT, G: tl.constexpr, H: tl.constexpr,
                                K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                                BV: tl.constexpr):
    """dh[b, h, i] = the gradient of the state at the end of chunk i (zero for the last)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    dstate = tl.zeros([BK, BV], dtype=tl.float32)
    for i_back in range(NT):
        i_t = NT - 1 - i_back
        _chunked_store_state(dh, dstate, i_bh, i_t, NT, o_k, o_v, K, V)
        _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
        b_c, b_last = _scalar_decay_chunk_decays(a, row, m_t, i_h, H)
        b_q = _chunked_load(q, row, m_t, i_g, G, o_k, K)
        b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
        b_qd = (b_q * (tl.exp(b_c) * scale)[:, None]).to(b_do.dtype)
        # the chunk's outputs read its start state; its start state flows on into the end state
        dstate = dstate * tl.exp(b_last) + tl.dot(tl.trans(b_qd), b_do, input_precision="ieee")


@triton.jit
def _scalar_decay_bwd_dv_kernel(q, k, a, do, dh, dv, scale, T, NT, G: tl.constexpr, H: tl.constexpr,
                                K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                                BV: tl.constexpr):
    """dv_s = sum_{t >= s} A_ts do_t + (k_s decayed to the chunk's end) dS_end."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    b_c, b_last = _scalar_decay_chunk_decays(a, row, m_t, i_h, H)
    b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    b_At = tl.zeros([BT, BT], dtype=tl.float32)  # At[s, t] = k_s . q_t
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q, b_k = _chunked_load_qk(q, k, row, m_t, i_g, G, o_k, K)
        b_dh = _chunked_load_state(dh, i_bh, i_t, NT, o_k, o_v, K, V)
        b_At = tl.dot(b_k, tl.trans(b_q), b_At, input_precision="ieee")
        b_kd = (b_k * tl.exp(b_last - b_c)[:, None]).to(b_do.dtype)
        b_dv = tl.dot(b_kd, b_dh.to(b_do.dtype), b_dv, input_precision="ieee")
    later = o_t[None, :] >= o_t[:, None]  # t >= s: At's mask and decays are the transpose of A's
    b_At = b_At * tl.exp(tl.where(later, b_c[None, :] - b_c[:, None], float("-inf"))) * scale
    b_dv = tl.dot(b_At.to(b_do.dtype), b_do, b_dv, input_precision="ieee")
    _chunked_store(dv, b_dv, row, m_t, i_h, H, o_v, V)


@triton.jit
def _scalar_decay_bwd_dqk_kernel(q, k, v, a, h, do, dh, dq, dk, dg, scale, T, NT, B, G: tl.constexpr,
                                 H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                                 BK: tl.constexpr, BV: tl.constexpr):
    """dq, dk per head (a K tile of them), and this tile's share of q . dq - k . dk."""
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    b_q, b_k = _chunked_load_qk(q, k, row, m_t, i_g, G, o_k, K)
    # dA[t, s] = do_t . v_s, and dq, dk through the chunk's start and end states
    b_dA, b_dq, b_dk = _chunked_dqk_over_v(v, do, h, dh, row, m_t, i_h, H, i_bh, i_t, NT, o_k, K, V, BT, BK, BV)
    b_c, b_last = _scalar_decay_chunk_decays(a, row, m_t, i_h, H)
    # the diagonal (a token with itself) is undecayed, so it adds nothing to the log-decay's
    # gradient: it is kept out of q . dq - k . dk, where it would cancel only up to rounding
    b_diag = tl.sum(tl.where(o_t[:, None] == o_t[None, :], b_dA, 0.0), 1) * scale
    b_dA = (b_dA * _scalar_decay_between(b_c, o_t[:, None] > o_t[None, :]) * scale).to(b_q.dtype)
    b_dq = b_dq * (tl.exp(b_c) * scale)[:, None]
    b_dq = tl.dot(b_dA, b_k, b_dq, input_precision="ieee")
    b_dk = b_dk * tl.exp(b_last - b_c)[:, None]
    b_dk = tl.dot(tl.trans(b_dA), b_q, b_dk, input_precision="ieee")
    b_q, b_k = b_q.to(tl.float32), b_k.to(tl.float32)
    b_dg = tl.sum(b_q * b_dq - b_k * b_dk, 1)
    b_dq += b_diag[:, None] * b_k
    b_dk += b_diag[:, None] * b_q
    _chunked_store(dq, b_dq, row, m_t, i_h, H, o_k, K)
    _chunked_store(dk, b_dk, row, m_t, i_h, H, o_k, K)
    tl.store(dg + i_k.to(tl.int64) * B * T * H + row * H + i_h, b_dg, mask=m_t)


# ------------------------------------------------------------------------ host side


class _ChunkScalarDecay(torch.autograd.Function):
    """o_t = scale q_t S_t, S_t = exp(a_t) S_{t-1} + k_t^T v_t, by the kernels above.

    q, k [B, L, G, K]; v [B, L, H, V]; a [B, L, H] (log-decays <= 0); H a multiple of G.
    """

    @staticmethod
    def forward(ctx, q, k, v, a, scale, chunk_size):
        q, k, v, a = (t.contiguous() for t in (q, k, v, a))
        dims = {"G": q.shape[2], **_chunked_dims(q, v, chunk_size, 64)}
        o, h = _chunked_forward(_scalar_decay_fwd_h_kernel, _scalar_decay_fwd_o_kernel, q, k, v, a, scale, dims)
        ctx.save_for_backward(q, k, v, a, h)
        ctx.scale, ctx.dims = scale, dims
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, a, h = ctx.saved_tensors
        do = do.contiguous()
        dims, scale = ctx.dims, ctx.scale
        dh, dv = _chunked_backward_dh_dv(_scalar_decay_bwd_dh_kernel, _scalar_decay_bwd_dv_kernel,
                                         q, k, v, a, h, do, scale, dims)
        batch, length, groups, size = q.shape
        heads, chunks, tiles_k = v.shape[2], h.shape[2], triton.cdiv(size, dims["BK"])
        # per head (not per group) in float32; summed over a group's heads below
        dq = torch.empty(batch, length, heads, size, dtype=torch.float32, device=q.device)
        dk = torch.empty_like(dq)
        dg = torch.empty(tiles_k, batch, length, heads, dtype=torch.float32, device=q.device)
        _scalar_decay_bwd_dqk_kernel[(tiles_k, chunks, batch * heads)](
            q, k, v, a, h, do, dh, dq, dk, dg, scale, length, chunks, batch, **dims)
        if groups != heads:
            dq = dq.view(batch, length, groups, heads // groups, size).sum(3)
            dk = dk.view(batch, length, groups, heads // groups, size).sum(3)
        da = None
        if ctx.needs_input_grad[3]:  # retention's decays are constants
            # d loss / d a_t = sum over s >= t of (q_s . dq_s - k_s . dk_s), per head
            da = dg.sum(0).flip(1).cumsum(1).flip(1).to(a.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv, da, None, None


def _chunk_scalar_decay_triton(q, k, v, a, scale, chunk_size):
    """The kernels' entry point: chunk sizes that are not a power of two in 16..128 (tl.dot
    needs 16 or more rows; the torch form takes any), and None, run at 64, which gives the
    same result. On a tensor the kernels do not take (float64, or not CUDA), the torch form
    computes it, at its own chunks."""
    if not _chunked_kernels_take(v):
        heads_per_group = v.shape[2] // q.shape[2]
        q, k = q.repeat_interleave(heads_per_group, dim=2), k.repeat_interleave(heads_per_group, dim=2)
        return _chunk_scalar_decay(q * scale, k, v, a, _chunk_tokens(chunk_size, v))
    if chunk_size is None or chunk_size < 16 or chunk_size > 128 or chunk_size & (chunk_size - 1):
        chunk_size = 64
    return _ChunkScalarDecay.apply(q, k, v, a, scale, chunk_size)


class ssd(nn.Module):
    """Mamba-2's SSD scan (see torch_ops.mixers.ssd: the same parameters, initialised the same
    way) with the chunk scan in Triton; B and C are read per group, never repeated per head.
    softplus(dt + dt_bias), A = -exp(A_log), dt x and D x stay elementwise torch ops."""

    def __init__(self, H: int, P: int, G: int, N: int, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.A_log, self.dt_bias, self.D = _ssd_parameters(H)

    def forward(self, x, dt, B, C):
        dt = F.softplus(dt.to(torch.promote_types(dt.dtype, torch.float32)) + self.dt_bias)
        log_decay = -torch.exp(self.A_log.to(dt.dtype)) * dt
        # linear attention with queries C, keys B, values dt x and log-decay dt A
        y = _chunk_scalar_decay_triton(C.to(x.dtype), B.to(x.dtype), (x * dt[..., None]).to(x.dtype), log_decay,
                                       1.0, self.chunk_size)
        return y + self.D[:, None] * x
