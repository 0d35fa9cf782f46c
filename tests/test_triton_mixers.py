"""Triton kernels of the sequence mixers (genesys_primitives.triton_ops: gla, retention, ssd).

Held to the torch recurrences (`<name>_reference` in torch_ops.mixers) in the output and in
the gradient of every input and parameter, float32, on the CPU under Triton's interpreter:
batch 2, several heads, lengths that are not a multiple of the kernels' chunks and
sub-chunks (and one token), weak and strong decays, grouped B/C for SSD, non-contiguous inputs. Where
a CUDA device exists, the compiled kernels are also held to the references in bfloat16 and
float16 (the interpreter computes those wrong, so they are not tested on the CPU).

On the CPU the `kernels` fixture runs this module's tests inside
`genesys_dsl.compile.backends.interpreter`: a fresh triton and fresh kernel modules defined
with TRITON_INTERPRET=1, all put back afterwards, so other test modules see neither.
"""

import contextlib
import importlib

import pytest
import torch
import torch.nn.functional as F
from genesys_primitives.torch_ops import mixers as torch_mixers
from paths import SPECS

from genesys_dsl.compile.backends import interpreter
from genesys_dsl.syntax.files import read_design

pytest.importorskip("triton", reason="triton is not installed (pip install -c constraints.txt -e '.[triton]')")

KERNEL_MODULES = ("genesys_primitives.triton_ops.ssd", "genesys_primitives.triton_ops.mixers")
# Without CUDA: the kernels interpreted, on CPU tensors. With CUDA: compiled, on the GPU,
# where float32 tl.dot runs in TF32 (about 3 decimal digits), hence the looser tolerance.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def kernels():
    """(ssd.py, mixers.py): compiled on CUDA; elsewhere defined, with a fresh triton, under
    Triton's CPU interpreter for this module's tests only (see `backends.interpreter`)."""
    with contextlib.nullcontext() if DEVICE == "cuda" else interpreter("genesys_primitives.triton_ops"):
        yield tuple(importlib.import_module(name) for name in KERNEL_MODULES)


@pytest.fixture(scope="module")
def mix(kernels):
    return kernels[1]


@pytest.fixture(scope="module")
def ssd_module(kernels):
    return kernels[0]


B, H, K, V = 2, 2, 16, 32
LENGTHS = [1, 19, 40]  # one token; a chunk and a bit; two chunks and a half (chunks of 16)
TOL = 2e-5 if DEVICE == "cpu" else 5e-3  # float32: the order of the sums differs (chunks against steps)


def assert_close(actual, expected, tol=TOL, what=""):
    """Relative to the expected tensor's largest entry (at least 1), as test_torch_mixers."""
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}")


def on_device(t):
    """A leaf on DEVICE with t's values (drawn on the CPU, so every device sees the same)."""
    return t.detach().to(DEVICE).requires_grad_()


def leaves(gen, *shapes):
    return [on_device(torch.randn(*s, generator=gen)) for s in shapes]


def check_parity(fast, slow, inputs, params=(), tol=TOL, seed=1):
    """fast(*inputs) == slow(*inputs), and so are the gradients of inputs and params."""
    gen = torch.Generator().manual_seed(seed)
    out, expected = fast(*inputs), slow(*inputs)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert_close(out, expected, tol, "output")
    grad_out = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(DEVICE)
    wrt = [t for t in inputs if t.requires_grad]
    fast_params, slow_params = params or ((), ())
    got = torch.autograd.grad(out, [*wrt, *fast_params], grad_out)
    want = torch.autograd.grad(expected, [*wrt, *slow_params], grad_out)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, tol, f"gradient {i}")


def gla_gates(gen, length, strong):
    logit = torch.randn(B, length, H, K, generator=gen)
    # the GLA seed's gate (logsigmoid / 16), or log-decays down to about -e^6 per token
    g = -torch.exp(2 * logit) if strong else F.logsigmoid(logit) / 16
    return on_device(g)


