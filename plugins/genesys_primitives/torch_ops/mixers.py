"""Sequence mixers over heads (see ../mixers.py).

Tensors are [batch, length, heads, dim]. Every mixer comes in two forms: the default is
the efficient one (scaled_dot_product_attention, or a chunked scan: quadratic within a
chunk, a state carried from chunk to chunk), and `<name>_reference` is the plain masked
softmax or the recurrence token by token, which the tests hold it to.

The chunked scans follow flash-linear-attention's naive chunk forms and Mamba-2's
ssd_minimal. Decays are log-space and <= 0; the decay between two positions is exp of
the log-decays after the earlier one up to the later one, summed segment by segment
(`_segsum`; per channel, a difference of float64 cumulative sums) and masked before the
exp, so nothing overflows however strong the decay.
The chunked scans compute in (at least) float32 and cast back.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import TorchImpl

# ----------------------------------------------------------------------------- attention


def _grouped_sdpa(q, k, v, **mask):
    """scaled_dot_product_attention on [B, L, heads, D] tensors. Key/value head g serves the
    H / G consecutive query heads g * H / G .. (g + 1) * H / G - 1, as Llama's repeat_kv."""
    repeat = q.shape[2] // k.shape[2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    return F.scaled_dot_product_attention(q, k, v, **mask).transpose(1, 2)


def causal_attention(q, k, v, window=0):
    """softmax(q k^T / sqrt(K)) v over the keys s <= t, or t - window < s <= t if window > 0."""
    if window > 0:
        t = torch.arange(q.shape[1], device=q.device)
        near = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - window)
        return _grouped_sdpa(q, k, v, attn_mask=near)
    return _grouped_sdpa(q, k, v, is_causal=True)


def full_attention(q, k, v):
    """softmax(q k^T / sqrt(K)) v over every key, later ones included."""
    return _grouped_sdpa(q, k, v)


def _attention_reference(q, k, v, allowed):
    """Softmax attention written out; `allowed[t, s]` says whether query t sees key s."""
    batch, length, heads, size = q.shape
    groups = k.shape[2]
    q = q.reshape(batch, length, groups, heads // groups, size)  # query heads within their group
    scores = torch.einsum("btgrk,bsgk->bgrts", q, k) / math.sqrt(size)
    weights = scores.masked_fill(~allowed, -math.inf).softmax(-1)
    return torch.einsum("bgrts,bsgv->btgrv", weights, v).reshape(batch, length, heads, -1)


def causal_attention_reference(q, k, v, window=0):
    t = torch.arange(q.shape[1], device=q.device)
    allowed = t[None, :] <= t[:, None]
    if window > 0:
        allowed = allowed & (t[None, :] > t[:, None] - window)
    return _attention_reference(q, k, v, allowed)


def full_attention_reference(q, k, v):
    allowed = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool, device=q.device)
    return _attention_reference(q, k, v, allowed)


# ------------------------------------------------------------------ chunked scan helpers


def _segsum(a):
    """seg[..., t, s] = a[..., s + 1] + ... + a[..., t] for s <= t, and -inf for s > t.

    Summed along each segment, not as cumsum[t] - cumsum[s], which loses precision once
    the cumulative sum is large (Mamba-2's ssd_minimal does the same).
    """
    n = a.shape[-1]
    ones = torch.ones(n, n, dtype=torch.bool, device=a.device)
    a = a[..., :, None].expand(*a.shape, n)  # a[..., r, s] = a_r
    seg = a.masked_fill(~ones.tril(-1), 0.0).cumsum(-2)  # sum of a_r over s < r <= t
    return seg.masked_fill(~ones.tril(), -math.inf)


def _chunks(x, size):
    """[B, L, H, *D] -> [B, n, H, size, *D], zero-padded at the end to n whole chunks."""
    x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, -x.shape[1] % size))
    return x.reshape(x.shape[0], -1, size, *x.shape[2:]).transpose(2, 3)


