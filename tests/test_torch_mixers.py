"""Torch implementations of the sequence mixers (genesys_primitives.torch_ops.mixers).

Each efficient form (SDPA, or a chunked scan) is held to its reference (the masked
softmax, or the recurrence token by token) in the outputs and in the gradients of every
input and parameter, in float32 and float64, at lengths below, at and past the chunk
size. The references are held in turn to the papers' formulas, written out below with
Python loops. Also: causality, parameter counts against the registry, and the sources
running standalone on the prelude, as the compiler will copy them.
"""

import functools
import importlib
import inspect
import math
from typing import Callable, NamedTuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from genesys_dsl import ir
from genesys_dsl.ops import registry
from genesys_dsl.ops.registry import probe_bindings
from genesys_primitives import mixers as mixer_entries
from genesys_primitives.torch_ops import PRELUDE
from genesys_primitives.torch_ops import mixers

REGISTRY = registry()
IMPLS = mixers.IMPLEMENTATIONS
LENGTHS = [1, 7, 64, 100]  # one token; less than a chunk; whole chunks; a partial last chunk
DTYPES = [torch.float32, torch.float64]


def load(target: str):
    module, qualname = target.split(":")
    return getattr(importlib.import_module(module), qualname)


def randn(gen, length, *dims):
    """[2, length, *dims] standard normal, float64 (cast per test, so every dtype sees the same values)."""
    return torch.randn(2, length, *dims, generator=gen, dtype=torch.float64)


class Case(NamedTuple):
    name: str  # the primitive
    id: str
    sizes: dict  # the signature's names (sizes and scalar parameters), as the compiler binds them
    options: dict  # options of the efficient form only (its chunk size)
    inputs: Callable  # (generator, length) -> the tensor inputs, float64


def attention(H, G, K, V):
    return lambda gen, L: [randn(gen, L, H, K), randn(gen, L, G, K), randn(gen, L, G, V)]


def qkv(H, K, V):
    return lambda gen, L: [randn(gen, L, H, K), randn(gen, L, H, K), randn(gen, L, H, V)]


def gla_inputs(H, K, V, strong=False):
    def make(gen, L):
        logit = randn(gen, L, H, K)
        # the seed's gate, logsigmoid / 16; or decays down to about -e^6 per token
        g = -torch.exp(2 * logit) if strong else F.logsigmoid(logit) / 16
        return [*qkv(H, K, V)(gen, L), g]
    return make


def delta_inputs(H, K, V, gated=True):
    """l2-normalised q and k, beta = sigmoid(.), g = -softplus(.): as the Gated DeltaNet seed."""
    def make(gen, L):
        q, k, v = qkv(H, K, V)(gen, L)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = torch.sigmoid(randn(gen, L, H))
        return [q, k, v, -F.softplus(randn(gen, L, H)), beta] if gated else [q, k, v, beta]
    return make


def ssd_inputs(H, P, G, N, dt_shift=0.0):
    def make(gen, L):
        dt = randn(gen, L, H) * (1 + dt_shift) + 2 * dt_shift  # dt_shift > 0: large steps, strong decays
        return [randn(gen, L, H, P), dt, randn(gen, L, G, N), randn(gen, L, G, N)]
    return make


def wkv6_inputs(H, K, V, strong=False):
    def make(gen, L):
        r, k, v = qkv(H, K, V)(gen, L)
        # RWKV-6's initial decays lie in [-6, -1]; strong: w up to about 6, a log-decay of -e^6
        w = 2 * randn(gen, L, H, K) if strong else -6 + 7 * torch.rand(2, L, H, K, generator=gen, dtype=torch.float64)
        return [r, k, v, w]
    return make


def ttt_inputs(H, E):
    return lambda gen, L: [*qkv(H, E, E)(gen, L), randn(gen, L, H)]


