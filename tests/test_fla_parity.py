"""Parity of our linear-attention mixers with flash-linear-attention's plain torch references.

genesys_primitives.torch_ops.mixers follows flash-linear-attention (fla) in its chunked
scans; here retention, gla, delta_rule, gated_delta_rule and wkv6 (efficient and
`*_reference` forms) are held to fla's own naive functions on random inputs, batch 2,
float32 and float64, at lengths that are not multiples of any chunk size involved.

Optional: runs only where flash-linear-attention is installed, else the module is skipped.

    pip install -c constraints.txt -e '.[test,fla]'     # or: pip install -c constraints.txt flash-linear-attention

(flash-linear-attention 0.6.0 = fla-core + einops, about 18 MB, a few seconds; it also
requires transformers>=5.6.2,<6. It needs neither triton nor a GPU for what is used here.)

How fla's references are loaded. `fla.ops/__init__` imports every Triton kernel, so without
triton `import fla.ops.gla.naive` fails with "ModuleNotFoundError: No module named
'triton'" (fla-core's base install does not require triton; its [cpu] extra adds a 286 MB
wheel, about 1 GB unpacked, after which fla.ops imports on the CPU with a warning "Triton
is not supported on current platform, roll back to CPU"). The naive files themselves import
only torch and einops, so we load them straight from the installed package by file path,
under private module names: the same code with or without triton, and fast (no
`import fla`, which pulls in transformers).

Conventions (fla 0.6.0), converted explicitly in the adapters below:
- layout: ours is [B, T, H, D] everywhere. naive_retention, delta_rule_recurrence,
  delta_rule_chunkwise, naive_recurrent_rwkv6 and naive_chunk_rwkv6 take [B, H, T, D]
  ("head first"); naive_recurrent_gla, naive_recurrent_gated_delta_rule and
  naive_chunk_gated_delta_rule take [B, T, H, D] like ours.
- scale: fla's retention, GLA and delta rules multiply q by K^-0.5, as we do.
  naive_recurrent_rwkv6 does too *by default* (scale=None -> K^-0.5), but RWKV-6 has no
  scale and ours has none (fla's RWKV6 layer passes scale=1.0; naive_chunk_rwkv6 has no
  scale at all), so we pass scale=1.0.
- retention's decay: both use gamma_h = 1 - 2^(-5 - h) and no normalisation; nothing to convert.
- decays: GLA's gk and the gated delta rule's g are log-decays in both (S_t = exp(g_t) S_{t-1} + ...).
  RWKV-6: ours takes w with decay exp(-exp(w)); fla's w is the log-decay itself
  (h = h * exp(w) + k^T v), so fla's w = -exp(ours).
- bonus: RWKV-6's u [H, K] enters both as o_t = r_t (S_{t-1} + diag(u) k_t^T v_t).
- argument order: naive_recurrent_gated_delta_rule takes (q, k, v, beta, g) but
  naive_chunk_gated_delta_rule and ours take (q, k, v, g, beta).
- precision: every fla reference used here casts its inputs to float32 (and the output back),
  except delta_rule_chunkwise, which keeps float64. So float64 inputs are held to float32
  accuracy, except against delta_rule_chunkwise, held to float64 accuracy.
- length: delta_rule_chunkwise and naive_chunk_rwkv6 assert T % chunk_size == 0; we zero-pad
  the end (causal, so the real tokens' outputs do not change) and cut the outputs back.
"""

import importlib.metadata
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genesys_primitives.torch_ops import mixers

_fla = importlib.util.find_spec("fla")
if _fla is None or not _fla.submodule_search_locations:
    pytest.skip("flash-linear-attention is not installed (optional extra: "
                "pip install -c constraints.txt -e '.[test,fla]')", allow_module_level=True)


