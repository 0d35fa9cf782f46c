"""The chunk walk shared by the chunked linear-attention kernels: GLA's (gla.py) and the
scalar-decay ones (ssd.py: Mamba-2's SSD and retention).

Every [batch, length, heads, dim] tensor is contiguous; a program's tiles are rows of one
chunk of one sequence; the states are [batch * heads, chunks, K, V] in float32. Here: the
addressing of those tiles and states, the backward's products over V tiles, the block sizes,
the launches of a family's forward and backward kernels, and which tensors the kernels take.
Every name starts with `_chunked_`, the family's prefix (the contract in __init__.py): the
compiler copies these into a generated file once, before either family's kernels.
"""

import torch
import triton
import triton.language as tl

# ------------------------------------------------------------------------ kernel helpers

@triton.jit
def _chunked_rows(i_b, i_t, T, BT: tl.constexpr):
    """Chunk i_t of sequence i_b: its positions o_t, which of them are in the sequence (m_t), and
    their rows of the flattened [batch * length] axis (int64, so large tensors do not overflow)."""
    o_t = i_t * BT + tl.arange(0, BT)
    return o_t, o_t < T, (i_b * T + o_t).to(tl.int64)


@triton.jit
def _chunked_tile(row, m_t, i_n, N: tl.constexpr, o_d, D: tl.constexpr):
    """Offsets and mask of a [rows, features o_d] tile of head i_n in a [batch, length, N, D] tensor."""
    return (row[:, None] * N + i_n) * D + o_d[None, :], m_t[:, None] & (o_d[None, :] < D)


@triton.jit
def _chunked_load(x, row, m_t, i_n, N: tl.constexpr, o_d, D: tl.constexpr):
    """That tile of x, zero outside the sequence and the features."""
    p_x, m_x = _chunked_tile(row, m_t, i_n, N, o_d, D)
    return tl.load(x + p_x, mask=m_x, other=0.0)


@triton.jit
def _chunked_load_qk(q, k, row, m_t, i_n, N: tl.constexpr, o_k, K: tl.constexpr):
    """The tiles of q and k (one layout: head or group i_n of N, K features)."""
    return _chunked_load(q, row, m_t, i_n, N, o_k, K), _chunked_load(k, row, m_t, i_n, N, o_k, K)


@triton.jit
def _chunked_store(x, value, row, m_t, i_n, N: tl.constexpr, o_d, D: tl.constexpr):
    """value, in x's dtype, into that tile of x."""
    p_x, m_x = _chunked_tile(row, m_t, i_n, N, o_d, D)
    tl.store(x + p_x, value.to(x.dtype.element_ty), mask=m_x)


@triton.jit
def _chunked_state(i_bh, i_t, NT, o_k, o_v, K: tl.constexpr, V: tl.constexpr):
    """Offsets and mask of the [o_k, o_v] tile of chunk i_t's state in a [batch * heads, NT, K, V] tensor."""
    p_s = (i_bh * NT + i_t).to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
    return p_s, (o_k[:, None] < K) & (o_v[None, :] < V)


@triton.jit
def _chunked_load_state(x, i_bh, i_t, NT, o_k, o_v, K: tl.constexpr, V: tl.constexpr):
    """That tile of chunk i_t's state in x, zero outside K and V."""
    p_s, m_s = _chunked_state(i_bh, i_t, NT, o_k, o_v, K, V)
    return tl.load(x + p_s, mask=m_s, other=0.0)


@triton.jit
def _chunked_store_state(x, state, i_bh, i_t, NT, o_k, o_v, K: tl.constexpr, V: tl.constexpr):
    """state into that tile of chunk i_t's state in x."""
    p_s, m_s = _chunked_state(i_bh, i_t, NT, o_k, o_v, K, V)
    tl.store(x + p_s, state, mask=m_s)