# ------------------------------------------------------------------------------ gla


@pytest.mark.parametrize("strong", [False, True], ids=["seed-gates", "strong-decays"])
@pytest.mark.parametrize("length", LENGTHS)
def test_gla_matches_the_recurrence(mix, length, strong):
    gen = torch.Generator().manual_seed(length)
    q, k, v = leaves(gen, (B, length, H, K), (B, length, H, K), (B, length, H, V))
    check_parity(mix.gla, torch_mixers.gla_reference, [q, k, v, gla_gates(gen, length, strong)],
                 tol=1e-4 if strong else TOL)


def test_gla_takes_sizes_that_are_not_a_tile_and_noncontiguous_inputs(mix):
    """K = 40 spans two 32-channel tiles, V = 20 pads a 32-wide one; q is a transposed view."""
    gen = torch.Generator().manual_seed(3)
    length, size, value = 21, 40, 20
    q = on_device(torch.randn(B, H, length, size, generator=gen)).transpose(1, 2)
    assert not q.is_contiguous()
    k, v = leaves(gen, (B, length, H, size), (B, length, H, value))
    g = on_device(F.logsigmoid(torch.randn(B, length, H, size, generator=gen)) / 4)
    check_parity(mix.gla, torch_mixers.gla_reference, [q, k, v, g])


def test_gla_spans_several_chunks_with_strong_decays(mix):
    """130 tokens: two 64-token chunks and two tokens of a third (weak decays over several
    chunks: the chunked-form test below). Every log-decay is a sum of same-sign terms or a
    difference inside one 16-token sub-chunk, so strong decays keep float32 rounding too."""
    gen = torch.Generator().manual_seed(130)
    q, k, v = leaves(gen, (B, 130, H, K), (B, 130, H, K), (B, 130, H, V))
    check_parity(mix.gla, torch_mixers.gla_reference, [q, k, v, gla_gates(gen, 130, strong=True)])


def test_gla_agrees_with_the_chunked_torch_form_at_its_chunk_size(mix):
    """The kernels always chunk by 64 (in sub-chunks of 16); the torch form at chunk_size=64
    gives the same result."""
    gen = torch.Generator().manual_seed(4)
    q, k, v = leaves(gen, (B, 70, H, K), (B, 70, H, K), (B, 70, H, V))
    g = gla_gates(gen, 70, strong=False)
    check_parity(lambda *x: mix.gla(*x, chunk_size=64), lambda *x: torch_mixers.gla(*x, chunk_size=64),
                 [q, k, v, g])


# ------------------------------------------------------------------------ retention


@pytest.mark.parametrize("chunk_size", [16, 32, 8], ids=["chunk16", "chunk32", "chunk8-runs-at-64"])
@pytest.mark.parametrize("length", LENGTHS)
def test_retention_matches_the_recurrence(mix, length, chunk_size):
    gen = torch.Generator().manual_seed(length)
    q, k, v = leaves(gen, (B, length, 4, K), (B, length, 4, K), (B, length, 4, V))  # 4 heads: 4 decays
    check_parity(lambda *x: mix.retention(*x, chunk_size=chunk_size), torch_mixers.retention_reference,
                 [q, k, v])


# ------------------------------------------------------------------------------ ssd


def ssd_pair(ssd_module, H, P, G, N, chunk_size):
    """The Triton and reference modules, initialised from one seed (so with equal parameters)."""
    torch.manual_seed(0)
    fast = ssd_module.ssd(H=H, P=P, G=G, N=N, chunk_size=chunk_size)
    torch.manual_seed(0)
    slow = torch_mixers.ssd_reference(H=H, P=P, G=G, N=N)
    return fast.to(DEVICE), slow.to(DEVICE)


