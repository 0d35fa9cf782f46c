"""Triton kernels for gated linear attention in 64-token chunks with 16-token sub-chunks, a
drop-in for ../torch_ops/mixers.py's `gla` (the contract is in __init__.py).

GLA computes S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t / sqrt(K), chunk by chunk
as the scalar-decay kernels of ssd.py do (see there), with the decay differing per key channel.
With c the cumulative log-decay inside a chunk (per channel, <= 0 and falling), a query t sees
a key s <= t of its chunk through A_ts = sum_k q_tk k_sk exp(c_tk - c_sk). As a matrix product
of q exp(c) and k exp(-c) that overflows for strong decays; flash-linear-attention's way
around it, followed here (written afresh):

  * the state walk, the output from the chunk's start state and the gradients of the states
    run in chunks of BT = 64 tokens: L / 64 sequential steps of [64 x BK] x [64 x BV] products;
  * inside a chunk, queries go in sub-chunks of BC = 16. The keys of earlier sub-chunks are
    reached through c_b, the cumulative log-decay just before the query sub-chunk starts:
    exp(c_t - c_s) = exp(c_t - c_b) exp(c_b - c_s), both exponents <= 0, so one tl.dot of
    q exp(c - c_b) and (k exp(c_b - c))^T gives those scores without overflow. Only the
    diagonal [16 x 16] block is the elementwise [16, 16, BK] product of exp(c_t - c_s).
    The backward mirrors it: dq through c_b, dk through the cumulative log-decay at the
    sub-chunk's end, the diagonal block elementwise.

The cumulative log-decays inside chunks are computed once, by torch (`_gla_local_cumsum`), and
read by every kernel; the intra-chunk scores A (forward) and their gradient dA (backward) are
kept as [batch, length, heads, 64] float32. The gradient of the log-decays is exact as before:
dL/dG_t = q_t * dq_t - k_t * dk_t per channel for the global cumulative log-decay G (o depends
on g only through differences of G), so the dq/dk kernel writes that product (without a
token's undecayed term with itself, which cancels only up to rounding) and a torch reverse
cumulative sum over time gives dg. Addressing and tiles are chunked.py's `_chunked_*` helpers.
"""

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

# the torch form (for tensors the kernels do not take), and the chunk walk's helpers GLA shares
# with the scalar-decay kernels (the copied kernels find them by name)
from ..torch_ops.mixers import _chunk_channel_decay, _chunk_tokens
from .chunked import (_chunked_dims, _chunked_dqk_over_v, _chunked_kernels_take, _chunked_load,
                      _chunked_load_state, _chunked_rows, _chunked_store, _chunked_store_state, _chunked_tile)


@triton.jit
def _gla_row(gl, row, i_h, H: tl.constexpr, o_k, K: tl.constexpr, mask):
    """One row [BK] of gl at flattened row `row` (zero where not mask)."""
    return tl.load(gl + (row.to(tl.int64) * H + i_h) * K + o_k, mask=mask & (o_k < K), other=0.0)


