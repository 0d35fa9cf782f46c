"""Parity of the Triton RMSNorm (+ residual) and short causal convolution kernels with
their torch implementations: forward and gradients, float32 (float64 too) on the CPU
under Triton's interpreter; bfloat16 tolerances only where a CUDA device exists."""

import contextlib
import importlib

import pytest
import torch
from hypothesis import given, settings, strategies as st

from genesys_dsl.compile.backends import interpreter
from genesys_primitives.torch_ops import convs as torch_convs
from genesys_primitives.torch_ops import norms as torch_norms

KERNEL_MODULES = ("genesys_primitives.triton_ops.norms", "genesys_primitives.triton_ops.convs")
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
needs_cuda = pytest.mark.skipif(not CUDA, reason="bfloat16 needs a CUDA device: Triton's CPU interpreter "
                                                 "computes bfloat16 wrongly")
needs_compiled = pytest.mark.skipif(not CUDA, reason="compiled kernels need a CUDA device")


@pytest.fixture(scope="module")
def kernels():
    """The kernel modules: compiled on CUDA; elsewhere defined, with a fresh triton, under
    Triton's CPU interpreter for this module's tests only (see `backends.interpreter`)."""
    with contextlib.nullcontext() if CUDA else interpreter("genesys_primitives.triton_ops"):
        yield tuple(importlib.import_module(name) for name in KERNEL_MODULES)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grads(outputs, inputs, seed=1):
    """Gradients of a fixed random projection of `outputs` (a tensor or a tuple)."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    gen = torch.Generator().manual_seed(seed)
    cotangents = [torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device) for o in outputs]
    return torch.autograd.grad(outputs, inputs, cotangents)


def close(actual, expected, tol):
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=tol, atol=tol)


def leaf(*shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype).to(DEVICE).requires_grad_()


# ------------------------------------------------------------------ RMSNorm


def random_gain(module, seed=3):
    with torch.no_grad():  # ones would hide a gain applied to the wrong feature
        module.weight.copy_(torch.randn(module.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return module.to(DEVICE)


# rows (batch * length) that are not a multiple of the kernel's row block, widths that are
# not powers of two, and a single token
@pytest.mark.parametrize("shape", [(2, 37, 48), (3, 1, 20), (2, 5, 160)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rms_norm_matches_torch(kernels, shape, dtype):
    norms, _ = kernels
    fast = random_gain(norms.RMSNorm(W=shape[-1], eps=1e-5)).to(dtype)
    slow = random_gain(torch_norms.RMSNorm(W=shape[-1], eps=1e-5)).to(dtype)
    x = leaf(*shape, dtype=dtype)
    y, expected = fast(x), slow(x)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    close([y], [expected], tol)
    close(grads(y, (x, fast.weight)), grads(expected, (x, slow.weight)), tol)


def test_head_rms_norm_matches_torch(kernels):
    norms, _ = kernels
    fast, slow = random_gain(norms.HeadRMSNorm(H=3, E=12)), random_gain(torch_norms.HeadRMSNorm(H=3, E=12))
    x = leaf(2, 9, 3, 12)
    y, expected = fast(x), slow(x)
    close([y], [expected], 1e-5)
    close(grads(y, (x, fast.weight)), grads(expected, (x, slow.weight)), 1e-5)


def test_rms_norm_takes_a_non_contiguous_input(kernels):
    norms, _ = kernels
    fast, slow = random_gain(norms.RMSNorm(W=24)), random_gain(torch_norms.RMSNorm(W=24))
    base = leaf(24, 2, 11)
    x = base.permute(1, 2, 0)  # [2, 11, 24], not contiguous
    assert not x.is_contiguous()
    close([fast(x)], [slow(x)], 1e-5)
    close(grads(fast(x), (base,)), grads(slow(x), (base,)), 1e-5)


@pytest.mark.parametrize("use_sum", [True, False], ids=["sum-used", "sum-unused"])
def test_residual_add_fused_with_rms_norm_matches_add_then_norm(kernels, use_sum):
    """forward_residual(x, r) = (x + r, RMSNorm(x + r)); the sum's own gradient (the
    residual stream read later) is added to the norm's."""
    norms, _ = kernels
    fast, slow = random_gain(norms.RMSNorm(W=40)), random_gain(torch_norms.RMSNorm(W=40))
    x, r = leaf(2, 29, 40, seed=1), leaf(2, 29, 40, seed=2)
    total, y = fast.forward_residual(x, r)
    expected_total = x + r
    expected_y = slow(expected_total)
    close([total, y], [expected_total, expected_y], 1e-5)
    outputs, expected = ((y, total), (expected_y, expected_total)) if use_sum else (y, expected_y)
    close(grads(outputs, (x, r, fast.weight)), grads(expected, (x, r, slow.weight)), 1e-5)


def test_residual_norm_broadcasting_falls_back_to_add_then_norm(kernels):
    norms, _ = kernels
    fast, slow = random_gain(norms.RMSNorm(W=16)), random_gain(torch_norms.RMSNorm(W=16))
    x, bias = leaf(2, 7, 16), leaf(16, seed=4)
    total, y = fast.forward_residual(x, bias)
    close([total, y], [x + bias, slow(x + bias)], 1e-5)


# ------------------------------------------------------------------ causal_conv


def conv_pair(convs, W, kernel, dtype=torch.float32, seed=0):
    """The Triton and torch modules built from one seed: the same weights, by the contract."""
    torch.manual_seed(seed)
    fast = convs.causal_conv(W=W, kernel=kernel)
    torch.manual_seed(seed)
    slow = torch_convs.causal_conv(W=W, kernel=kernel)
    assert torch.equal(fast.weight, slow.weight) and torch.equal(fast.bias, slow.bias)
    return fast.to(DEVICE, dtype), slow.to(DEVICE, dtype)