@pytest.mark.parametrize("G, dt_shift", [(1, 0.0), (2, 1.0)], ids=["one-group", "two-groups-strong"])
@pytest.mark.parametrize("length", LENGTHS)
def test_ssd_matches_the_recurrence(ssd_module, length, G, dt_shift):
    heads, P, N = 4, 8, 16
    fast, slow = ssd_pair(ssd_module, heads, P, G, N, chunk_size=16)
    gen = torch.Generator().manual_seed(length)
    x, B_, C = leaves(gen, (B, length, heads, P), (B, length, G, N), (B, length, G, N))
    # dt_shift > 0: larger steps, so stronger decays (as test_torch_mixers)
    dt = on_device(torch.randn(B, length, heads, generator=gen) * (1 + dt_shift) + 2 * dt_shift)
    check_parity(fast, slow, [x, dt, B_, C], params=(list(fast.parameters()), list(slow.parameters())))


def test_ssd_has_the_torch_modules_parameters(ssd_module):
    """Same names, shapes and values from one seed: checkpoints move between backends."""
    fast, _ = ssd_pair(ssd_module, 6, 5, 3, 7, chunk_size=64)
    torch.manual_seed(0)
    torch_form = torch_mixers.ssd(H=6, P=5, G=3, N=7)
    assert fast.state_dict().keys() == torch_form.state_dict().keys()
    for name, value in torch_form.state_dict().items():
        assert torch.equal(fast.state_dict()[name].cpu(), value), name


# ------------------------------------------------------------------------- float64


@pytest.mark.parametrize("name", ["gla", "retention", "ssd"])
def test_float64_is_computed_by_the_torch_form(mix, ssd_module, name):
    """tl.dot has no float64 accumulator here, so float64 (the causality check's dtype) runs
    the torch implementation: same output dtype, values and gradients."""
    gen = torch.Generator().manual_seed(9)
    r = lambda *s: on_device(torch.randn(*s, generator=gen, dtype=torch.float64))
    if name == "ssd":
        fast, slow = ssd_pair(ssd_module, 4, 8, 2, 16, chunk_size=16)
        fast, slow = fast.double(), slow.double()
        slow.forward = torch_mixers.ssd.forward.__get__(slow)  # the chunked torch form, not the recurrence
        params = (list(fast.parameters()), list(slow.parameters()))
        inputs = [r(B, 19, 4, 8), r(B, 19, 4), r(B, 19, 2, 16), r(B, 19, 2, 16)]
    else:
        fast, slow, params = getattr(mix, name), getattr(torch_mixers, name), ()
        inputs = [r(B, 19, H, K), r(B, 19, H, K), r(B, 19, H, V)]
        if name == "gla":
            inputs.append(on_device(F.logsigmoid(torch.randn(B, 19, H, K, generator=gen, dtype=torch.float64))))
    check_parity(fast, slow, inputs, params=params, tol=1e-12)


# ---------------------------------------------------------------- registry and sources


def test_the_registry_points_at_these_kernels(mix):
    from genesys_dsl.ops import registry

    reg = registry()
    for name in ("gla", "retention", "ssd"):
        assert reg.get(name).triton == "genesys_primitives.triton_ops.mixers"
        impl = mix.IMPLEMENTATIONS[name]
        module, _, qualname = impl.target.partition(":")
        assert qualname == name and module.startswith("genesys_primitives.triton_ops.")