def _chunk_tokens(chunk_size, x, per_channel=False):
    """Tokens per chunk of a chunked scan over x [B, L, ...]: chunk_size when given; else the
    device's default, but no more than L, where a longer chunk would only compute on padding.
    The defaults: 32 tokens on the CPU, 8 for a per-channel decay (its [C, C, K] products
    grow with the chunk), chosen with benchmarks/sweep_torch_chunks.py at the CPU ladder's
    shapes; on other devices the earlier 64 and 16, not yet measured there (on a GPU the
    Triton kernels, with chunks of their own, are the fast path). The result is the same up
    to rounding whatever the chunk."""
    if chunk_size is not None:
        return chunk_size
    if x.device.type == "cpu":
        default = 8 if per_channel else 32
    else:
        default = 16 if per_channel else 64
    return max(1, min(default, x.shape[1]))


def _unchunk(x, length):
    """[B, n, H, size, D] -> [B, length, H, D], without the padding."""
    x = x.transpose(2, 3)
    return x.reshape(x.shape[0], -1, *x.shape[3:])[:, :length]


def _chunk_starts(decay, states):
    """The state at each chunk's start: S_0 = 0, S_{i+1} = decay_i * S_i + states_i.

    states [B, n, H, K, V] is what each chunk writes by its end; decay (broadcasting
    against it) is how much of the earlier state survives the chunk.
    """
    state = torch.zeros_like(states[:, 0])
    starts = []
    for i in range(states.shape[1]):
        starts.append(state)
        state = decay[:, i] * state + states[:, i]
    return torch.stack(starts, 1)


def _chunk_scalar_decay(q, k, v, a, chunk_size):
    """o_t = sum_{s <= t} exp(a_{s+1} + ... + a_t) (q_t . k_s) v_s, chunk by chunk.

    q, k [B, L, H, K], v [B, L, H, V], a [B, L, H]: one log-decay per head and token. The
    recurrence it computes: S_t = exp(a_t) S_{t-1} + k_t^T v_t (K x V), o_t = q_t S_t.
    """
    dtype, length = v.dtype, v.shape[1]
    compute = torch.promote_types(dtype, torch.float32)
    # padding is harmless: zero keys and values write nothing, padded outputs are cut off
    q, k, v, a = (_chunks(t.to(compute), chunk_size) for t in (q, k, v, a))
    seg = _segsum(a)  # [B, n, H, C, C]: log-decay from s to t
    o = (q @ k.transpose(-1, -2) * seg.exp()) @ v  # from the same chunk
    if q.shape[1] > 1:  # from earlier chunks (one chunk, as a short sequence is, has none)
        to_end = seg[..., -1, :, None].exp()  # decay from each position to the chunk's end
        starts = _chunk_starts(a.sum(-1).exp()[..., None, None], (k * to_end).transpose(-1, -2) @ v)
        o = o + (q * a.cumsum(-1)[..., None].exp()) @ starts
    return _unchunk(o, length).to(dtype)


def _chunk_channel_decay(q, k, v, g, chunk_size, exclusive=False):
    """o_t = sum_{s <= t} (q_t * exp(g_{s+1} + ... + g_t)) . k_s v_s, chunk by chunk.

    g [B, L, H, K] is a log-decay per key channel: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,
    o_t = q_t S_t. With exclusive=True the state is read before the token writes to it,
    o_t = q_t S_{t-1} (RWKV): the sum runs over s < t and the decays stop at t - 1.
    """
    dtype, length = v.dtype, v.shape[1]
    compute = torch.promote_types(dtype, torch.float32)
    q, k, v, g = (_chunks(t.to(compute), chunk_size) for t in (q, k, v, g))  # [B, n, H, C, *]
    # Log-decays between positions are differences of cumulative sums taken in float64:
    # exact to float32 rounding however strong the decay (in float32, a sum of -400 per
    # token loses a thousandth), and 1.3-1.7x faster than _segsum's per-segment sums over
    # a [C, C, K] tensor (benchmarks/bench_torch_mixers.py; the cumulative sums are only [C, K]).
    to_t = g.double().cumsum(-2)  # from the chunk's start up to and including t
    read_at = to_t - g.double() if exclusive else to_t  # where o_t reads the state
    size = g.shape[-2]
    kept = torch.ones(size, size, dtype=torch.bool, device=g.device).tril(-1 if exclusive else 0)
    between = (read_at[..., :, None, :] - to_t[..., None, :, :]).to(compute).masked_fill(~kept[:, :, None], -math.inf)
    # the decay differs per channel, so q_t . k_s is summed with it: a [C, C, K] product,
    # which is why these chunks are kept short
    o = (q[..., :, None, :] * k[..., None, :, :] * between.exp()).sum(-1) @ v
    if q.shape[1] > 1:  # from earlier chunks (one chunk has none)
        to_end = (to_t[..., -1:, :] - to_t).to(compute)  # from each position to the chunk's end
        through = to_t[..., -1:, :].to(compute).exp().transpose(-1, -2)  # what survives the whole chunk
        starts = _chunk_starts(through, (k * to_end.exp()).transpose(-1, -2) @ v)
        o = o + (q * read_at.to(compute).exp()) @ starts
    return _unchunk(o, length).to(dtype)