# lengths over one time tile (64) and not a multiple of it, one channel tile padded past
# its channels (130 of 256), channels over 256 (tiles of 128, the last one partial), a
# single token, batch > 1
@pytest.mark.parametrize("batch,length,width,kernel", [(2, 37, 48, 4), (3, 70, 130, 3), (2, 9, 300, 4),
                                                       (2, 1, 5, 2), (1, 9, 8, 16)])
def test_causal_conv_matches_torch(kernels, batch, length, width, kernel):
    _, convs = kernels
    fast, slow = conv_pair(convs, width, kernel)
    x = leaf(batch, length, width)
    y, expected = fast(x), slow(x)
    close([y], [expected], 1e-5)
    close(grads(y, (x, fast.weight, fast.bias)), grads(expected, (x, slow.weight, slow.bias)), 1e-4)


def test_causal_conv_float64_matches_torch(kernels):
    _, convs = kernels
    fast, slow = conv_pair(convs, 12, 4, dtype=torch.float64)
    x = leaf(2, 21, 12, dtype=torch.float64)
    close([fast(x)], [slow(x)], 1e-12)
    close(grads(fast(x), (x, fast.weight)), grads(slow(x), (x, slow.weight)), 1e-12)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(batch=st.integers(1, 3), length=st.integers(1, 80), width=st.integers(1, 40), kernel=st.integers(2, 6))
def test_causal_conv_matches_torch_at_any_shape(kernels, batch, length, width, kernel):
    _, convs = kernels
    fast, slow = conv_pair(convs, width, kernel)
    x = leaf(batch, length, width)
    close([fast(x)], [slow(x)], 1e-5)
    close(grads(fast(x), (x, fast.weight)), grads(slow(x), (x, slow.weight)), 1e-4)


# ------------------------------------------------------------------ bfloat16, on CUDA only


def no_worse_than_torch(ours, theirs, truth, what, slack=2.0):
    """bfloat16 results are held to the float32 truth no worse than torch's own bfloat16
    computation is (within `slack`), as flash-linear-attention's tests do: a fixed
    tolerance either fails on one unlucky rounding in a million or hides real errors."""
    ours_err = (ours.float() - truth).abs().max().item()
    torch_err = (theirs.float() - truth).abs().max().item()
    scale = truth.abs().max().item()
    assert ours_err <= slack * torch_err + 1e-3 * scale, (
        f"{what}: max error {ours_err:.4g} against float32, torch's bfloat16 {torch_err:.4g} (largest value {scale:.4g})")


@needs_cuda
def test_rms_norm_bfloat16_within_tolerance(kernels):
    norms, _ = kernels
    fast, slow = random_gain(norms.RMSNorm(W=768)), random_gain(torch_norms.RMSNorm(W=768))
    x, r = leaf(4, 513, 768), leaf(4, 513, 768, seed=1)
    xb, rb = x.detach().bfloat16().requires_grad_(), r.detach().bfloat16().requires_grad_()
    total, y = fast.forward_residual(xb, rb)
    assert y.dtype == torch.float32 and total.dtype == torch.bfloat16  # as the torch version's promotion
    xt, rt = xb.detach().clone().requires_grad_(), rb.detach().clone().requires_grad_()
    y_torch = slow(xt + rt)  # the torch backend on the same bfloat16 inputs
    truth = slow(x + r)  # float32
    no_worse_than_torch(y, y_torch, truth, "output")
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    gx, = torch.autograd.grad(y, (xb,), cotangent)
    gt, = torch.autograd.grad(y_torch, (xt,), cotangent)
    ex, = torch.autograd.grad(truth, (x,), cotangent)
    no_worse_than_torch(gx, gt, ex, "input gradient")


@needs_compiled
def test_causal_conv_float32_at_a_training_shape_matches_torch(kernels):
    """Many time and channel tiles, compiled, in float32: beside the bfloat16 test below, it
    tells a precision problem from an indexing one at the same shape."""
    _, convs = kernels
    fast, slow = conv_pair(convs, 1536, 4)
    x = leaf(4, 1000, 1536)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # torch's reference in full float32
        y, expected = fast(x), slow(x)
        close([y], [expected], 1e-5)
        close(grads(y, (x, fast.weight, fast.bias)), grads(expected, (x, slow.weight, slow.bias)), 1e-3)


@needs_cuda
def test_causal_conv_bfloat16_under_autocast_within_tolerance(kernels):
    _, convs = kernels
    fast, slow = conv_pair(convs, 1536, 4)
    x = leaf(4, 1000, 1536)
    xt = x.detach().clone().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = fast(x)
        y_torch = slow(xt)  # F.conv1d under the same autocast
    assert y.dtype == y_torch.dtype == torch.bfloat16
    truth = slow(x)  # float32
    no_worse_than_torch(y, y_torch, truth, "output")
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    ours = torch.autograd.grad(y, (x, fast.weight, fast.bias), cotangent.bfloat16())
    theirs = torch.autograd.grad(y_torch, (xt, slow.weight, slow.bias), cotangent.bfloat16())
    exact = torch.autograd.grad(truth, (x, slow.weight, slow.bias), cotangent)
    for name, a, b, e in zip(("input gradient", "weight gradient", "bias gradient"), ours, theirs, exact):
        no_worse_than_torch(a, b, e, name)