@pytest.mark.parametrize("name", ["gla", "retention", "ssd"])
def test_source_runs_standalone_on_the_triton_prelude(mix, ssd_module, name):
    """What the compiler does: the prelude, then each helper's source and the target's,
    nothing else. The copy must compute what the imported kernels compute."""
    from genesys_dsl.compile.implementations import source_of
    from genesys_dsl.compile.module import load_source
    from genesys_dsl.ops.triton_impl import TRITON_PRELUDE

    impl = mix.IMPLEMENTATIONS[name]
    sources = [source_of(target) for target in (*impl.uses, impl.target)]
    copy = load_source(TRITON_PRELUDE + "\n\n" + "\n\n\n".join(sources), name=f"standalone_{name}")
    gen = torch.Generator().manual_seed(5)
    if name == "ssd":
        torch.manual_seed(0)
        ours = ssd_module.ssd(H=2, P=4, G=1, N=16)
        torch.manual_seed(0)
        theirs = copy.ssd(H=2, P=4, G=1, N=16)
        xs = [torch.randn(B, 19, *s, generator=gen) for s in ((2, 4), (2,), (1, 16), (1, 16))]
    else:
        ours, theirs = getattr(mix, name), getattr(copy, name)
        xs = [torch.randn(B, 19, H, K, generator=gen) for _ in range(3)]
        if name == "gla":
            xs.append(F.logsigmoid(torch.randn(B, 19, H, K, generator=gen)))
    assert torch.equal(ours(*xs), theirs(*xs))


@pytest.mark.parametrize("seed_design", ["retnet", "gla", "mamba2"])
def test_seed_models_train_the_same_with_either_backend(kernels, seed_design):
    """The whole model, compiled with the Triton backend (these kernels copied into the
    generated file), against the torch backend: same weights, logits and gradients."""
    from genesys_dsl.compile import build

    design = read_design(SPECS / f"{seed_design}.gab")
    models = [build(design, "cpu-xs", seed=0, backend=b).to(DEVICE) for b in ("torch", "triton")]
    ids = torch.randint(0, 256, (2, 21), generator=torch.Generator().manual_seed(8)).to(DEVICE)
    logits = [m(ids) for m in models]
    assert_close(logits[1], logits[0], what="logits")
    for m, out in zip(models, logits):
        F.cross_entropy(out[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters()):
        assert_close(q.grad, p.grad, what=name)


# ------------------------------------------------------------ compiled kernels (CUDA)

cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA device: the interpreter computes bfloat16 wrong")
HALF = [torch.bfloat16, torch.float16]
HALF_TOL = {torch.bfloat16: 3e-2, torch.float16: 5e-3}  # relative to the largest entry, as assert_close


def check_half(fast, slow, inputs, dtype, params=()):
    """fast in `dtype` against slow in float32 on the same (rounded) values."""
    low = [t.detach().to(dtype).requires_grad_() for t in inputs]
    high = [t.detach().to(dtype).float().requires_grad_() for t in inputs]
    out, expected = fast(*low), slow(*high)
    assert out.dtype == dtype
    assert_close(out.float(), expected, HALF_TOL[dtype], "output")
    grad_out = torch.randn_like(expected)
    got = torch.autograd.grad(out, low, grad_out.to(dtype))
    want = torch.autograd.grad(expected, high, grad_out)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g.float(), w, HALF_TOL[dtype], f"gradient {i}")


@cuda
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", ["gla", "retention"])
def test_half_precision_on_cuda(mix, name, dtype):
    gen = torch.Generator().manual_seed(6)
    length, heads, size = 300, 4, 64
    xs = [torch.randn(B, length, heads, size, generator=gen) for _ in range(3)]
    if name == "gla":
        xs.append(F.logsigmoid(torch.randn(B, length, heads, size, generator=gen)) / 16)
    xs = [x.cuda() for x in xs]
    reference = {"gla": torch_mixers.gla, "retention": torch_mixers.retention}[name]
    check_half(getattr(mix, name), reference, xs, dtype)


@cuda
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_ssd_half_precision_on_cuda(ssd_module, dtype):
    torch.manual_seed(0)
    fast = ssd_module.ssd(H=8, P=64, G=1, N=128).to("cuda", dtype)
    slow = torch_mixers.ssd(H=8, P=64, G=1, N=128).cuda()
    slow.load_state_dict({name: value.float() for name, value in fast.state_dict().items()})
    gen = torch.Generator().manual_seed(7)
    xs = [torch.randn(B, 300, *s, generator=gen).cuda() for s in ((8, 64), (8,), (1, 128), (1, 128))]
    check_half(fast, slow, xs, dtype)