CASES = [
    Case("causal_attention", "mha", dict(H=2, G=2, K=8, V=8), {}, attention(2, 2, 8, 8)),
    Case("causal_attention", "gqa", dict(H=4, G=2, K=8, V=4), {}, attention(4, 2, 8, 4)),
    Case("causal_attention", "gqa-window5", dict(H=4, G=2, K=8, V=4, window=5), {}, attention(4, 2, 8, 4)),
    Case("full_attention", "mha", dict(H=2, G=2, K=8, V=8), {}, attention(2, 2, 8, 8)),
    Case("full_attention", "gqa", dict(H=4, G=1, K=4, V=8), {}, attention(4, 1, 4, 8)),
    Case("retention", "h2", dict(H=2, K=8, V=16), {}, qkv(2, 8, 16)),
    Case("retention", "h4-chunk16", dict(H=4, K=8, V=8), dict(chunk_size=16), qkv(4, 8, 8)),
    Case("gla", "h2", dict(H=2, K=8, V=8), {}, gla_inputs(2, 8, 8)),
    Case("gla", "h1-strong-chunk8", dict(H=1, K=16, V=8), dict(chunk_size=8), gla_inputs(1, 16, 8, strong=True)),
    Case("gated_delta_rule", "h2", dict(H=2, K=8, V=8), {}, delta_inputs(2, 8, 8)),
    Case("gated_delta_rule", "h4-chunk16", dict(H=4, K=16, V=4), dict(chunk_size=16), delta_inputs(4, 16, 4)),
    Case("delta_rule", "h2", dict(H=2, K=8, V=8), {}, delta_inputs(2, 8, 8, gated=False)),
    Case("delta_rule", "h4-chunk16", dict(H=4, K=16, V=4), dict(chunk_size=16), delta_inputs(4, 16, 4, gated=False)),
    Case("ssd", "g1", dict(H=2, P=8, G=1, N=8), {}, ssd_inputs(2, 8, 1, 8)),
    Case("ssd", "g2-strong-chunk16", dict(H=4, P=4, G=2, N=16), dict(chunk_size=16), ssd_inputs(4, 4, 2, 16, 1.0)),
    Case("wkv6", "h2", dict(H=2, K=8, V=8), {}, wkv6_inputs(2, 8, 8)),
    Case("wkv6", "h1-strong-chunk32", dict(H=1, K=16, V=8), dict(chunk_size=32), wkv6_inputs(1, 16, 8, strong=True)),
    Case("ttt_linear", "h2", dict(H=2, E=8, chunk=16), {}, ttt_inputs(2, 8)),
    Case("ttt_linear", "h1-chunk5", dict(H=1, E=16, chunk=5), {}, ttt_inputs(1, 16)),
]
CAUSAL = [c for c in CASES if REGISTRY.get(c.name).temporal == "causal"]


def case_id(case):
    return f"{case.name}-{case.id}"


def build(case, dtype, obj=None):
    """(efficient, reference) callables for a case; modules share their parameter values."""
    impl = IMPLS[case.name]
    obj = load(impl.target) if obj is None else obj
    reference = getattr(mixers, case.name + "_reference")
    if impl.kind == "module":
        torch.manual_seed(0)
        fast = obj(**case.sizes, **case.options).to(dtype)
        slow = reference(**case.sizes).to(dtype)
        slow.load_state_dict(fast.state_dict())
        return fast, slow
    signature = REGISTRY.get(case.name).signature
    scalars = {p.name: case.sizes[p.name] for p in signature.params
               if not isinstance(p.type, ir.SeqType) and p.name in case.sizes}
    return functools.partial(obj, **scalars, **case.options), functools.partial(reference, **scalars)


def parameters(f):
    return list(f.parameters()) if isinstance(f, nn.Module) else []


# float64 differs by rounding only; float32 by the different order of sums (chunks vs steps).
# TTT's inner LayerNorm sees pre-activations of small variance (W0 ~ N(0, 0.02)), which
# amplifies float32 rounding in the gradients of q and k about tenfold.
TOL = {torch.float32: 2e-5, torch.float64: 1e-10}
TOL_FLOAT32 = {"ttt_linear": 1e-4}


def tolerance(name, dtype):
    return TOL_FLOAT32.get(name, TOL[dtype]) if dtype == torch.float32 else TOL[dtype]