@triton.jit
def _gla_totals(gl, i_b, i_t, T, i_h, H: tl.constexpr, o_k, K: tl.constexpr, lo, hi, BT: tl.constexpr,
                BC: tl.constexpr):
    """[rows, BK]: for each row r, the log-decay across the sub-chunks lo_r <= j < hi_r of chunk i_t:
    the sum of their totals (a sub-chunk's total is its last gl; zero past the sequence). A sum
    of terms <= 0 in a fixed order, so as precise as its result, however strong the decays."""
    out = tl.zeros_like(lo[:, None] + o_k[None, :]).to(tl.float32)
    for j in tl.static_range(BT // BC):
        first = i_t * BT + j * BC
        total = _gla_row(gl, i_b * T + tl.minimum(first + BC, T) - 1, i_h, H, o_k, K, first < T)
        out += tl.where(((lo <= j) & (j < hi))[:, None], total[None, :], 0.0)
    return out


@triton.jit
def _gla_chunk_total(gl, i_b, i_t, T, i_h, H: tl.constexpr, o_k, K: tl.constexpr, BT: tl.constexpr,
                     BC: tl.constexpr):
    """[BK]: the log-decay across the whole of chunk i_t, the sum of its sub-chunks' totals."""
    across = tl.zeros_like(o_k).to(tl.float32)
    for j in tl.static_range(BT // BC):
        first = i_t * BT + j * BC
        across += _gla_row(gl, i_b * T + tl.minimum(first + BC, T) - 1, i_h, H, o_k, K, first < T)
    return across


@triton.jit
def _gla_decay_between(b_l, b_r, keep):
    """[t, s, k] -> exp(log-decay over (s, t]) inside one sub-chunk, where keep[t, s], else 0. It is
    l_t - l_s (sums from the sub-chunk's start) or r_s - r_t (sums to its end), whichever has the
    smaller operands: a strong decay before s (or after t) would cost the other its precision.
    Masked before the exp; the exponent is <= 0 wherever it is kept, so nothing overflows."""
    l_t, r_s = b_l[:, None, :], b_r[None, :, :]
    between = tl.where(l_t >= r_s, l_t - b_l[None, :, :], r_s - b_r[:, None, :])
    return tl.exp(tl.where(keep[:, :, None], between, float("-inf")))


@triton.jit
def _gla_scores(b_q, b_k, b_l, b_r, keep):
    """A K tile's share of A_ts = sum_k q_tk k_sk exp(log-decay over (s, t]), where keep[t, s]."""
    decay = _gla_decay_between(b_l, b_r, keep)
    return tl.sum(b_q.to(tl.float32)[:, None, :] * b_k.to(tl.float32)[None, :, :] * decay, 2)


@triton.jit
def _gla_fwd_h_kernel(k, v, gl, gr, h, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """h[b, h, i] = the state at the start of chunk i (a K x V tile of it)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    sub = tl.arange(0, BT) // BC  # each row's sub-chunk
    state = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(NT):
        _chunked_store_state(h, state, i_bh, i_t, NT, o_k, o_v, K, V)
        _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
        # padded positions load k = v = 0: they write nothing
        b_k = _chunked_load(k, row, m_t, i_h, H, o_k, K)
        b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
        to_end = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub + 1, sub * 0 + BT // BC, BT, BC) + \
            _chunked_load(gr, row, m_t, i_h, H, o_k, K)
        b_kd = (b_k * tl.exp(to_end)).to(b_v.dtype)  # decayed to the chunk's end
        across = _gla_chunk_total(gl, i_b, i_t, T, i_h, H, o_k, K, BT, BC)
        state = state * tl.exp(across)[:, None] + tl.dot(tl.trans(b_kd), b_v, input_precision="ieee")


@triton.jit
def _gla_fwd_intra_kernel(q, k, gl, gr, A, T, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr,
                          BC: tl.constexpr, BK: tl.constexpr):
    """A[t, s] = sum_k q_tk k_sk exp(c_tk - c_sk) for the BC queries t of one sub-chunk and every
    key s <= t of their chunk (zero for s > t): rows [BC, BT] of A [batch, length, heads, BT]."""
    i_tc, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_t, i_c = i_tc // (BT // BC), i_tc % (BT // BC)
    _, m_t, row = _chunked_rows(i_b, i_t, T, BT)  # the chunk
    o_i, m_i, row_i = _chunked_rows(i_b, i_tc, T, BC)  # the query sub-chunk
    sub = tl.arange(0, BT) // BC
    earlier = (sub < i_c) & m_t  # keys of the earlier sub-chunks
    b_A = tl.zeros([BC, BT], dtype=tl.float32)
    b_Ad = tl.zeros([BC, BC], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q = _chunked_load(q, row_i, m_i, i_h, H, o_k, K)
        b_ki = _chunked_load(k, row_i, m_i, i_h, H, o_k, K)
        b_li = _chunked_load(gl, row_i, m_i, i_h, H, o_k, K)  # from the sub-chunk's start to t
        b_ri = _chunked_load(gr, row_i, m_i, i_h, H, o_k, K)  # from t to the sub-chunk's end
        b_k = _chunked_load(k, row, m_t, i_h, H, o_k, K)
        # from an earlier key s to the sub-chunk's start: the rest of s's sub-chunk, then whole ones
        to_start = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub + 1, sub * 0 + i_c, BT, BC) + \
            _chunked_load(gr, row, m_t, i_h, H, o_k, K)
        b_kg = b_k * tl.exp(tl.where(earlier[:, None], to_start, float("-inf")))
        b_A = tl.dot((b_q * tl.exp(b_li)).to(b_q.dtype), tl.trans(b_kg.to(b_q.dtype)), b_A, input_precision="ieee")
        b_Ad += _gla_scores(b_q, b_ki, b_li, b_ri, (o_i[:, None] >= o_i[None, :]) & m_i[:, None])
    # b_A is zero from the sub-chunk on; the diagonal block is b_Ad: two disjoint stores
    o_s = tl.arange(0, BT)
    p_A, m_A = _chunked_tile(row_i, m_i, i_h, H, o_s, BT)
    tl.store(A + p_A, b_A, mask=m_A & (sub != i_c)[None, :])
    p_Ad, m_Ad = _chunked_tile(row_i, m_i, i_h, H, i_c * BC + tl.arange(0, BC), BT)
    tl.store(A + p_Ad, b_Ad, mask=m_Ad)


@triton.jit
def _gla_fwd_o_kernel(q, gl, v, h, A, o, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """o for one chunk and V tile: (q exp(c)) S_start + A v, times scale."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    sub = tl.arange(0, BT) // BC
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q = _chunked_load(q, row, m_t, i_h, H, o_k, K)
        # from the chunk's start to t: whole earlier sub-chunks, then t's own up to t
        b_c = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub * 0, sub, BT, BC) + \
            _chunked_load(gl, row, m_t, i_h, H, o_k, K)
        b_h = _chunked_load_state(h, i_bh, i_t, NT, o_k, o_v, K, V)
        b_o = tl.dot((b_q * tl.exp(b_c)).to(b_q.dtype), b_h.to(b_q.dtype), b_o, input_precision="ieee")
    b_A = _chunked_load(A, row, m_t, i_h, H, tl.arange(0, BT), BT)
    b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
    b_o = tl.dot(b_A.to(b_v.dtype), b_v, b_o, input_precision="ieee") * scale
    _chunked_store(o, b_o, row, m_t, i_h, H, o_v, V)


@triton.jit
def _gla_bwd_dh_kernel(q, gl, do, dh, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """dh[b, h, i] = the gradient of the state at the end of chunk i (zero for the last)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    sub = tl.arange(0, BT) // BC
    dstate = tl.zeros([BK, BV], dtype=tl.float32)
    for i_back in range(NT):
        i_t = NT - 1 - i_back
        _chunked_store_state(dh, dstate, i_bh, i_t, NT, o_k, o_v, K, V)
        _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
        b_c = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub * 0, sub, BT, BC) + \
            _chunked_load(gl, row, m_t, i_h, H, o_k, K)
        across = _gla_chunk_total(gl, i_b, i_t, T, i_h, H, o_k, K, BT, BC)
        b_q = _chunked_load(q, row, m_t, i_h, H, o_k, K)
        b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
        b_qd = (b_q * tl.exp(b_c) * scale).to(b_do.dtype)
        # the chunk's outputs read its start state; its start state flows on into the end state
        dstate = dstate * tl.exp(across)[:, None] + tl.dot(tl.trans(b_qd), b_do, input_precision="ieee")


@triton.jit
def _gla_bwd_dA_kernel(v, do, dA, scale, T, H: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                       BV: tl.constexpr):
    """dA[t, s] = scale do_t . v_s for s <= t in one chunk (zero above the diagonal)."""
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    b_dA = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
        b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
        b_dA = tl.dot(b_do, tl.trans(b_v), b_dA, input_precision="ieee")
    b_dA = tl.where(o_t[:, None] >= o_t[None, :], b_dA * scale, 0.0)
    p_dA, m_dA = _chunked_tile(row, m_t, i_h, H, tl.arange(0, BT), BT)
    tl.store(dA + p_dA, b_dA, mask=m_dA)


@triton.jit
def _gla_bwd_dv_kernel(k, gl, gr, do, dh, A, dv, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """dv_s = sum_{t >= s} scale A_ts do_t + (k_s decayed to the chunk's end) dS_end."""
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    _, m_t, row = _chunked_rows(i_b, i_t, T, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    sub = tl.arange(0, BT) // BC
    b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        b_k = _chunked_load(k, row, m_t, i_h, H, o_k, K)
        to_end = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub + 1, sub * 0 + BT // BC, BT, BC) + \
            _chunked_load(gr, row, m_t, i_h, H, o_k, K)
        b_dh = _chunked_load_state(dh, i_bh, i_t, NT, o_k, o_v, K, V)
        b_dv = tl.dot((b_k * tl.exp(to_end)).to(b_do.dtype), b_dh.to(b_do.dtype), b_dv, input_precision="ieee")
    b_A = _chunked_load(A, row, m_t, i_h, H, tl.arange(0, BT), BT)
    b_dv = tl.dot(tl.trans(b_A * scale).to(b_do.dtype), b_do, b_dv, input_precision="ieee")
    _chunked_store(dv, b_dv, row, m_t, i_h, H, o_v, V)


@triton.jit
def _gla_bwd_dqk_kernel(q, k, v, gl, gr, h, do, dh, dA, dq, dk, dg, scale, T, NT, H: tl.constexpr, K: tl.constexpr,
                        V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
                        BV: tl.constexpr):
    """dq, dk of one sub-chunk (a K tile of them) and q * dq - k * dk, the gradient of the
    cumulative log-decay: through the chunk's states, the earlier and later sub-chunks of the
    chunk (matrix products through the sub-chunk's start and end), and the sub-chunk itself."""
    i_k, i_tc, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_t, i_c = i_tc // (BT // BC), i_tc % (BT // BC)
    _, m_t, row = _chunked_rows(i_b, i_t, T, BT)  # the chunk
    o_i, m_i, row_i = _chunked_rows(i_b, i_tc, T, BC)  # the sub-chunk
    o_k = i_k * BK + tl.arange(0, BK)
    sub = tl.arange(0, BT) // BC
    here = tl.zeros([BC], dtype=tl.int32) + i_c
    dtype = q.dtype.element_ty
    # through the chunk's start and end states, and dA_ii[t, s] = do_t . v_s inside the sub-chunk
    b_dAii, b_dq, b_dk = _chunked_dqk_over_v(v, do, h, dh, row_i, m_i, i_h, H, i_bh, i_t, NT, o_k, K, V,
                                             BC, BK, BV)
    b_q = _chunked_load(q, row_i, m_i, i_h, H, o_k, K).to(tl.float32)
    b_k = _chunked_load(k, row_i, m_i, i_h, H, o_k, K).to(tl.float32)
    b_li = _chunked_load(gl, row_i, m_i, i_h, H, o_k, K)  # from the sub-chunk's start to t
    b_ri = _chunked_load(gr, row_i, m_i, i_h, H, o_k, K)  # from t to the sub-chunk's end
    # from the chunk's start to t, and from s to the chunk's end
    from_start = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, here * 0, here, BT, BC) + b_li
    to_end = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, here + 1, here * 0 + BT // BC, BT, BC) + b_ri
    b_dq = b_dq * tl.exp(from_start) * scale
    b_dk = b_dk * tl.exp(to_end)
    b_l = _chunked_load(gl, row, m_t, i_h, H, o_k, K)
    # dq from the keys of earlier sub-chunks, through the sub-chunk's start
    to_start = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub + 1, sub * 0 + i_c, BT, BC) + \
        _chunked_load(gr, row, m_t, i_h, H, o_k, K)
    b_kg = _chunked_load(k, row, m_t, i_h, H, o_k, K) * tl.exp(
        tl.where(((sub < i_c) & m_t)[:, None], to_start, float("-inf")))
    b_dA = _chunked_load(dA, row_i, m_i, i_h, H, tl.arange(0, BT), BT)  # [BC, BT]; b_kg is 0 from here on
    b_dq += tl.dot(b_dA.to(dtype), b_kg.to(dtype), input_precision="ieee") * tl.exp(b_li)
    # dk from the queries of later sub-chunks, through the sub-chunk's end
    from_end = _gla_totals(gl, i_b, i_t, T, i_h, H, o_k, K, sub * 0 + i_c + 1, sub, BT, BC) + b_l
    b_qg = _chunked_load(q, row, m_t, i_h, H, o_k, K) * tl.exp(
        tl.where(((sub > i_c) & m_t)[:, None], from_end, float("-inf")))
    b_dAt = _chunked_load(dA, row, m_t, i_h, H, i_c * BC + tl.arange(0, BC), BT)  # [BT, BC]: dA[t, s in here]
    b_dk += tl.dot(tl.trans(b_dAt).to(dtype), b_qg.to(dtype), input_precision="ieee") * tl.exp(b_ri)
    # the sub-chunk itself, elementwise; a token with itself is undecayed, so it adds nothing to
    # the log-decay's gradient: kept out of q * dq - k * dk, where it would cancel only up to rounding
    b_diag = tl.sum(tl.where(o_i[:, None] == o_i[None, :], b_dAii, 0.0), 1) * scale
    keep = (o_i[:, None] > o_i[None, :]) & m_i[:, None]
    weighted = b_dAii[:, :, None] * _gla_decay_between(b_li, b_ri, keep) * scale
    b_dq += tl.sum(weighted * b_k[None, :, :], 1)
    b_dk += tl.sum(weighted * b_q[:, None, :], 0)
    p_qk, m_qk = _chunked_tile(row_i, m_i, i_h, H, o_k, K)
    tl.store(dg + p_qk, b_q * b_dq - b_k * b_dk, mask=m_qk)
    b_dq += b_diag[:, None] * b_k
    b_dk += b_diag[:, None] * b_q
    _chunked_store(dq, b_dq, row_i, m_i, i_h, H, o_k, K)
    _chunked_store(dk, b_dk, row_i, m_i, i_h, H, o_k, K)


def _gla_local_cumsums(g, chunk):
    """(gl, gr): inside each chunk of `chunk` tokens, the sum of g from the chunk's start up to and
    including t, and from after t to the chunk's end; float32, each summed from its own end, so a
    strong decay does not cost the other positions their precision (the tail chunk padded)."""
    batch, length, heads, size = g.shape
    padded = F.pad(g.float(), (0, 0, 0, 0, 0, -length % chunk)).view(batch, -1, chunk, heads, size)
    gl = padded.cumsum(2)
    gr = F.pad(padded[:, :, 1:].flip(2).cumsum(2).flip(2), (0, 0, 0, 0, 0, 1))
    return tuple(x.view(batch, -1, heads, size)[:, :length].contiguous() for x in (gl, gr))


class _GlaChunked(torch.autograd.Function):
    """gla's o = scale q S by the kernels above; q, k, g [B, L, H, K], v [B, L, H, V]."""

    CHUNK, SUB_CHUNK = 64, 16

    @staticmethod
    def forward(ctx, q, k, v, g, scale):
        q, k, v = (t.contiguous() for t in (q, k, v))
        # K tiles of at most 32: the diagonal blocks' [16, 16, BK] products have to fit in registers
        dims = {**_chunked_dims(q, v, _GlaChunked.CHUNK, 32), "BC": _GlaChunked.SUB_CHUNK}
        batch, length, heads, size = q.shape
        value = v.shape[3]
        chunks = triton.cdiv(length, dims["BT"])
        sub_chunks = chunks * (dims["BT"] // dims["BC"])
        gl, gr = _gla_local_cumsums(g, dims["BC"])  # the log-decays summed inside each sub-chunk
        h = torch.empty(batch, heads, chunks, size, value, dtype=torch.float32, device=q.device)
        _gla_fwd_h_kernel[(triton.cdiv(size, dims["BK"]), triton.cdiv(value, dims["BV"]), batch * heads)](
            k, v, gl, gr, h, length, chunks, **dims)
        A = torch.empty(batch, length, heads, dims["BT"], dtype=torch.float32, device=q.device)
        _gla_fwd_intra_kernel[(sub_chunks, batch * heads)](
            q, k, gl, gr, A, length, H=heads, K=size, BT=dims["BT"], BC=dims["BC"], BK=dims["BK"])
        o = torch.empty_like(v)
        _gla_fwd_o_kernel[(triton.cdiv(value, dims["BV"]), chunks, batch * heads)](
            q, gl, v, h, A, o, scale, length, chunks, **dims)
        ctx.save_for_backward(q, k, v, gl, gr, h, A)
        ctx.scale, ctx.dims, ctx.g_dtype = scale, dims, g.dtype
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, gl, gr, h, A = ctx.saved_tensors
        do = do.contiguous()
        dims, scale = ctx.dims, ctx.scale
        batch, length, heads, size = q.shape
        value, chunks = v.shape[3], h.shape[2]
        tiles_k, tiles_v = triton.cdiv(size, dims["BK"]), triton.cdiv(value, dims["BV"])
        dh = torch.empty_like(h)
        _gla_bwd_dh_kernel[(tiles_k, tiles_v, batch * heads)](q, gl, do, dh, scale, length, chunks, **dims)
        dA = torch.empty_like(A)
        _gla_bwd_dA_kernel[(chunks, batch * heads)](
            v, do, dA, scale, length, H=heads, V=value, BT=dims["BT"], BV=dims["BV"])
        dv = torch.empty_like(v)
        _gla_bwd_dv_kernel[(tiles_v, chunks, batch * heads)](k, gl, gr, do, dh, A, dv, scale, length, chunks, **dims)
        dq, dk = torch.empty_like(q), torch.empty_like(k)
        dg = torch.empty(q.shape, dtype=torch.float32, device=q.device)
        _gla_bwd_dqk_kernel[(tiles_k, chunks * (dims["BT"] // dims["BC"]), batch * heads)](
            q, k, v, gl, gr, h, do, dh, dA, dq, dk, dg, scale, length, chunks, **dims)
        # d loss / d g_t = sum over s >= t of (q_s * dq_s - k_s * dk_s), per channel
        dg = dg.flip(1).cumsum(1).flip(1)
        return dq, dk, dv, dg.to(ctx.g_dtype), None


def gla(q, k, v, g, *, chunk_size=None):
    """gla (see torch_ops.mixers.gla) by Triton kernels, in chunks of 64 with sub-chunks of 16
    whatever chunk_size says (the result is the same up to rounding). On a tensor the kernels
    do not take (float64, or not CUDA), the torch form computes it, at its own chunks."""
    if not _chunked_kernels_take(v):
        return _chunk_channel_decay(q / math.sqrt(q.shape[-1]), k, v, g,
                                    _chunk_tokens(chunk_size, v, per_channel=True))
    # tl.dot takes one dtype: q and k in v's, which is also the output's (as in torch_ops)
    return _GlaChunked.apply(q.to(v.dtype), k.to(v.dtype), v, g, 1 / math.sqrt(q.shape[-1]))
