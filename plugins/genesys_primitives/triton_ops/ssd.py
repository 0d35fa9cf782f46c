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

Masked decays are set to -inf before the exp, so nothing overflows however strong the decay.
Inputs are read in their dtype, everything accumulates in float32, and the output is
written in v's dtype. Operands of tl.dot are cast to the inputs' dtype (bfloat16 runs on
tensor cores; float32 inputs use TF32 on a GPU, exact float32 under TRITON_INTERPRET=1).
"""

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _scalar_decay_fwd_h_kernel(k, v, a, h, T, NT, G: tl.constexpr, H: tl.constexpr, K: tl.constexpr,
                               V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """h[b, h, i] = the state at the start of chunk i (K x V tile of it)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    state = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(NT):
        p_h = h + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        tl.store(p_h, state, mask=m_kv)
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        row = (i_b * T + o_t).to(tl.int64)
        # padded positions load a = 0, k = v = 0: they neither decay nor write the state
        b_a = tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32)
        b_c = tl.cumsum(b_a, 0)
        b_last = tl.sum(b_a, 0)
        b_k = tl.load(k + (row[:, None] * G + i_g) * K + o_k[None, :],
                      mask=m_t[:, None] & (o_k[None, :] < K), other=0.0)
        b_v = tl.load(v + (row[:, None] * H + i_h) * V + o_v[None, :],
                      mask=m_t[:, None] & (o_v[None, :] < V), other=0.0)
        b_kd = (b_k * tl.exp(b_last - b_c)[:, None]).to(b_v.dtype)  # decayed to the chunk's end
        state = state * tl.exp(b_last) + tl.dot(tl.trans(b_kd), b_v)