def assert_close(actual, expected, tol, msg=None):
    """Relative to the expected tensor's largest entry (at least 1)."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=msg)


# -------------------------------------------------------------------------- the contract


def test_every_mixer_has_an_implementation_and_a_reference():
    assert sorted(IMPLS) == sorted(p.name for p in mixer_entries.PRIMITIVES)
    for name, impl in IMPLS.items():
        obj, prim = load(impl.target), REGISTRY.get(name)
        assert obj.__name__ == name and impl.target == f"genesys_primitives.torch_ops.mixers:{name}"
        if prim.learns:
            assert impl.kind == "module" and issubclass(obj, nn.Module)
            assert issubclass(getattr(mixers, name + "_reference"), obj)
        else:
            assert impl.kind == "function" and inspect.isfunction(obj)
            assert inspect.isfunction(getattr(mixers, name + "_reference"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cases_satisfy_the_constraints(case):
    assert all(c.holds(case.sizes) for c in REGISTRY.get(case.name).constraints)


PARAM_CASES = [
    pytest.param(name, {**probe_bindings(REGISTRY.get(name)), **extra}, id=f"{name}-{i}")
    for name, variants in {
        "ssd": [{}, dict(H=6, P=5, G=3, N=7), dict(H=3, P=2, G=1, N=4)],
        "wkv6": [{}, dict(H=3, K=5, V=7), dict(H=1, K=1, V=2)],
        "ttt_linear": [{}, dict(H=3, E=5, chunk=4)],
    }.items()
    for i, extra in enumerate(variants)
]


@pytest.mark.parametrize("name, b", PARAM_CASES)
def test_parameter_count_equals_the_registry_formula(name, b):
    assert IMPLS[name].kind == "module"
    module = load(IMPLS[name].target)(**{k: v for k, v in b.items() if k != "L"})
    assert sum(p.numel() for p in module.parameters()) == REGISTRY.get(name).params(b)


def test_only_the_mixers_with_a_params_formula_are_modules():
    for name, impl in IMPLS.items():
        assert (impl.kind == "module") == (REGISTRY.get(name).params(probe_bindings(REGISTRY.get(name))) > 0)


@pytest.mark.parametrize("name", list(IMPLS))
def test_source_runs_standalone_on_the_prelude(name):
    """What the compiler will do: the prelude, then the source of each helper and of the
    object, and nothing else. The copy must behave exactly like the imported object."""
    impl = IMPLS[name]
    namespace: dict = {}
    exec(PRELUDE, namespace)
    for target in (*impl.uses, impl.target):
        exec(inspect.getsource(load(target)), namespace)
    case = next(c for c in CASES if c.name == name)
    ours, _ = build(case, torch.float64)
    theirs, _ = build(case, torch.float64, obj=namespace[name])
    if impl.kind == "module":
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for key, value in ours.state_dict().items():
            assert torch.equal(value, theirs.state_dict()[key]), key
    xs = case.inputs(torch.Generator().manual_seed(1), 100)
    assert torch.equal(ours(*xs), theirs(*xs))


# ------------------------------------------------------------- efficient form = reference


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_efficient_form_matches_the_reference(case, length, dtype):
    fast, slow = build(case, dtype)
    gen = torch.Generator().manual_seed(length)
    xs = [x.to(dtype).requires_grad_() for x in case.inputs(gen, length)]
    y_fast, y_slow = fast(*xs), slow(*xs)
    assert y_fast.dtype == dtype and torch.isfinite(y_fast).all()
    tol = tolerance(case.name, dtype)
    assert_close(y_fast, y_slow, tol, msg="output")
    out = torch.randn(y_slow.shape, generator=gen, dtype=torch.float64).to(dtype)
    # zeros where an input cannot matter (RWKV's last decay, at length 1)
    grads_fast = torch.autograd.grad((y_fast * out).sum(), xs + parameters(fast), materialize_grads=True)
    grads_slow = torch.autograd.grad((y_slow * out).sum(), xs + parameters(slow), materialize_grads=True)
    names = [f"input {i}" for i in range(len(xs))]
    names += [n for n, _ in slow.named_parameters()] if isinstance(slow, nn.Module) else []
    for name, a, b in zip(names, grads_fast, grads_slow, strict=True):
        assert torch.isfinite(a).all(), name
        assert_close(a, b, tol, msg=f"gradient of {name}")


@pytest.mark.parametrize("case", CAUSAL, ids=case_id)
def test_outputs_never_depend_on_later_tokens(case):
    fast, _ = build(case, torch.float64)
    xs = case.inputs(torch.Generator().manual_seed(1), 100)
    others = case.inputs(torch.Generator().manual_seed(2), 100)
    y = fast(*xs)
    for t in (0, 6, 15, 16, 63, 64, 98):  # within and at the edges of chunks of 8, 16, 32 and 64
        mixed = [torch.cat([x[:, : t + 1], other[:, t + 1:]], dim=1) for x, other in zip(xs, others)]
        y_mixed = fast(*mixed)
        torch.testing.assert_close(y_mixed[:, : t + 1], y[:, : t + 1], rtol=0, atol=1e-12)
        assert not torch.allclose(y_mixed[:, t + 1:], y[:, t + 1:])  # the later tokens did change


def test_scans_choose_their_chunk_by_device_and_never_pad_past_the_sequence():
    """The chunk decides speed only (the outputs above match the references at every length),
    so the default is the device's fastest, and a sequence shorter than it is one chunk; a
    chunk asked for is used as it is."""
    long, short = torch.zeros(2, 100, 3), torch.zeros(2, 20, 3)
    assert mixers._chunk_tokens(None, long) == 32
    assert mixers._chunk_tokens(None, long, per_channel=True) == 8
    assert mixers._chunk_tokens(None, long.to("meta")) == 64
    assert mixers._chunk_tokens(None, long.to("meta"), per_channel=True) == 16
    assert mixers._chunk_tokens(None, short) == 20
    assert mixers._chunk_tokens(None, long[:, :1]) == 1
    assert mixers._chunk_tokens(16, long) == 16  # asked for: kept as it is
    assert mixers._chunk_tokens(64, short) == 64


def test_full_attention_sees_later_tokens():
    q, k, v = attention(2, 2, 4, 4)(torch.Generator().manual_seed(0), 5)
    y = mixers.full_attention(q, k, v)
    v2 = v.clone()
    v2[:, -1] += 1
    assert not torch.allclose(mixers.full_attention(q, k, v2)[:, 0], y[:, 0])


@pytest.mark.parametrize("name", ["retention", "gla", "gated_delta_rule", "delta_rule"])
def test_scans_compute_half_precision_in_float32(name):
    case = next(c for c in CASES if c.name == name)
    fast, _ = build(case, torch.float32)
    xs = case.inputs(torch.Generator().manual_seed(0), 40)
    half = [x.to(torch.bfloat16) for x in xs]
    y = fast(*half)
    assert y.dtype == torch.bfloat16
    assert_close(y.float(), fast(*[x.float() for x in half]), 1e-2)


# ------------------------------------------------------------- the papers' own formulas


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


BATCH, LENGTH, HEADS = 2, 9, 2  # small: the formulas below are loops over every index


def test_causal_attention_is_a_softmax_over_each_querys_window():
    H, G, K = 4, 2, 3
    q, k, v = rand(BATCH, LENGTH, H, K), rand(BATCH, LENGTH, G, K, seed=1), rand(BATCH, LENGTH, G, 2, seed=2)
    for window in (0, 1, 3):
        expected = torch.zeros(BATCH, LENGTH, H, 2, dtype=torch.float64)
        for b in range(BATCH):
            for t in range(LENGTH):
                for h in range(H):
                    g = h // (H // G)  # consecutive query heads share a key/value head
                    seen = [s for s in range(t + 1) if window == 0 or s > t - window]
                    weights = torch.softmax(torch.stack([q[b, t, h] @ k[b, s, g] / math.sqrt(K) for s in seen]), 0)
                    expected[b, t, h] = sum(w * v[b, s, g] for w, s in zip(weights, seen))
        assert_close(mixers.causal_attention(q, k, v, window=window), expected, 1e-12)
        assert_close(mixers.causal_attention_reference(q, k, v, window=window), expected, 1e-12)


def test_retention_is_the_parallel_form_with_gamma_one_minus_two_to_the_minus_five_minus_h():
    K = 3
    q, k = rand(BATCH, LENGTH, HEADS, K), rand(BATCH, LENGTH, HEADS, K, seed=1)
    v = rand(BATCH, LENGTH, HEADS, 2, seed=2)
    expected = torch.zeros(BATCH, LENGTH, HEADS, 2, dtype=torch.float64)
    for b in range(BATCH):
        for t in range(LENGTH):
            for h in range(HEADS):
                gamma = 1 - 2 ** (-5 - h)
                for s in range(t + 1):
                    expected[b, t, h] += gamma ** (t - s) * (q[b, t, h] @ k[b, s, h]) / math.sqrt(K) * v[b, s, h]
    assert_close(mixers.retention(q, k, v, chunk_size=4), expected, 1e-12)
    assert_close(mixers.retention_reference(q, k, v), expected, 1e-12)


def test_gla_is_the_parallel_form_with_per_channel_decays():
    K = 3
    q, k = rand(BATCH, LENGTH, HEADS, K), rand(BATCH, LENGTH, HEADS, K, seed=1)
    v = rand(BATCH, LENGTH, HEADS, 2, seed=2)
    g = F.logsigmoid(rand(BATCH, LENGTH, HEADS, K, seed=3))
    expected = torch.zeros(BATCH, LENGTH, HEADS, 2, dtype=torch.float64)
    for b in range(BATCH):
        for t in range(LENGTH):
            for h in range(HEADS):
                for s in range(t + 1):
                    decay = torch.ones(K, dtype=torch.float64)
                    for r in range(s + 1, t + 1):
                        decay = decay * torch.exp(g[b, r, h])
                    expected[b, t, h] += (q[b, t, h] * decay * k[b, s, h]).sum() / math.sqrt(K) * v[b, s, h]
    assert_close(mixers.gla(q, k, v, g, chunk_size=4), expected, 1e-12)
    assert_close(mixers.gla_reference(q, k, v, g), expected, 1e-12)


@pytest.mark.parametrize("gated", [True, False])
def test_delta_rules_are_the_papers_recurrence(gated):
    """Gated DeltaNet's form, with the state as a V x K matrix M (values from keys):
    M_t = M_{t-1} alpha_t (I - beta_t k_t k_t^T) + beta_t v_t k_t^T, o_t = M_t q_t / sqrt(K)."""
    K, V = 3, 2
    q = F.normalize(rand(BATCH, LENGTH, HEADS, K), dim=-1)
    k = F.normalize(rand(BATCH, LENGTH, HEADS, K, seed=1), dim=-1)
    v = rand(BATCH, LENGTH, HEADS, V, seed=2)
    g, beta = -F.softplus(rand(BATCH, LENGTH, HEADS, seed=3)), torch.sigmoid(rand(BATCH, LENGTH, HEADS, seed=4))
    if not gated:
        g = torch.zeros_like(g)
    expected = torch.zeros(BATCH, LENGTH, HEADS, V, dtype=torch.float64)
    for b in range(BATCH):
        for h in range(HEADS):
            M = torch.zeros(V, K, dtype=torch.float64)
            for t in range(LENGTH):
                kt, bt = k[b, t, h], beta[b, t, h]
                M = M @ (torch.exp(g[b, t, h]) * (torch.eye(K, dtype=torch.float64) - bt * torch.outer(kt, kt)))
                M = M + bt * torch.outer(v[b, t, h], kt)
                expected[b, t, h] = M @ q[b, t, h] / math.sqrt(K)
    if gated:
        outputs = [mixers.gated_delta_rule(q, k, v, g, beta, chunk_size=4),
                   mixers.gated_delta_rule_reference(q, k, v, g, beta)]
    else:
        outputs = [mixers.delta_rule(q, k, v, beta, chunk_size=4), mixers.delta_rule_reference(q, k, v, beta)]
    for y in outputs:
        assert_close(y, expected, 1e-12)


def test_wkv6_is_the_papers_sum():
    """RWKV-6: wkv_t = diag(u) k_t^T v_t + sum_{i < t} diag(prod_{i < j < t} w_j) k_i^T v_i,
    o_t = r_t wkv_t, with w_j = exp(-exp(w))."""
    K, V = 3, 2
    torch.manual_seed(0)
    module = mixers.wkv6(H=HEADS, K=K, V=V, chunk_size=4).double()
    reference = mixers.wkv6_reference(H=HEADS, K=K, V=V).double()
    r, k = rand(BATCH, LENGTH, HEADS, K), rand(BATCH, LENGTH, HEADS, K, seed=1)
    v = rand(BATCH, LENGTH, HEADS, V, seed=2)
    w = rand(BATCH, LENGTH, HEADS, K, seed=3) - 1
    decay = torch.exp(-torch.exp(w))
    u = module.u.detach()
    expected = torch.zeros(BATCH, LENGTH, HEADS, V, dtype=torch.float64)
    for b in range(BATCH):
        for h in range(HEADS):
            for t in range(LENGTH):
                wkv = torch.diag(u[h]) @ torch.outer(k[b, t, h], v[b, t, h])
                for i in range(t):
                    between = torch.ones(K, dtype=torch.float64)
                    for j in range(i + 1, t):
                        between = between * decay[b, j, h]
                    wkv = wkv + torch.diag(between) @ torch.outer(k[b, i, h], v[b, i, h])
                expected[b, t, h] = r[b, t, h] @ wkv
    assert_close(module(r, k, v, w), expected, 1e-12)
    assert_close(reference(r, k, v, w), expected, 1e-12)


@pytest.mark.parametrize("G", [1, 2])
def test_ssd_is_the_quadratic_form(G):
    """Mamba-2's SSD as a matrix: y_t = sum_{s <= t} (C_t . B_s) exp(A (dt_{s+1} + ... + dt_t)) dt_s x_s + D x_t,
    with dt after softplus(dt + dt_bias) and A = -exp(A_log); head h reads group h // (H / G)."""
    H, P, N = 4, 2, 3
    torch.manual_seed(0)
    module = mixers.ssd(H=H, P=P, G=G, N=N, chunk_size=4).double()
    reference = mixers.ssd_reference(H=H, P=P, G=G, N=N).double()
    reference.load_state_dict(module.state_dict())
    x, dt = rand(BATCH, LENGTH, H, P), rand(BATCH, LENGTH, H, seed=1)
    B, C = rand(BATCH, LENGTH, G, N, seed=2), rand(BATCH, LENGTH, G, N, seed=3)
    step = F.softplus(dt + module.dt_bias.detach())
    A, D = -torch.exp(module.A_log.detach()), module.D.detach()
    expected = torch.zeros(BATCH, LENGTH, H, P, dtype=torch.float64)
    for b in range(BATCH):
        for h in range(H):
            g = h // (H // G)
            for t in range(LENGTH):
                expected[b, t, h] = D[h] * x[b, t, h]
                for s in range(t + 1):
                    decay = torch.exp(A[h] * step[b, s + 1: t + 1, h].sum())
                    expected[b, t, h] += (C[b, t, g] @ B[b, s, g]) * decay * step[b, s, h] * x[b, s, h]
    assert_close(module(x, dt, B, C), expected, 1e-12)
    assert_close(reference(x, dt, B, C), expected, 1e-12)


