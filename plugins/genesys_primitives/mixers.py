"""Sequence mixers over heads: queries, keys and values in, one value per query out.

Quadratic mixers cost O(L) per token; recurrent (linear) mixers cost O(K * V) per
head and token, the size of their state update and read-out.
"""

from genesys_dsl.ops import Constraint, primitive

_GROUPS = Constraint(
    lambda b: b["H"] % b["G"] == 0,
    "{H} query heads are not a multiple of {G} key/value heads",
    "make the number of key/value heads divide the number of query heads",
)


def _attention_flops(b, window_key: str | None = "window") -> float:
    length = b["L"]
    attended = (length + 1) / 2
    if window_key and b.get(window_key):
        attended = min(b[window_key], attended)
    return 2 * b["H"] * attended * (b["K"] + b["V"])


def _state_flops(extra: float = 0.0):
    """A linear-recurrent mixer: write k v^T into a K x V state, read it with q."""
    return lambda b: 4 * b["H"] * b["K"] * b["V"] + extra * b["H"] * b["K"] * b["V"]


PRIMITIVES = [
    primitive(
        "causal_attention(q: seq[H, K], k: seq[G, K], v: seq[G, V], window: int = 0 in 0..1048576) -> seq[H, V]",
        family="qkv_mixer",
        temporal="causal",
        summary="softmax attention over past and present tokens, scaled by 1/sqrt(K); G key/value heads "
        "shared by H / G query heads each (grouped-query); window > 0 limits it to the last `window` tokens",
        flops=_attention_flops,
        constraints=[_GROUPS],
        reference="Vaswani et al. 2017; Ainslie et al. 2023 (GQA)",
    ),
    primitive(
        "full_attention(q: seq[H, K], k: seq[G, K], v: seq[G, V]) -> seq[H, V]",
        family="qkv_mixer",
        temporal="acausal",
        summary="softmax attention over all tokens, future included: for encoders; never allowed in a block",
        flops=lambda b: 2 * b["H"] * b["L"] * (b["K"] + b["V"]),
        constraints=[_GROUPS],
    ),
    primitive(
        "retention(q: seq[H, K], k: seq[H, K], v: seq[H, V]) -> seq[H, V]",
        family="qkv_mixer",
        temporal="causal",
        summary="multi-scale retention (Sun et al. 2023): linear attention with a fixed decay per head, "
        "gamma_h = 1 - 2^(-5 - h) for head h, queries scaled by 1/sqrt(K)",
        flops=_state_flops(),
        reference="RetNet, Sun et al. 2023",
    ),
    primitive(
        "gla(q: seq[H, K], k: seq[H, K], v: seq[H, V], g: seq[H, K]) -> seq[H, V]",
        family="gated_qkv_mixer",
        temporal="causal",
        summary="gated linear attention (Yang et al. 2024): state S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, "
        "o_t = q_t S_t / sqrt(K); g is a log-space decay (<= 0, e.g. logsigmoid(...) / 16)",
        flops=_state_flops(1),
        reference="GLA, Yang et al. 2024",
    ),
    primitive(
        "gated_delta_rule(q: seq[H, K], k: seq[H, K], v: seq[H, V], g: seq[H], beta: seq[H]) -> seq[H, V]",
        family="delta_mixer",
        temporal="causal",
        summary="gated delta rule (Yang et al. 2025): with S a K x V state, S_t = exp(g_t) (I - beta_t k_t k_t^T) "
        "S_{t-1} + beta_t k_t v_t^T, o_t = q_t S_t / sqrt(K); g log-space decay per head, beta in (0, 1); "
        "use l2-normalised q and k",
        flops=_state_flops(2),
        reference="Gated DeltaNet, Yang, Kautz & Hatamizadeh 2025",
    ),
    primitive(
        "delta_rule(q: seq[H, K], k: seq[H, K], v: seq[H, V], beta: seq[H]) -> seq[H, V]",
        family="delta_mixer_ungated",
        temporal="causal",
        summary="delta rule (DeltaNet, Schlag et al. 2021; Yang et al. 2024): with S a K x V state, "
        "S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = q_t S_t / sqrt(K)",
        flops=_state_flops(2),
        reference="DeltaNet, Yang et al. 2024",
    ),
    primitive(
        "ssd(x: seq[H, P], dt: seq[H], B: seq[G, N], C: seq[G, N]) -> seq[H, P]",
        family="ssm",
        temporal="causal",
        summary="Mamba-2 state-space duality scan (Dao & Gu 2024): per head a scalar decay "
        "exp(-exp(A_log) * softplus(dt + dt_bias)), state update with B, read-out with C, plus D * x; "
        "learns A_log, dt_bias and D (one each per head); G groups of B/C shared by H / G heads",
        params=lambda b: 3 * b["H"],
        flops=lambda b: 6 * b["H"] * b["P"] * b["N"] + 2 * b["H"] * b["P"],
        constraints=[Constraint(lambda b: b["H"] % b["G"] == 0,
                                "{H} heads are not a multiple of {G} B/C groups",
                                "make the number of groups divide the number of heads")],
        reference="Mamba-2, Dao & Gu 2024",
    ),
    primitive(
        "wkv6(r: seq[H, K], k: seq[H, K], v: seq[H, V], w: seq[H, K]) -> seq[H, V]",
        family="gated_qkv_mixer",
        temporal="causal",
        summary="RWKV-6 WKV (Peng et al. 2024): S_t = diag(exp(-exp(w_t))) S_{t-1} + k_t v_t^T, "
        "o_t = r_t (S_{t-1} + diag(u) k_t v_t^T); data-dependent decay w, learned bonus u (H x K)",
        params=lambda b: b["H"] * b["K"],
        flops=_state_flops(2),
        reference="RWKV-6 (Eagle/Finch), Peng et al. 2024",
    ),
    primitive(
        "ttt_linear(q: seq[H, E], k: seq[H, E], v: seq[H, E], lr: seq[H], chunk: int = 16 in 1..512) -> seq[H, E]",
        family="ttt",
        temporal="causal",
        summary="TTT-Linear (Sun et al. 2024): per head a linear model W (E x E, b) trained online by one "
        "gradient step per mini-batch of `chunk` tokens on ||LN(k W + b) - (v - k)||^2 with learning rate "
        "sigmoid(lr) / E, all gradients taken at the mini-batch's starting weights, token t reading them "
        "minus the steps of tokens <= t; output LN(q W + b) + q; learns W0, b0 and the LN gain and bias",
        params=lambda b: b["H"] * b["E"] * (b["E"] + 3),
        flops=lambda b: 8 * b["H"] * b["E"] * b["E"],
        reference="TTT, Sun et al. 2024",
    ),
]
