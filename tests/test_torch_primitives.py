"""Torch implementations of the projection, pointwise, norm, head and convolution primitives.

Every implementation is checked against its registry entry (shapes, parameter counts,
temporal class), against torch.nn or a written-out formula, and as the standalone
source text the compiler will copy into generated models.
"""

import functools
import importlib
import inspect
import math

import pytest
import torch
import torch.nn as nn

from genesys_dsl import ir
from genesys_dsl.check.analyze import size_of
from genesys_dsl.check.dims import evaluate
from genesys_dsl.ops import registry
from genesys_dsl.ops.registry import probe_bindings
from genesys_primitives import convs, heads, norms, pointwise, projections
from genesys_primitives.torch_ops import PRELUDE, TorchImpl
from genesys_primitives.torch_ops.convs import causal_conv, long_conv, long_conv_reference, token_shift
from genesys_primitives.torch_ops.heads import merge_heads, rotary, split_heads
from genesys_primitives.torch_ops.norms import GroupNorm, HeadRMSNorm, LayerNorm, RMSNorm, l2norm
from genesys_primitives.torch_ops.projections import Bias, Linear, LowRank, Scale

REGISTRY = registry()
NAMES = [p.name for m in (projections, pointwise, norms, heads, convs) for p in m.PRIMITIVES]
IMPLS: dict[str, TorchImpl] = {}
for _module in ("projections", "pointwise", "norms", "heads", "convs"):
    IMPLS.update(importlib.import_module(f"genesys_primitives.torch_ops.{_module}").IMPLEMENTATIONS)

ACTIVATIONS = [p.name for p in pointwise.PRIMITIVES]

# Bindings beyond probe_bindings' all-equal sizes: unequal sizes and non-default scalars.
VARIATIONS = {
    "Linear": [{"I": 5, "out": 3, "bias": True}, {"I": 3, "out": 7, "bias": False}],
    "LowRank": [{"I": 6, "rank": 2, "out": 5}],
    "Scale": [{"S": (3, 4), "init": 0.5}, {"S": (7,), "init": -2.0}],
    "Bias": [{"S": (2, 3), "init": -1.0}],
    "RMSNorm": [{"W": 5, "eps": 1e-5}],
    "LayerNorm": [{"W": 5, "bias": False}, {"W": 3, "eps": 1e-6}],
    "HeadRMSNorm": [{"H": 3, "E": 5}],
    "GroupNorm": [{"H": 3, "E": 5, "eps": 1e-6}],
    "l2norm": [{"H": 3, "E": 5}],
    "split_heads": [{"W": 12, "heads": 3}, {"W": 5, "heads": 1}],
    "merge_heads": [{"H": 3, "E": 5}],
    "rotary": [{"H": 3, "E": 6, "base": 500.0}, {"H": 1, "E": 2}],
    "causal_conv": [{"W": 5, "kernel": 2}, {"W": 3, "kernel": 16}],
    "token_shift": [{"S": (2, 3)}],
    "long_conv": [{"W": 6, "order": 8, "emb": 5}, {"W": 3, "order": 16, "emb": 3}],
    **{name: [{"S": (3, 4)}] for name in ACTIVATIONS},
}


def bindings(name):
    probe = probe_bindings(REGISTRY.get(name))
    return [probe, *({**probe, **v} for v in VARIATIONS.get(name, []))]


CASES = [pytest.param(name, b, id=f"{name}-{i}") for name in NAMES for i, b in enumerate(bindings(name))]
MODULE_CASES = [c for c in CASES if IMPLS[c.values[0]].kind == "module"]


def load(target: str):
    module, qualname = target.split(":")
    return getattr(importlib.import_module(module), qualname)


def build(name, b, obj=None, dtype=torch.float64, seed=0):
    """The primitive as a callable of its tensor input, at bindings `b` (a module is built
    from every signature name, a function gets the scalar parameters as keywords)."""
    impl, prim = IMPLS[name], REGISTRY.get(name)
    obj = load(impl.target) if obj is None else obj
    torch.manual_seed(seed)
    if impl.kind == "module":
        return obj(**{k: v for k, v in b.items() if k != "L"}).to(dtype)
    scalars = {p.name: b[p.name] for p in prim.signature.params if not isinstance(p.type, ir.SeqType)}
    return functools.partial(obj, **scalars)