def _installed_version():
    # fla.ops ships in fla-core; flash-linear-attention 0.6 itself holds only fla.layers and fla.models
    for dist in ("fla-core", "flash-linear-attention"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None  # a source checkout on sys.path: take it as it is


_version = _installed_version()
if _version and tuple(int(p) for p in _version.split(".")[:2] if p.isdigit()) < (0, 6):
    # the layouts above are 0.6's: older naive_recurrent_gla, for one, took [B, H, T, K]
    pytest.skip(f"fla {_version} is older than 0.6, whose conventions this module encodes", allow_module_level=True)


def _load_naive(relative, *names):
    """Functions `names` of fla/ops/<relative>, loaded from the file without importing fla.ops."""
    for root in _fla.submodule_search_locations:
        path = Path(root, "ops", relative)
        if path.is_file():
            break
    else:
        pytest.skip(f"fla's ops/{relative} not found (flash-linear-attention {_version} without fla-core?)",
                    allow_module_level=True)
    spec = importlib.util.spec_from_file_location("_fla_naive_" + relative[:-3].replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. einops missing from a broken install
        pytest.skip(f"cannot load fla's ops/{relative}: {exc!r}", allow_module_level=True)
    return [getattr(module, name) for name in names]


(naive_retention,) = _load_naive("retention/naive.py", "naive_retention")
(naive_recurrent_gla,) = _load_naive("gla/naive.py", "naive_recurrent_gla")
delta_rule_recurrence, delta_rule_chunkwise = _load_naive(
    "delta_rule/naive.py", "delta_rule_recurrence", "delta_rule_chunkwise")
naive_recurrent_gated_delta_rule, naive_chunk_gated_delta_rule = _load_naive(
    "gated_delta_rule/naive.py", "naive_recurrent_gated_delta_rule", "naive_chunk_gated_delta_rule")
(naive_recurrent_rwkv6,) = _load_naive("rwkv6/recurrent_naive.py", "naive_recurrent_rwkv6")
(naive_chunk_rwkv6,) = _load_naive("rwkv6/chunk_naive.py", "naive_chunk_rwkv6")


# ---------------------------------------------------------------- fla, in our conventions
# Each adapter takes our inputs ([B, T, H, D], our parameterisation) and returns [B, T, H, V].


def head_first(*xs):
    """[B, T, H, ...] -> [B, H, T, ...] (fla's head-first layout); its own inverse."""
    return [x.transpose(1, 2) for x in xs]


def pad_time(length, multiple, *xs):
    """Zero-pad dim 1 (time, our layout) up to a multiple of `multiple`."""
    extra = -length % multiple
    return [F.pad(x, (0, 0) * (x.dim() - 2) + (0, extra)) for x in xs]


def fla_retention(q, k, v):
    # same gamma_h = 1 - 2^(-5 - h), same q * K^-0.5; only the layout differs
    (o,) = head_first(naive_retention(*head_first(q, k, v)))
    return o


def fla_gla(q, k, v, g):
    # [B, T, H, K] like ours, gk a log-decay per key channel like ours, q * K^-0.5 like ours
    return naive_recurrent_gla(q, k, v, g)[0]


def fla_delta_rule(q, k, v, beta):
    # head first, beta [B, H, T]; q * K^-0.5 like ours
    o, _ = delta_rule_recurrence(*head_first(q, k, v, beta))
    (o,) = head_first(o)
    return o


def fla_delta_rule_chunkwise(q, k, v, beta, chunk_size=32):
    # head first, and T % chunk_size == 0 asserted: pad, then cut back
    length = q.shape[1]
    o, _ = delta_rule_chunkwise(*head_first(*pad_time(length, chunk_size, q, k, v, beta)), chunk_size=chunk_size)
    (o,) = head_first(o)
    return o[:, :length]


def fla_gated_delta_rule(q, k, v, g, beta):
    # [B, T, H, K] like ours; NB the argument order (beta before g); default scale K^-0.5 like ours
    return naive_recurrent_gated_delta_rule(q, k, v, beta, g)[0]


def fla_gated_delta_rule_chunked(q, k, v, g, beta, chunk_size=16):
    # (g, beta) in our order here; pads the last chunk itself
    return naive_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk_size)[0]


def fla_wkv6(r, k, v, w, u):
    # ours: decay exp(-exp(w)); fla's w is the log-decay: w_fla = -exp(w).
    # RWKV-6 has no 1/sqrt(K), fla's default scale is K^-0.5: pass scale=1.
    o, _ = naive_recurrent_rwkv6(*head_first(r, k, v, -torch.exp(w)), u, scale=1.0)
    (o,) = head_first(o)
    return o


def fla_wkv6_chunked(r, k, v, w, u, chunk_size=16):
    # no scale at all here; T % chunk_size == 0 asserted: pad (w_fla = 0 there), then cut back
    length = r.shape[1]
    o = naive_chunk_rwkv6(*head_first(*pad_time(length, chunk_size, r, k, v, -torch.exp(w))), u, chunk_size=chunk_size)
    (o,) = head_first(o)
    return o[:, :length]


# --------------------------------------------------------------------------------- inputs

BATCH = 2
LENGTHS = [1, 37, 100]  # one token; 37 and 100: no multiple of 16, 32 or 64, so every scan ends in a partial chunk
DTYPES = [torch.float32, torch.float64]
# fla's naive references compute in float32 whatever the input dtype (see the docstring)
TOL = 2e-5
TOL_FLOAT64 = 1e-10  # against delta_rule_chunkwise, which keeps float64


def randn(gen, length, *dims):
    return torch.randn(BATCH, length, *dims, generator=gen, dtype=torch.float64)


def assert_close(actual, expected, tol, msg=None):
    """Relative to the expected tensor's largest entry (at least 1), as in test_torch_mixers."""
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=tol, atol=tol * scale, msg=msg)