def test_ssd_initialisation_follows_mamba2():
    torch.manual_seed(0)
    module = mixers.ssd(H=256, P=4, G=1, N=4)
    A = torch.exp(module.A_log.detach())
    dt = F.softplus(module.dt_bias.detach())
    assert A.min() >= 1 and A.max() <= 16
    assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert (module.D == 1).all()


# ------------------------------------------------------------------------------------ TTT


def test_ttt_norm_l2_grad_is_the_gradient_of_the_inner_loss():
    z, target = rand(3, 5, 6).requires_grad_(), rand(3, 5, 6, seed=1)
    weight, bias = 1 + 0.3 * rand(6, seed=2), 0.3 * rand(6, seed=3)
    loss = 0.5 * ((F.layer_norm(z, (6,), weight, bias, eps=1e-6) - target) ** 2).sum()
    (expected,) = torch.autograd.grad(loss, z)
    assert_close(mixers._ttt_norm_l2_grad(z.detach(), target, weight, bias), expected, 1e-12)


def perturbed_ttt(H, E, chunk):
    """A ttt_linear whose b0 and LN gain and bias are away from their (symmetric) initial values."""
    torch.manual_seed(0)
    module = mixers.ttt_linear(H=H, E=E, chunk=chunk).double()
    with torch.no_grad():
        module.W0.mul_(10)
        module.b0.normal_(0, 0.3)
        module.ln_weight.add_(0.3 * torch.randn(H, E, dtype=torch.float64))
        module.ln_bias.normal_(0, 0.3)
    return module