@triton.jit
def _scalar_decay_fwd_o_kernel(q, k, v, a, h, o, scale, T, NT, G: tl.constexpr, H: tl.constexpr,
                               K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                               BV: tl.constexpr):
    """o for one chunk and V tile: from the chunk's start state, plus the chunk itself."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_q = tl.load(q + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_k = tl.load(k + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        p_h = h + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        b_h = tl.load(p_h, mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_o = tl.dot(b_q, b_h.to(b_q.dtype), b_o)
        b_A = tl.dot(b_q, tl.trans(b_k), b_A)
    b_c = tl.cumsum(tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32), 0)
    causal = o_t[:, None] >= o_t[None, :]
    b_A = b_A * tl.exp(tl.where(causal, b_c[:, None] - b_c[None, :], float("-inf")))
    b_v = tl.load(v + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_o = b_o * tl.exp(b_c)[:, None]
    b_o = tl.dot(b_A.to(b_v.dtype), b_v, b_o) * scale
    tl.store(o + (row[:, None] * H + i_h) * V + o_v[None, :], b_o.to(o.dtype.element_ty),
             mask=m_t[:, None] & m_v[None, :])


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
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    dstate = tl.zeros([BK, BV], dtype=tl.float32)
    for i_back in range(NT):
        i_t = NT - 1 - i_back
        p_dh = dh + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        tl.store(p_dh, dstate, mask=m_kv)
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        row = (i_b * T + o_t).to(tl.int64)
        b_a = tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32)
        b_c = tl.cumsum(b_a, 0)
        b_last = tl.sum(b_a, 0)
        b_q = tl.load(q + (row[:, None] * G + i_g) * K + o_k[None, :],
                      mask=m_t[:, None] & (o_k[None, :] < K), other=0.0)
        b_do = tl.load(do + (row[:, None] * H + i_h) * V + o_v[None, :],
                       mask=m_t[:, None] & (o_v[None, :] < V), other=0.0)
        b_qd = (b_q * (tl.exp(b_c) * scale)[:, None]).to(b_do.dtype)
        # the chunk's outputs read its start state; its start state flows on into the end state
        dstate = dstate * tl.exp(b_last) + tl.dot(tl.trans(b_qd), b_do)


@triton.jit
def _scalar_decay_bwd_dv_kernel(q, k, a, do, dh, dv, scale, T, NT, G: tl.constexpr, H: tl.constexpr,
                                K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                                BV: tl.constexpr):
    """dv_s = sum_{t >= s} A_ts do_t + (k_s decayed to the chunk's end) dS_end."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    b_a = tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    b_c = tl.cumsum(b_a, 0)
    b_last = tl.sum(b_a, 0)
    b_do = tl.load(do + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    b_At = tl.zeros([BT, BT], dtype=tl.float32)  # At[s, t] = k_s . q_t
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_q = tl.load(q + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_k = tl.load(k + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        p_dh = dh + (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        b_dh = tl.load(p_dh, mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_At = tl.dot(b_k, tl.trans(b_q), b_At)
        b_kd = (b_k * tl.exp(b_last - b_c)[:, None]).to(b_do.dtype)
        b_dv = tl.dot(b_kd, b_dh.to(b_do.dtype), b_dv)
    later = o_t[None, :] >= o_t[:, None]  # t >= s
    b_At = b_At * tl.exp(tl.where(later, b_c[None, :] - b_c[:, None], float("-inf"))) * scale
    b_dv = tl.dot(b_At.to(b_do.dtype), b_do, b_dv)
    tl.store(dv + (row[:, None] * H + i_h) * V + o_v[None, :], b_dv.to(dv.dtype.element_ty),
             mask=m_t[:, None] & m_v[None, :])


@triton.jit
def _scalar_decay_bwd_dqk_kernel(q, k, v, a, h, do, dh, dq, dk, dg, scale, T, NT, B, G: tl.constexpr,
                                 H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                                 BK: tl.constexpr, BV: tl.constexpr):
    """dq, dk per head (a K tile of them), and this tile's share of q . dq - k . dk."""
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_g = i_h // (H // G)
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    row = (i_b * T + o_t).to(tl.int64)
    o_k = i_k * BK + tl.arange(0, BK)
    m_qk = m_t[:, None] & (o_k[None, :] < K)
    b_q = tl.load(q + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_qk, other=0.0)
    b_k = tl.load(k + (row[:, None] * G + i_g) * K + o_k[None, :], mask=m_qk, other=0.0)
    b_dA = tl.zeros([BT, BT], dtype=tl.float32)  # dA[t, s] = do_t . v_s
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        b_v = tl.load(v + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_do = tl.load(do + (row[:, None] * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                       other=0.0)
        p_state = (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
        m_state = (o_k[:, None] < K) & m_v[None, :]
        b_h = tl.load(h + p_state, mask=m_state, other=0.0).to(b_v.dtype)
        b_dh = tl.load(dh + p_state, mask=m_state, other=0.0).to(b_v.dtype)
        b_dA = tl.dot(b_do, tl.trans(b_v), b_dA)
        b_dq = tl.dot(b_do, tl.trans(b_h), b_dq)
        b_dk = tl.dot(b_v, tl.trans(b_dh), b_dk)
    b_a = tl.load(a + row * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    b_c = tl.cumsum(b_a, 0)
    b_last = tl.sum(b_a, 0)
    # the diagonal (a token with itself) is undecayed, so it adds nothing to the log-decay's
    # gradient: it is kept out of q . dq - k . dk, where it would cancel only up to rounding
    before = o_t[:, None] > o_t[None, :]
    b_diag = tl.sum(tl.where(o_t[:, None] == o_t[None, :], b_dA, 0.0), 1) * scale
    b_dA = (b_dA * tl.exp(tl.where(before, b_c[:, None] - b_c[None, :], float("-inf"))) * scale).to(b_q.dtype)
    b_dq = b_dq * (tl.exp(b_c) * scale)[:, None]
    b_dq = tl.dot(b_dA, b_k, b_dq)
    b_dk = b_dk * tl.exp(b_last - b_c)[:, None]
    b_dk = tl.dot(tl.trans(b_dA), b_q, b_dk)
    b_q, b_k = b_q.to(tl.float32), b_k.to(tl.float32)
    b_dg = tl.sum(b_q * b_dq - b_k * b_dk, 1)
    b_dq += b_diag[:, None] * b_k
    b_dk += b_diag[:, None] * b_q
    p_out = (row[:, None] * H + i_h) * K + o_k[None, :]
    tl.store(dq + p_out, b_dq.to(dq.dtype.element_ty), mask=m_qk)
    tl.store(dk + p_out, b_dk.to(dk.dtype.element_ty), mask=m_qk)
    tl.store(dg + i_k.to(tl.int64) * B * T * H + row * H + i_h, b_dg, mask=m_t)


class _ChunkScalarDecay(torch.autograd.Function):
    """o_t = scale q_t S_t, S_t = exp(a_t) S_{t-1} + k_t^T v_t, by the kernels above.

    q, k [B, L, G, K]; v [B, L, H, V]; a [B, L, H] (log-decays <= 0); H a multiple of G.
    """

    @staticmethod
    def forward(ctx, q, k, v, a, scale, chunk_size):
        q, k, v, a = (t.contiguous() for t in (q, k, v, a))
        batch, length, groups, size = q.shape
        heads, value = v.shape[2], v.shape[3]
        chunks = triton.cdiv(length, chunk_size)
        block_k = min(64, max(16, triton.next_power_of_2(size)))
        block_v = min(64, max(16, triton.next_power_of_2(value)))
        dims = {"G": groups, "H": heads, "K": size, "V": value, "BT": chunk_size, "BK": block_k, "BV": block_v}
        h = torch.empty(batch, heads, chunks, size, value, dtype=torch.float32, device=q.device)
        _scalar_decay_fwd_h_kernel[(triton.cdiv(size, block_k), triton.cdiv(value, block_v), batch * heads)](
            k, v, a, h, length, chunks, **dims)
        o = torch.empty_like(v)
        _scalar_decay_fwd_o_kernel[(triton.cdiv(value, block_v), chunks, batch * heads)](
            q, k, v, a, h, o, scale, length, chunks, **dims)
        ctx.save_for_backward(q, k, v, a, h)
        ctx.scale, ctx.dims, ctx.chunks = scale, dims, chunks
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, a, h = ctx.saved_tensors
        do = do.contiguous()
        dims, chunks, scale = ctx.dims, ctx.chunks, ctx.scale
        batch, length, groups, size = q.shape
        heads, value = v.shape[2], v.shape[3]
        tiles_k, tiles_v = triton.cdiv(size, dims["BK"]), triton.cdiv(value, dims["BV"])
        dh = torch.empty_like(h)
        _scalar_decay_bwd_dh_kernel[(tiles_k, tiles_v, batch * heads)](q, a, do, dh, scale, length, chunks, **dims)
        dv = torch.empty_like(v)
        _scalar_decay_bwd_dv_kernel[(tiles_v, chunks, batch * heads)](
            q, k, a, do, dh, dv, scale, length, chunks, **dims)
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
    needs 16 or more rows; the torch form takes any) run at 64, which gives the same result."""
    if chunk_size < 16 or chunk_size > 128 or chunk_size & (chunk_size - 1):
        chunk_size = 64
    return _ChunkScalarDecay.apply(q, k, v, a, scale, chunk_size)


class ssd(nn.Module):
    """Mamba-2's SSD scan (see torch_ops.mixers.ssd: the same parameters, initialised the same
    way) with the chunk scan in Triton; B and C are read per group, never repeated per head.
    softplus(dt + dt_bias), A = -exp(A_log), dt x and D x stay elementwise torch ops."""

    def __init__(self, H: int, P: int, G: int, N: int, chunk_size: int = 64):
        super().__init__()
        self.chunk_size = chunk_size
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
        dt = torch.empty(H).uniform_(math.log(0.001), math.log(0.1)).exp()
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.D = nn.Parameter(torch.ones(H))

    def forward(self, x, dt, B, C):
        dt = F.softplus(dt.float() + self.dt_bias)
        log_decay = -torch.exp(self.A_log.float()) * dt
        # linear attention with queries C, keys B, values dt x and log-decay dt A
        y = _chunk_scalar_decay_triton(C.to(x.dtype), B.to(x.dtype), (x * dt[..., None]).to(x.dtype), log_decay,
                                       1.0, self.chunk_size)
        return y + self.D[:, None] * x