def make_inputs(name, gen, length, H=4, K=8, V=16, strong=False):
    """float64 inputs for mixer `name`, in our conventions, drawn as test_torch_mixers does."""
    q, k, v = randn(gen, length, H, K), randn(gen, length, H, K), randn(gen, length, H, V)
    if name == "retention":
        return [q, k, v]
    if name == "gla":
        logit = randn(gen, length, H, K)
        return [q, k, v, -torch.exp(2 * logit) if strong else F.logsigmoid(logit) / 16]
    if name in ("delta_rule", "gated_delta_rule"):
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # as DeltaNet / Gated DeltaNet
        beta = torch.sigmoid(randn(gen, length, H))
        return [q, k, v, beta] if name == "delta_rule" else [q, k, v, -F.softplus(randn(gen, length, H)), beta]
    if name == "wkv6":
        # RWKV-6's initial decays (w in [-6, 1]); strong: log-decays down to about -e^6
        w = 2 * randn(gen, length, H, K) if strong else -6 + 7 * torch.rand(BATCH, length, H, K, generator=gen,
                                                                               dtype=torch.float64)
        u = torch.randn(H, K, generator=gen, dtype=torch.float64)
        return [q, k, v, w, u]
    raise ValueError(name)


def ours(name, dtype, chunk_size):
    """(efficient form at `chunk_size`, reference form), both taking make_inputs' tensors."""
    if name != "wkv6":
        fast, slow = getattr(mixers, name), getattr(mixers, name + "_reference")
        return (lambda *xs: fast(*xs, chunk_size=chunk_size)), slow

    def module(cls, **options):
        m = cls(H=4, K=8, V=16, **options).to(dtype)

        def run(r, k, v, w, u):
            with torch.no_grad():
                m.u.copy_(u)  # the same random bonus as fla's
            return m(r, k, v, w)
        return run
    return module(mixers.wkv6, chunk_size=chunk_size), module(mixers.wkv6_reference)


# (mixer, our chunk size, fla reference, tolerance in float64, strong decays)
CASES = [
    ("retention", 16, fla_retention, TOL, False),
    ("retention", 64, fla_retention, TOL, False),
    ("gla", 16, fla_gla, TOL, False),
    ("gla", 8, fla_gla, TOL, True),
    ("delta_rule", 64, fla_delta_rule, TOL, False),
    ("delta_rule", 16, fla_delta_rule_chunkwise, TOL_FLOAT64, False),
    ("gated_delta_rule", 64, fla_gated_delta_rule, TOL, False),
    ("gated_delta_rule", 16, fla_gated_delta_rule_chunked, TOL, False),
    ("wkv6", 16, fla_wkv6, TOL, False),
    ("wkv6", 32, fla_wkv6, TOL, True),
    ("wkv6", 16, fla_wkv6_chunked, TOL, False),
]


def case_id(case):
    name, chunk_size, reference, _, strong = case
    return f"{name}-chunk{chunk_size}-vs-{reference.__name__}" + ("-strong" * strong)


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_outputs_match_fla(case, length, dtype):
    name, chunk_size, reference, tol64, strong = case
    gen = torch.Generator().manual_seed(1000 + length)
    xs = [x.to(dtype) for x in make_inputs(name, gen, length, strong=strong)]
    expected = reference(*xs)
    assert expected.shape == xs[2].shape  # (the gated delta rule's references return float32 always)
    tol = tol64 if dtype == torch.float64 else TOL
    fast, slow = ours(name, dtype, chunk_size)
    y_fast, y_slow = fast(*xs), slow(*xs)
    assert torch.isfinite(y_fast).all()
    assert_close(y_fast, expected, tol, msg=f"{name} (chunk {chunk_size}) vs {reference.__name__}")
    assert_close(y_slow, expected, tol, msg=f"{name}_reference vs {reference.__name__}")