def test_ttt_linear_with_chunk_1_is_online_gradient_descent():
    """One token per mini-batch: a plain gradient step per token (gradient by autograd),
    and each token read after its own step."""
    E = 4
    module = perturbed_ttt(HEADS, E, chunk=1)
    q, k = rand(BATCH, LENGTH, HEADS, E), rand(BATCH, LENGTH, HEADS, E, seed=1)
    v = rand(BATCH, LENGTH, HEADS, E, seed=2)
    lr = rand(BATCH, LENGTH, HEADS, seed=3)
    W0, b0, gain, shift = (p.detach() for p in module.parameters())

    def f(x, W, bias, h):
        return F.layer_norm(x @ W + bias, (E,), gain[h], shift[h], eps=1e-6)

    expected = torch.zeros(BATCH, LENGTH, HEADS, E, dtype=torch.float64)
    for b in range(BATCH):
        for h in range(HEADS):
            W, bias = W0[h].clone(), b0[h].clone()
            for t in range(LENGTH):
                W, bias = W.requires_grad_(), bias.requires_grad_()
                loss = 0.5 * ((f(k[b, t, h], W, bias, h) - (v[b, t, h] - k[b, t, h])) ** 2).sum()
                grad_W, grad_b = torch.autograd.grad(loss, (W, bias))
                eta = torch.sigmoid(lr[b, t, h]) / E
                W, bias = (W - eta * grad_W).detach(), (bias - eta * grad_b).detach()
                expected[b, t, h] = q[b, t, h] + f(q[b, t, h], W, bias, h)
    assert_close(module(q, k, v, lr), expected, 1e-12)