def feature_dims(dims, b):
    out = []
    for d in dims:
        if isinstance(d, ir.RestDim):
            out += list(b[d.name])
        else:
            out.append(int(evaluate(size_of(d, lambda n, s: n), b)))
    return out


def sample(name, b, L=7, batch=2, dtype=torch.float64, seed=1):
    (x,) = REGISTRY.get(name).tensor_inputs
    return torch.randn(batch, L, *feature_dims(x.type.dims, b), dtype=dtype,
                       generator=torch.Generator().manual_seed(seed))


def assert_close(a, b, tol):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# --------------------------------------------------------------------- the contract


def test_every_primitive_has_an_implementation_named_like_it():
    assert sorted(IMPLS) == sorted(NAMES)
    for name, impl in IMPLS.items():
        prim, obj = REGISTRY.get(name), load(impl.target)
        assert impl.target.startswith("genesys_primitives.torch_ops.") and obj.__name__ == name
        if prim.learns:
            assert impl.kind == "module" and issubclass(obj, nn.Module)
        else:
            assert impl.kind == "function" and inspect.isfunction(obj)


@pytest.mark.parametrize("name, b", CASES)
def test_bindings_satisfy_the_constraints(name, b):
    assert all(c.holds(b) for c in REGISTRY.get(name).constraints)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("L", [1, 7, 100])
@pytest.mark.parametrize("name, b", CASES)
def test_output_shape_and_dtype_follow_the_signature(name, b, L, dtype):
    f = build(name, b, dtype=dtype)
    y = f(sample(name, b, L=L, dtype=dtype))
    out = REGISTRY.get(name).signature.outputs[0].type
    assert y.shape == (2, L, *feature_dims(out.dims, b))
    assert y.dtype == dtype and torch.isfinite(y).all()


@pytest.mark.parametrize("name, b", CASES)
def test_runs_on_the_device_of_its_input(name, b):
    """On the meta device (no GPU needed): any tensor made on a fixed device would clash."""
    f = build(name, b, dtype=torch.float32)
    f = f.to("meta") if isinstance(f, nn.Module) else f
    assert f(sample(name, b, dtype=torch.float32).to("meta")).device.type == "meta"


@pytest.mark.parametrize("name, b", CASES)
def test_parameter_count_equals_the_registry_formula(name, b):
    f = build(name, b)
    count = sum(p.numel() for p in f.parameters()) if isinstance(f, nn.Module) else 0
    assert count == REGISTRY.get(name).params(b)


@pytest.mark.parametrize("name, b", CASES)
def test_temporal_class(name, b):
    """Pointwise: an output depends on its own position only. Causal: never on later
    positions, and (these being mixers) on some earlier one."""
    f, x, t = build(name, b), sample(name, b), 3
    y = f(x)
    later = x.clone()
    later[:, t + 1:] += 1.0
    assert_close(f(later)[:, : t + 1], y[:, : t + 1], 1e-12)
    here = x.clone()
    here[:, t] += 1.0
    moved = (f(here) - y).flatten(2).abs().amax(dim=(0, 2)) > 1e-9  # which positions changed
    if REGISTRY.get(name).temporal == "pointwise":
        assert not moved[:t].any() and not moved[t + 1:].any()
    else:
        assert REGISTRY.get(name).temporal == "causal" and moved[t + 1:].any()