# fla's naive references are plain autograd code: the gradients of every input agree too
GRADIENT_CASES = [
    ("retention", fla_retention),
    ("gla", fla_gla),
    ("delta_rule", fla_delta_rule),
    ("gated_delta_rule", fla_gated_delta_rule),
    ("wkv6", fla_wkv6),
]


@pytest.mark.parametrize("name, reference", GRADIENT_CASES, ids=[n for n, _ in GRADIENT_CASES])
def test_gradients_match_fla(name, reference):
    length, dtype = 37, torch.float64  # fla still computes in float32: float32 tolerances
    gen = torch.Generator().manual_seed(7)
    xs = [x.requires_grad_() for x in make_inputs(name, gen, length)]
    fast, _ = ours(name, dtype, chunk_size=16)
    y_fla, y_ours = reference(*xs), fast(*xs)
    out = torch.randn(y_fla.shape, generator=gen, dtype=dtype)
    # wkv6's u is a module parameter on our side; here both see it as an input tensor (xs[-1]),
    # copied into the module without grad, so its gradient is compared only on fla's side below
    inputs = xs[:-1] if name == "wkv6" else xs
    grads_fla = torch.autograd.grad((y_fla * out).sum(), inputs)
    grads_ours = torch.autograd.grad((y_ours * out).sum(), inputs)
    for i, (a, b) in enumerate(zip(grads_ours, grads_fla, strict=True)):
        assert_close(a, b, 1e-4, msg=f"gradient of input {i}")


def test_wkv6_bonus_gradient_matches_fla():
    """RWKV-6's u, a parameter of our module, gets fla's gradient."""
    gen = torch.Generator().manual_seed(8)
    r, k, v, w, u = make_inputs("wkv6", gen, 37)
    u = u.requires_grad_()
    module = mixers.wkv6(H=4, K=8, V=16, chunk_size=16).double()
    with torch.no_grad():
        module.u.copy_(u)
    y_ours, y_fla = module(r, k, v, w), fla_wkv6(r, k, v, w, u)
    out = torch.randn(y_fla.shape, generator=gen, dtype=torch.float64)
    (grad_ours,) = torch.autograd.grad((y_ours * out).sum(), [module.u])
    (grad_fla,) = torch.autograd.grad((y_fla * out).sum(), [u])
    assert_close(grad_ours, grad_fla, 1e-4)


# ------------------------------------------------------------- the conventions, pinned down


def test_fla_default_rwkv6_scale_is_not_rwkv6s():
    """fla's naive_recurrent_rwkv6 scales r by K^-0.5 unless told scale=1; ours, as RWKV-6, never does."""
    gen = torch.Generator().manual_seed(9)
    r, k, v, w, u = make_inputs("wkv6", gen, 37)
    default, _ = naive_recurrent_rwkv6(*head_first(r, k, v, -torch.exp(w)), u)
    (default,) = head_first(default)
    ours_scaled, _ = ours("wkv6", torch.float64, 16)
    assert_close(default, ours_scaled(r / math.sqrt(r.shape[-1]), k, v, w, u), TOL)
    assert not torch.allclose(default, fla_wkv6(r, k, v, w, u), rtol=1e-2, atol=1e-2)


def test_retention_decays_head_h_by_one_minus_two_to_the_minus_five_minus_h_in_both():
    """One head per gamma: each head h of fla's retention decays by 1 - 2^(-5 - h), as ours."""
    H, length = 6, 40
    q = torch.zeros(1, length, H, 1, dtype=torch.float64)
    q[:, -1] = 1.0  # read out the last step only
    k = torch.zeros_like(q)
    k[:, 0] = 1.0  # write at the first step only
    v = torch.ones(1, length, H, 1, dtype=torch.float64)
    gamma = 1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float64))
    expected = gamma ** (length - 1)  # K = 1, so no 1/sqrt(K) to undo
    assert_close(fla_retention(q, k, v)[0, -1, :, 0], expected, 1e-6)
    assert_close(mixers.retention(q, k, v, chunk_size=16)[0, -1, :, 0], expected, 1e-12)