def test_ttt_linear_takes_a_mini_batchs_gradients_at_its_starting_weights():
    """With one mini-batch over the whole sequence, the last token's output uses
    W0 - sum_s eta_s k_s^T grad_s(W0) (all gradients at W0), not a sequence of steps."""
    E, L = 4, 6
    module = perturbed_ttt(1, E, chunk=L)
    q, k, v = rand(1, L, 1, E), rand(1, L, 1, E, seed=1), rand(1, L, 1, E, seed=2)
    lr = rand(1, L, 1, seed=3)
    W0, b0, gain, shift = (p.detach()[0] for p in module.parameters())
    W, bias = W0.clone(), b0.clone()
    for s in range(L):
        z = k[0, s, 0] @ W0 + b0  # at W0, every time
        grad = mixers._ttt_norm_l2_grad(z, v[0, s, 0] - k[0, s, 0], gain, shift)
        eta = torch.sigmoid(lr[0, s, 0]) / E
        W, bias = W - eta * torch.outer(k[0, s, 0], grad), bias - eta * grad
    expected = q[0, -1, 0] + F.layer_norm(q[0, -1, 0] @ W + bias, (E,), gain, shift, eps=1e-6)
    assert_close(module(q, k, v, lr)[0, -1, 0], expected, 1e-12)
    # and the two mini-batch sizes do differ
    assert not torch.allclose(perturbed_ttt(1, E, chunk=1)(q, k, v, lr)[0, -1, 0], expected)