@pytest.mark.parametrize("name, b", MODULE_CASES)
def test_gradients_reach_every_parameter_and_the_input(name, b):
    f = build(name, b)
    x = sample(name, b).requires_grad_()
    y = f(x)
    (y * torch.randn_like(y)).sum().backward()
    for p in [x, *f.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


STANDALONE = [pytest.param(name, impl, id=name) for name, impl in IMPLS.items()] + [
    pytest.param("long_conv", TorchImpl("genesys_primitives.torch_ops.convs:long_conv_reference", "module",
                                        uses=("genesys_primitives.torch_ops.convs:long_conv",)),
                 id="long_conv_reference"),
]


@pytest.mark.parametrize("name, impl", STANDALONE)
def test_source_runs_standalone_on_the_prelude(name, impl):
    """What the compiler will do: copy the source of each helper and the object after the
    prelude, and nothing else. The copy must behave exactly like the imported object."""
    namespace: dict = {}
    exec(PRELUDE, namespace)
    for target in (*impl.uses, impl.target):
        exec(inspect.getsource(load(target)), namespace)
    copy = namespace[impl.target.split(":")[1]]
    for b in bindings(name):
        ours, theirs = build(name, b, obj=load(impl.target)), build(name, b, obj=copy)
        if impl.kind == "module":
            assert ours.state_dict().keys() == theirs.state_dict().keys()
            for key, value in ours.state_dict().items():
                assert torch.equal(value, theirs.state_dict()[key]), key
        x = sample(name, b)
        assert torch.equal(ours(x), theirs(x))


# --------------------------------------------------------------- projections, affine


def test_linear_is_nn_linear():
    for bias in (False, True):
        torch.manual_seed(0)
        ours = Linear(I=5, out=3, bias=bias)
        torch.manual_seed(0)
        ref = nn.Linear(5, 3, bias=bias)
        assert ours.weight.shape == (3, 5)
        ref.load_state_dict(ours.state_dict())  # strict: the same keys and shapes
        for key, value in ref.state_dict().items():  # and the same initialisation
            assert torch.equal(value, ours.state_dict()[key])
        x = torch.randn(2, 7, 5)
        assert torch.equal(ours(x), ref(x))


def test_lowrank_is_two_factors():
    f = LowRank(I=6, rank=2, out=5).double()
    assert f.A.shape == (6, 2) and f.B.shape == (2, 5)
    # initialised like two bias-free nn.Linear layers: uniform in +-1/sqrt(fan_in)
    assert 0 < f.A.abs().max() <= 1 / math.sqrt(6) and 0 < f.B.abs().max() <= 1 / math.sqrt(2)
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    assert_close(f(x), torch.einsum("bli,ir,ro->blo", x, f.A, f.B), 1e-12)


def test_scale_and_bias_start_at_init_per_feature():
    x = torch.randn(2, 7, 3, 4)
    scale, bias = Scale(S=(3, 4), init=0.5), Bias(S=(3, 4), init=-1.0)
    assert scale.weight.shape == bias.bias.shape == (3, 4)
    assert torch.equal(scale(x), x * 0.5) and torch.equal(bias(x), x - 1.0)
    with torch.no_grad():
        scale.weight[1, 2] = 3.0
    assert torch.equal(scale(x)[..., 1, 2], 3.0 * x[..., 1, 2])


# ------------------------------------------------------------------------ pointwise

FORMULAS = {
    "relu": lambda x: torch.where(x > 0, x, 0.0),
    "relu2": lambda x: torch.where(x > 0, x, 0.0) ** 2,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "tanh": lambda x: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
    "softplus": lambda x: torch.log(1 + torch.exp(x)),
    "identity": lambda x: x,
    "exp": lambda x: math.e**x,
    "logsigmoid": lambda x: -torch.log(1 + torch.exp(-x)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_its_formula(name):
    x = 3 * torch.randn(2, 7, 3, 4, dtype=torch.float64)
    assert_close(load(IMPLS[name].target)(x), FORMULAS[name](x), 1e-10)


def test_logsigmoid_is_stable_far_from_zero():
    x = torch.tensor([-200.0, 200.0])
    assert_close(load(IMPLS["logsigmoid"].target)(x), torch.tensor([-200.0, 0.0]), 1e-6)


# ---------------------------------------------------------------------------- norms


def randomise(module):
    """Non-trivial gains and biases, so that comparisons see them."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


def test_rmsnorm_matches_its_formula():
    f = randomise(RMSNorm(W=5, eps=1e-5).double())
    x = torch.randn(2, 7, 5, dtype=torch.float64)
    assert_close(f(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * f.weight, 1e-12)


def test_rmsnorm_normalises_half_precision_in_float32():
    f = randomise(RMSNorm(W=64))
    x = 300 * torch.randn(2, 7, 64)  # squares overflow float16 (max 65504), not float32
    exact = f.double()(x.double())
    low = f.half()(x.half())
    assert low.dtype == torch.float16
    assert_close(low.double(), exact, 1e-2)


def test_layernorm_is_nn_layernorm():
    for bias in (True, False):
        ours = randomise(LayerNorm(W=5, eps=1e-6, bias=bias))
        ref = nn.LayerNorm(5, eps=1e-6, bias=bias)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(2, 7, 5)
        assert torch.equal(ours(x), ref(x))


def test_head_rmsnorm_normalises_each_head():
    f = randomise(HeadRMSNorm(H=3, E=5, eps=1e-6).double())
    x = torch.randn(2, 7, 3, 5, dtype=torch.float64)
    x[:, :, 1] *= 1000  # one loud head does not change the others
    assert f.weight.shape == (3, 5)
    assert_close(f(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * f.weight, 1e-12)


def test_groupnorm_is_nn_groupnorm_on_merged_heads():
    H, E = 3, 5
    ours = randomise(GroupNorm(H=H, E=E, eps=1e-5).double())
    ref = nn.GroupNorm(H, H * E, eps=1e-5).double()
    ref.load_state_dict({k: v.flatten() for k, v in ours.state_dict().items()})
    x = torch.randn(2, 7, H, E, dtype=torch.float64)
    expected = ref(x.reshape(2 * 7, H * E)).reshape(2, 7, H, E)  # as RWKV-6 applies its ln_x
    assert_close(ours(x), expected, 1e-12)


def test_norms_start_as_identity_gains():
    assert torch.equal(RMSNorm(W=4).weight, torch.ones(4))
    assert torch.equal(HeadRMSNorm(H=2, E=3).weight, torch.ones(2, 3))
    g = GroupNorm(H=2, E=3)
    assert torch.equal(g.weight, torch.ones(2, 3)) and torch.equal(g.bias, torch.zeros(2, 3))


def test_l2norm_gives_unit_heads_and_keeps_zero_heads_finite():
    x = torch.randn(2, 7, 3, 5, dtype=torch.float64)
    x[0, 0, 1] = 0.0
    y = l2norm(x)
    assert_close(y, x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6), 1e-12)
    norms_ = y.norm(dim=-1)
    assert norms_[0, 0, 1] == 0 and torch.isfinite(y).all()
    norms_[0, 0, 1] = 1.0
    assert_close(norms_, torch.ones_like(norms_), 1e-5)


# ---------------------------------------------------------------------------- heads


def test_split_heads_holds_contiguous_features_and_merge_undoes_it():
    x = torch.randn(2, 7, 12)
    y = split_heads(x, heads=3)
    assert y.shape == (2, 7, 3, 4) and y.data_ptr() == x.data_ptr()  # a view, no copy
    for h in range(3):
        assert torch.equal(y[:, :, h], x[:, :, 4 * h: 4 * h + 4])  # as HF's view(B, L, H, E)
    assert torch.equal(merge_heads(y), x)


def rotary_complex(x, base):
    """Rotary as complex multiplication: feature i and i + E/2 form one complex number,
    turned by position * base^(-2i/E) (the pairing of HF Llama's rotate_half)."""
    L, E = x.shape[1], x.shape[-1]
    z = torch.complex(x[..., : E // 2], x[..., E // 2:])
    theta = base ** (-2 * torch.arange(E // 2, dtype=torch.float64) / E)
    angle = torch.arange(L, dtype=torch.float64)[:, None] * theta  # [L, E/2]
    z = z * torch.polar(torch.ones_like(angle), angle)[:, None]  # the same turn for every head
    return torch.cat([z.real, z.imag], dim=-1)


@pytest.mark.parametrize("base", [10000.0, 500.0])
def test_rotary_matches_the_complex_formulation(base):
    x = torch.randn(2, 100, 3, 8, dtype=torch.float64)
    assert_close(rotary(x, base=base), rotary_complex(x, base), 1e-10)
    x32 = x.float()
    assert_close(rotary(x32, base=base), rotary_complex(x, base).float(), 1e-4)


def test_rotary_scores_depend_on_relative_position_only():
    q = torch.randn(1, 1, 2, 8, dtype=torch.float64).expand(1, 9, 2, 8)
    k = torch.randn(1, 1, 2, 8, dtype=torch.float64).expand(1, 9, 2, 8)
    scores = torch.einsum("bmhe,bnhe->bhmn", rotary(q), rotary(k))
    assert_close(scores[..., 1:, 1:], scores[..., :-1, :-1], 1e-10)  # Toeplitz in (m, n)
    assert torch.equal(rotary(q)[:, 0], q[:, 0])  # position 0 is not turned


# ---------------------------------------------------------------------- convolutions


@pytest.mark.parametrize("kernel", [2, 4])
def test_causal_conv_is_a_left_padded_depthwise_conv1d(kernel):
    W = 5
    torch.manual_seed(0)
    ours = causal_conv(W=W, kernel=kernel)
    torch.manual_seed(0)
    ref = nn.Conv1d(W, W, kernel, groups=W, padding=kernel - 1)  # Mamba's conv1d
    for key, value in ref.state_dict().items():  # nn.Conv1d's initialisation
        assert_close(value, ours.state_dict()[key], 1e-6)
    ref.load_state_dict(ours.state_dict())
    for L in (1, 7):
        x = torch.randn(2, L, W)
        assert_close(ours(x), ref(x.transpose(1, 2))[..., :L].transpose(1, 2), 1e-6)


def test_token_shift_is_the_previous_token():
    x = torch.randn(2, 7, 3, 4)
    y = token_shift(x)
    assert torch.equal(y[:, 0], torch.zeros(2, 3, 4)) and torch.equal(y[:, 1:], x[:, :-1])


@pytest.mark.parametrize("L", [1, 7, 100])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)], ids=["fp32", "fp64"])
def test_long_conv_fft_matches_the_direct_convolution(L, dtype, tol):
    torch.manual_seed(0)
    fast = long_conv(W=6, order=16, emb=5).to(dtype)
    slow = long_conv_reference(W=6, order=16, emb=5).to(dtype)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, L, 6, dtype=dtype)
    assert_close(fast(x), slow(x), tol)


def test_long_conv_gradients_match_the_direct_convolution():
    torch.manual_seed(0)
    fast = long_conv(W=4, order=8, emb=5).double()
    slow = long_conv_reference(W=4, order=8, emb=5).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 20, 4, dtype=torch.float64)
    g = torch.randn(2, 20, 4, dtype=torch.float64)
    grads = []
    for f in (fast, slow):
        inputs = [x.clone().requires_grad_(), *f.parameters()]
        grads.append(torch.autograd.grad((f(inputs[0]) * g).sum(), inputs))
    for a, b in zip(*grads):
        assert_close(a, b, 1e-10)


def test_long_conv_filter_decays_exponentially():
    """With a constant MLP output the filter is the decay alone, exp(-rate * k / max_len):
    rates evenly spread from falling to 1% in 1.5 max_len to falling to 1% in 0.3 max_len."""
    f = long_conv(W=5, order=8, emb=5, max_len=200).double()
    with torch.no_grad():
        f.fc1.weight.zero_()
        f.fc2.weight.zero_()
    L = 201
    h = f.filter(L)
    assert h.shape == (L, 5)
    rate = torch.linspace(math.log(100) / 1.5, math.log(100) / 0.3, 5, dtype=torch.float64)
    assert_close(h[-1] / h[0], torch.exp(-rate), 1e-10)
    assert_close(h[60, -1] / h[0, -1], torch.tensor(0.01, dtype=torch.float64), 1e-10)  # k = 0.3 max_len


def test_long_conv_output_does_not_depend_on_the_sequence_length():
    """A prefix gives the same outputs as the whole sequence (autoregressive decoding relies on it)."""
    torch.manual_seed(0)
    f = long_conv(W=6, order=8, emb=5, max_len=64).double()
    x = torch.randn(2, 40, 6, dtype=torch.float64)
    assert_close(f(x[:, :17]), f(x)[:, :17], 1e-10)