def _chunk_gated_delta_rule(q, k, v, g, beta, chunk_size):
    """The gated delta rule chunk by chunk, in the WY / UT-transform form of Gated DeltaNet.

    S_t = exp(g_t) (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t (K x V), o_t = q_t S_t.
    In a chunk that starts from the state S, with G_t the log-decay from its start to t,
    the values actually written, u_t = beta_t (v_t - k_t exp(g_t) S_{t-1}), solve the unit
    lower-triangular system (I + A) u = beta v - beta exp(G) k S with
    A_ts = beta_t exp(G_t - G_s) k_t . k_s (s < t); then
    S_t = exp(G_t) S + sum_{s <= t} exp(G_t - G_s) k_s^T u_s.
    """
    dtype, length = v.dtype, v.shape[1]
    compute = torch.promote_types(dtype, torch.float32)
    # padded tokens have beta = 0 and g = 0: they leave the state as it is
    q, k, v, g, beta = (_chunks(t.to(compute), chunk_size) for t in (q, k, v, g, beta))
    seg = _segsum(g)  # [B, n, H, C, C]
    decay = seg.exp()
    from_start = g.cumsum(-1)[..., None].exp()  # exp(G_t)
    k_beta = k * beta[..., None]
    system = torch.eye(chunk_size, dtype=compute, device=q.device) + (k_beta @ k.transpose(-1, -2) * decay).tril(-1)
    # u = u_chunk - u_state @ S: the part fixed by the chunk, and the part read from S
    u_chunk = torch.linalg.solve_triangular(system, v * beta[..., None], upper=False)
    u_state = torch.linalg.solve_triangular(system, k_beta * from_start, upper=False)
    scores = q @ k.transpose(-1, -2) * decay
    q_state = q * from_start
    k_end = k * seg[..., -1, :, None].exp()  # decayed to the chunk's end
    survive = g.sum(-1).exp()[..., None, None]
    # the state depends on itself through u, so chunks go one by one
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[-1], v.shape[-1])
    out = []
    for i in range(q.shape[1]):
        u = u_chunk[:, i] - u_state[:, i] @ state
        out.append(q_state[:, i] @ state + scores[:, i] @ u)
        state = survive[:, i] * state + k_end[:, i].transpose(-1, -2) @ u
    return _unchunk(torch.stack(out, 1), length).to(dtype)


# -------------------------------------------------------------------- linear attention


def retention(q, k, v, *, chunk_size=None):
    """RetNet's multi-scale retention (Sun et al. 2023), chunked:
    o_t = sum_{s <= t} gamma_h^(t - s) (q_t . k_s / sqrt(K)) v_s with
    gamma_h = 1 - 2^(-5 - h) for head h, as in the paper, torchscale and
    flash-linear-attention. No normalisation (the caller's)."""
    batch, length, heads, size = q.shape
    h = torch.arange(heads, dtype=torch.promote_types(q.dtype, torch.float32), device=q.device)
    log_gamma = torch.log1p(-torch.exp2(-5 - h))  # in the scan's precision, not bfloat16's
    return _chunk_scalar_decay(q / math.sqrt(size), k, v, log_gamma.expand(batch, length, heads),
                               _chunk_tokens(chunk_size, v))


def retention_reference(q, k, v):
    """retention token by token: S_t = gamma_h S_{t-1} + k_t^T v_t, o_t = q_t S_t / sqrt(K)."""
    batch, length, heads, size = q.shape
    gamma = 1 - 2 ** (-5 - torch.arange(heads, dtype=q.dtype, device=q.device))
    state = q.new_zeros(batch, heads, size, v.shape[-1])
    out = []
    for t in range(length):
        state = gamma[:, None, None] * state + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append((q[:, t, :, None, :] @ state).squeeze(-2) / math.sqrt(size))
    return torch.stack(out, 1)