@triton.jit
def _chunked_dqk_over_v(v, do, h, dh, row, m_t, i_h, H: tl.constexpr, i_bh, i_t, NT, o_k, K: tl.constexpr,
                        V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """The backward's products over every V tile of chunk i_t, in float32: dA[t, s] = do_t . v_s,
    do h^T (dq through the chunk's start state) and v dh^T (dk through its end state)."""
    b_dA = tl.zeros([BT, BT], dtype=tl.float32)
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        b_v = _chunked_load(v, row, m_t, i_h, H, o_v, V)
        b_do = _chunked_load(do, row, m_t, i_h, H, o_v, V)
        b_h = _chunked_load_state(h, i_bh, i_t, NT, o_k, o_v, K, V).to(b_v.dtype)
        b_dh = _chunked_load_state(dh, i_bh, i_t, NT, o_k, o_v, K, V).to(b_v.dtype)
        b_dA = tl.dot(b_do, tl.trans(b_v), b_dA, input_precision="ieee")
        b_dq = tl.dot(b_do, tl.trans(b_h), b_dq, input_precision="ieee")
        b_dk = tl.dot(b_v, tl.trans(b_dh), b_dk, input_precision="ieee")
    return b_dA, b_dq, b_dk


# ------------------------------------------------------------------------ host side


def _chunked_dims(q, v, chunk, widest_k):
    """The kernels' sizes: heads H (v's), key and value widths K, V, the chunk BT, and the tile
    widths BK, BV: powers of two from 16 (tl.dot's least) up to widest_k keys and 64 values."""
    size, value = q.shape[3], v.shape[3]
    return {"H": v.shape[2], "K": size, "V": value, "BT": chunk,
            "BK": min(widest_k, max(16, triton.next_power_of_2(size))),
            "BV": min(64, max(16, triton.next_power_of_2(value)))}


def _chunked_forward(fwd_h_kernel, fwd_o_kernel, q, k, v, decay, scale, dims):
    """(o, h) by a family's forward kernels: h [batch, heads, chunks, K, V], the state at each
    chunk's start (float32, kept for the backward), one program per (K tile, V tile, batch *
    head) walking the chunks; then o, one program per (V tile, chunk, batch * head)."""
    batch, length, heads, value = v.shape
    size = q.shape[3]
    chunks = triton.cdiv(length, dims["BT"])
    h = torch.empty(batch, heads, chunks, size, value, dtype=torch.float32, device=q.device)
    fwd_h_kernel[(triton.cdiv(size, dims["BK"]), triton.cdiv(value, dims["BV"]), batch * heads)](
        k, v, decay, h, length, chunks, **dims)
    o = torch.empty_like(v)
    fwd_o_kernel[(triton.cdiv(value, dims["BV"]), chunks, batch * heads)](
        q, k, v, decay, h, o, scale, length, chunks, **dims)
    return o, h


def _chunked_backward_dh_dv(bwd_dh_kernel, bwd_dv_kernel, q, k, v, decay, h, do, scale, dims):
    """(dh, dv) by a family's backward kernels: dh, the gradient of each chunk's end state, one
    program per (K tile, V tile, batch * head) walking the chunks backwards; then dv, one
    program per (V tile, chunk, batch * head)."""
    batch, length, heads, value = v.shape
    chunks = h.shape[2]
    tiles_k, tiles_v = triton.cdiv(q.shape[3], dims["BK"]), triton.cdiv(value, dims["BV"])
    dh = torch.empty_like(h)
    bwd_dh_kernel[(tiles_k, tiles_v, batch * heads)](q, decay, do, dh, scale, length, chunks, **dims)
    dv = torch.empty_like(v)
    bwd_dv_kernel[(tiles_v, chunks, batch * heads)](q, k, decay, do, dh, dv, scale, length, chunks, **dims)
    return dh, dv


def _chunked_kernels_take(x):
    """Whether the kernels run on x: compiled ones need a CUDA tensor, interpreted ones (defined
    under TRITON_INTERPRET=1) take CPU tensors; neither takes float64 (tl.dot accumulates in
    float32 here), which the causality check runs in. Elsewhere the torch form runs."""
    interpreted = not isinstance(_chunked_rows, triton.runtime.JITFunction)
    return x.dtype != torch.float64 and (x.is_cuda or interpreted)