def gla(q, k, v, g, *, chunk_size=None):
    """Gated linear attention (Yang et al. 2024), chunked: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,
    o_t = q_t S_t / sqrt(K), with g <= 0 a log-decay per key channel."""
    return _chunk_channel_decay(q / math.sqrt(q.shape[-1]), k, v, g, _chunk_tokens(chunk_size, v, per_channel=True))


def gla_reference(q, k, v, g):
    """gla token by token."""
    batch, length, heads, size = q.shape
    state = q.new_zeros(batch, heads, size, v.shape[-1])
    out = []
    for t in range(length):
        state = g[:, t, :, :, None].exp() * state + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append((q[:, t, :, None, :] @ state).squeeze(-2) / math.sqrt(size))
    return torch.stack(out, 1)


def gated_delta_rule(q, k, v, g, beta, *, chunk_size=None):
    """Gated delta rule (Yang, Kautz & Hatamizadeh 2025), chunked:
    S_t = exp(g_t) (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t (K x V, keys to values),
    o_t = q_t S_t / sqrt(K); g <= 0 a log-decay per head, beta in (0, 1)."""
    return _chunk_gated_delta_rule(q / math.sqrt(q.shape[-1]), k, v, g, beta, _chunk_tokens(chunk_size, v))


def gated_delta_rule_reference(q, k, v, g, beta):
    """gated_delta_rule token by token: decay the state, then write beta (v - k S) at k."""
    batch, length, heads, size = q.shape
    state = q.new_zeros(batch, heads, size, v.shape[-1])
    out = []
    for t in range(length):
        state = g[:, t, :, None, None].exp() * state
        error = v[:, t] - (k[:, t, :, None, :] @ state).squeeze(-2)  # what S misses of v at k
        state = state + beta[:, t, :, None, None] * k[:, t, :, :, None] * error[..., None, :]
        out.append((q[:, t, :, None, :] @ state).squeeze(-2) / math.sqrt(size))
    return torch.stack(out, 1)


def delta_rule(q, k, v, beta, *, chunk_size=None):
    """Delta rule (DeltaNet), chunked: the gated delta rule without decay (g = 0)."""
    return _chunk_gated_delta_rule(q / math.sqrt(q.shape[-1]), k, v, torch.zeros_like(beta), beta,
                                   _chunk_tokens(chunk_size, v))


def delta_rule_reference(q, k, v, beta):
    return gated_delta_rule_reference(q, k, v, torch.zeros_like(beta), beta)


# ------------------------------------------------------------------ with parameters


def _ssd_parameters(H):
    """ssd's (A_log, dt_bias, D) for H heads, initialised as Mamba-2 and created in this order, so
    one seed gives the same weights on either backend (the Triton ssd uses this too)."""
    A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
    dt = torch.empty(H).uniform_(math.log(0.001), math.log(0.1)).exp()
    dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
    return A_log, dt_bias, nn.Parameter(torch.ones(H))


class ssd(nn.Module):
    """Mamba-2's SSD scan (Dao & Gu 2024), chunked as in ssd_minimal.

    Head h reads B and C of group h // (H / G). With dt = softplus(dt + dt_bias) and
    A = -exp(A_log), per head: S_t = exp(dt_t A) S_{t-1} + dt_t x_t^T B_t (P x N),
    y_t = S_t C_t + D x_t. Initialised as Mamba-2: A uniform in [1, 16], dt_bias the
    inverse softplus of a dt log-uniform in [0.001, 0.1], D = 1.
    """

    def __init__(self, H: int, P: int, G: int, N: int, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.A_log, self.dt_bias, self.D = _ssd_parameters(H)

    def forward(self, x, dt, B, C):
        dt = F.softplus(dt + self.dt_bias)
        heads_per_group = x.shape[2] // B.shape[2]
        B, C = B.repeat_interleave(heads_per_group, dim=2), C.repeat_interleave(heads_per_group, dim=2)
        # linear attention with queries C, keys B, values dt x and log-decay dt A
        y = _chunk_scalar_decay(C, B, x * dt[..., None], -torch.exp(self.A_log) * dt, _chunk_tokens(self.chunk_size, x))
        return y + self.D[:, None] * x


class ssd_reference(ssd):
    """ssd token by token."""

    def forward(self, x, dt, B, C):
        batch, length, heads, _ = x.shape
        group = torch.arange(heads, device=x.device) // (heads // B.shape[2])
        B, C = B[:, :, group], C[:, :, group]
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        state = x.new_zeros(batch, heads, x.shape[-1], B.shape[-1])
        out = []
        for t in range(length):
            write = (dt[:, t, :, None] * x[:, t])[..., :, None] * B[:, t, :, None, :]
            state = torch.exp(dt[:, t] * A)[..., None, None] * state + write
            out.append((state @ C[:, t, :, :, None]).squeeze(-1) + self.D[:, None] * x[:, t])
        return torch.stack(out, 1)


class wkv6(nn.Module):
    """RWKV-6's WKV (Peng et al. 2024), chunked: a log-decay -exp(w_t) per key channel and a
    bonus u for the current token, o_t = r_t (S_{t-1} + diag(u) k_t^T v_t),
    S_t = diag(exp(-exp(w_t))) S_{t-1} + k_t^T v_t.

    u [H, K] starts as RWKV-6's time_faaaa at mid depth (ratio 0.5): a ramp from 0.5 down
    to 0 over the channels plus a +-0.1 zigzag.
    """

    def __init__(self, H: int, K: int, V: int, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        n = torch.arange(H * K)
        u = 0.5 * (1 - n / max(H * K - 1, 1)) + ((n + 1) % 3 - 1) * 0.1
        self.u = nn.Parameter(u.reshape(H, K))

    def forward(self, r, k, v, w):
        o = _chunk_channel_decay(r, k, v, -torch.exp(w), _chunk_tokens(self.chunk_size, v, per_channel=True),
                                 exclusive=True)
        # the current token comes in through the bonus, not through the state
        return o + (r * self.u * k).sum(-1, keepdim=True) * v


class wkv6_reference(wkv6):
    """wkv6 token by token."""

    def forward(self, r, k, v, w):
        batch, length, heads, size = r.shape
        state = r.new_zeros(batch, heads, size, v.shape[-1])
        out = []
        for t in range(length):
            kv = k[:, t, :, :, None] * v[:, t, :, None, :]
            out.append((r[:, t, :, None, :] @ (state + self.u[..., None] * kv)).squeeze(-2))
            state = torch.exp(-torch.exp(w[:, t]))[..., None] * state + kv
        return torch.stack(out, 1)


def _ttt_norm(z, weight, bias):
    """The TTT inner model's LayerNorm over the last dim (eps 1e-6), per-head gain and bias."""
    mean = z.mean(-1, keepdim=True)
    var = z.var(-1, keepdim=True, unbiased=False)
    return (z - mean) / torch.sqrt(var + 1e-6) * weight + bias


def _ttt_norm_l2_grad(z, target, weight, bias):
    """d/dz of 0.5 ||LN(z) - target||^2: the inner model's backward, written out as
    ttt-lm-pytorch's ln_fused_l2_bwd."""
    size = z.shape[-1]
    std = torch.sqrt(z.var(-1, keepdim=True, unbiased=False) + 1e-6)
    z_hat = (z - z.mean(-1, keepdim=True)) / std
    g = (z_hat * weight + bias - target) * weight  # gradient at z_hat
    return (size * g - g.sum(-1, keepdim=True) - z_hat * (g * z_hat).sum(-1, keepdim=True)) / (size * std)


class ttt_linear(nn.Module):
    """TTT-Linear (Sun et al. 2024) in the dual form of ttt-lm-pytorch's TTTLinear.

    Per head, the inner model f(z) = LN(z W + b) learns online to map k to v - k, by
    gradient steps on 0.5 ||f(k_t) - (v_t - k_t)||^2 at rate eta_t = sigmoid(lr_t) / E.
    Tokens come in mini-batches of `chunk`: all gradients of a mini-batch are taken at the
    weights it starts from, and token t reads the weights W_t, b_t that subtract the steps
    of the mini-batch's tokens up to and including t: o_t = q_t + f_t(q_t). The dual form
    gets a whole mini-batch from matrix products without forming any W_t.
    Initialised as ttt-lm-pytorch: W0 ~ N(0, 0.02), b0 = 0, LN gain 1 and bias 0; unlike it,
    no extra 1 / (position in mini-batch) factor on the learning rate.
    """

    def __init__(self, H: int, E: int, chunk: int = 16):
        super().__init__()
        self.chunk = chunk
        self.W0 = nn.Parameter(torch.randn(H, E, E) * 0.02)
        self.b0 = nn.Parameter(torch.zeros(H, E))
        self.ln_weight = nn.Parameter(torch.ones(H, E))
        self.ln_bias = nn.Parameter(torch.zeros(H, E))

    def forward(self, q, k, v, lr):
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, E]
        eta = torch.sigmoid(lr).transpose(1, 2)[..., None] / q.shape[-1]  # [B, H, L, 1]
        gain, shift = self.ln_weight[:, None], self.ln_bias[:, None]
        W, b = self.W0, self.b0[:, None]  # [H, E, E], [H, 1, E]
        out = []
        for start in range(0, q.shape[2], self.chunk):
            qc, kc, vc, ec = (t[:, :, start:start + self.chunk] for t in (q, k, v, eta))
            grad = _ttt_norm_l2_grad(kc @ W + b, vc - kc, gain, shift)  # d loss_s / dz_s, at W, b
            # q_t W_t + b_t = q_t W + b - sum_{s <= t} eta_s (q_t . k_s + 1) grad_s
            steps = ((qc @ kc.transpose(-1, -2) + 1) * ec.transpose(-1, -2)).tril()
            out.append(qc + _ttt_norm(qc @ W + b - steps @ grad, gain, shift))
            W = W - (kc * ec).transpose(-1, -2) @ grad
            b = b - (ec * grad).sum(-2, keepdim=True)
        return torch.cat(out, 2).transpose(1, 2)


class ttt_linear_reference(ttt_linear):
    """ttt_linear token by token, with explicit weights W_t, b_t."""

    def forward(self, q, k, v, lr):
        batch, length, heads, size = q.shape
        eta = torch.sigmoid(lr) / size
        W, b = self.W0.expand(batch, heads, size, size), self.b0.expand(batch, heads, size)
        out = []
        for t in range(length):
            if t % self.chunk == 0:
                W_start, b_start = W, b  # the mini-batch's gradients are all taken here
            z = (k[:, t, :, None, :] @ W_start).squeeze(-2) + b_start
            grad = _ttt_norm_l2_grad(z, v[:, t] - k[:, t], self.ln_weight, self.ln_bias)
            W = W - eta[:, t, :, None, None] * k[:, t, :, :, None] * grad[..., None, :]  # k^T grad
            b = b - eta[:, t, :, None] * grad
            z = (q[:, t, :, None, :] @ W).squeeze(-2) + b
            out.append(q[:, t] + _ttt_norm(z, self.ln_weight, self.ln_bias))
        return torch.stack(out, 1)


# ------------------------------------------------------------------------------ registry

_HERE = "genesys_primitives.torch_ops.mixers:"
_SCAN = tuple(_HERE + name for name in ("_segsum", "_chunks", "_chunk_tokens", "_unchunk", "_chunk_starts"))
_SCALAR = _SCAN + (_HERE + "_chunk_scalar_decay",)
_CHANNEL = _SCAN + (_HERE + "_chunk_channel_decay",)
_DELTA = tuple(_HERE + name for name in ("_segsum", "_chunks", "_chunk_tokens", "_unchunk", "_chunk_gated_delta_rule"))
_SDPA = (_HERE + "_grouped_sdpa",)
_TTT = (_HERE + "_ttt_norm", _HERE + "_ttt_norm_l2_grad")

IMPLEMENTATIONS: dict[str, TorchImpl] = {
    "causal_attention": TorchImpl(_HERE + "causal_attention", "function", uses=_SDPA),
    "full_attention": TorchImpl(_HERE + "full_attention", "function", uses=_SDPA),
    "retention": TorchImpl(_HERE + "retention", "function", uses=_SCALAR),
    "gla": TorchImpl(_HERE + "gla", "function", uses=_CHANNEL),
    "gated_delta_rule": TorchImpl(_HERE + "gated_delta_rule", "function", uses=_DELTA),
    "delta_rule": TorchImpl(_HERE + "delta_rule", "function", uses=_DELTA),
    "ssd": TorchImpl(_HERE + "ssd", "module", uses=_SCALAR + (_HERE + "_ssd_parameters",)),
    "wkv6": TorchImpl(_HERE + "wkv6", "module", uses=_CHANNEL),
    "ttt_linear": TorchImpl(_HERE + "ttt_linear", "module", uses=_TTT),
}
