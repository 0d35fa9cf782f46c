"""Backend dispatch: which implementation of each primitive a compiled file copies.

torch never touches triton; triton (under Triton's CPU interpreter here) builds a model
whose outputs and gradients match torch's from the same seed, in a file that runs on
its own; auto picks torch without CUDA and falls back per primitive on unsupported
shapes; every way of getting it wrong is a clear error."""

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from genesys_dsl.cli import main
from genesys_dsl.compile import BACKENDS, BackendError, build, compile_source, load_source
from genesys_dsl.compile import backends
from genesys_dsl.compile.implementations import ImplementationError
from genesys_dsl.ops import Registry, TritonImpl, registry
from genesys_dsl.syntax.files import read_design
from genesys_dsl.syntax.parse import parse
from paths import seed_paths

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"  # where the Triton kernels run compiled; else the CPU, interpreted

# RMSNorm after a residual add (fused by the triton backend), a short convolution, and a
# per-head RMSNorm: every kernel of genesys_primitives.triton_ops.{norms,convs}
SPEC = '''\
design kernel_probe "pre-norm short convolution, then a per-head normalised MLP"

block(x: seq[D]) -> seq[D] {
    x = x + Linear(silu(causal_conv(RMSNorm(x), 3)), D)
    return x + Mix(RMSNorm(x, eps=1e-05))
}

unit Mix(x: seq[D], heads: int = 4 in 1..8) -> seq[D] {
    h = split_heads(Linear(x, 2 * D), heads)
    return Linear(merge_heads(HeadRMSNorm(h)), D)
}
'''


@pytest.fixture(scope="module")
def design():
    return parse(SPEC, filename="kernel_probe.gab")


@pytest.fixture
def interpreter():
    """Kernels defined and run in the test go to Triton's CPU interpreter (unless CUDA is here)."""
    with contextlib.nullcontext() if CUDA else backends.interpreter("genesys_primitives.triton_ops"):
        yield


@pytest.fixture(autouse=True)
def no_backend_from_the_environment(monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)


# ------------------------------------------------------------------ torch and triton


def test_torch_backend_never_imports_triton(design, monkeypatch):
    """With triton unimportable and every Triton module pointing nowhere, torch still builds."""
    monkeypatch.setitem(sys.modules, "triton", None)  # any `import triton` now fails
    reg = Registry({name: replace(p, triton="no_such_package.kernels") for name, p in registry().primitives.items()})
    model = build(design, "cpu-xs", backend="torch", registry=reg)
    assert "triton" not in model.genesys_source
    model(torch.randint(0, 256, (1, 5))).sum().backward()


def test_triton_backend_matches_torch_backend(design, interpreter):
    fast = build(design, "cpu-xs", seed=3, backend="triton").to(DEVICE)
    slow = build(design, "cpu-xs", seed=3, backend="torch").to(DEVICE)
    assert "forward_residual" in fast.genesys_source and "@triton.jit" in fast.genesys_source
    # the same parameters, names and values: checkpoints move between backends
    assert fast.state_dict().keys() == slow.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), slow.state_dict().values()))
    ids = torch.randint(0, 256, (2, 37), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    out, expected = fast(ids), slow(ids)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    out.square().mean().backward()
    expected.square().mean().backward()
    for (name, a), b in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_triton_source_fuses_only_where_the_kernel_offers_it(design):
    fast = compile_source(design, backend="triton")
    slow = compile_source(design, backend="torch")
    assert "\nimport triton\n" in fast and "triton" not in slow
    assert "Backend triton: Triton kernels for HeadRMSNorm, RMSNorm, causal_conv; PyTorch for the rest" in fast
    # the first statement's add is fused with the second's RMSNorm; the return is not
    assert "x, x_normed = self.rms_norm_2.forward_residual(x, self.linear(silu(self.causal_conv(self.rms_norm(x)))))" \
        in fast
    assert "return x + self.mix(x_normed)" in fast
    assert "x = x + self.linear(silu(self.causal_conv(self.rms_norm(x))))" in slow


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_every_seed_compiles_with_the_triton_backend(path):
    """Valid Python, every pre-norm residual add fused where a Triton RMSNorm follows it."""
    source = compile_source(read_design(path), "cpu-xs", backend="triton")
    compile(source, path.name, "exec")
    torch_source = compile_source(read_design(path), "cpu-xs", backend="torch")
    added_then_normed = re.findall(r"^ +(\w+) = \w+ \+ .*\n(?=.*self\.rms_norm\w*\(\1\))", torch_source, flags=re.M)
    assert source.count(".forward_residual(") == len(added_then_normed)


def test_triton_source_runs_standalone(design, tmp_path):
    """The file needs torch and triton only: run it in a fresh interpreter, forward and backward."""
    path = tmp_path / "probe_model.py"
    path.write_text(compile_source(design, "cpu-xs", backend="triton"), encoding="utf-8")
    script = textwrap.dedent(f"""\
        import importlib.util, sys
        import torch
        spec = importlib.util.spec_from_file_location("probe_model", {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = module.build_model(**module.SCALE).to(device)
        model(torch.randint(0, 256, (2, 11), device=device)).square().mean().backward()
        assert all(p.grad is not None for p in model.parameters())
        assert not any(m.startswith(("genesys_dsl", "genesys_primitives")) for m in sys.modules)
        print("ok")
    """)
    env = {**os.environ, "TRITON_INTERPRET": "0" if CUDA else "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_triton_file_on_cpu_tensors_computes_what_torch_does(design, monkeypatch):
    """auto picks Triton where a model is built; the model may still be run on the CPU, where
    compiled kernels cannot go: its Triton modules then compute with torch."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    models = []
    for backend in ("triton", "torch"):
        module = load_source(compile_source(design, backend=backend), f"probe_{backend}")
        torch.manual_seed(0)
        models.append(module.build_model(d_model=32, n_layers=2, vocab_size=64, context_length=16))
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(models[0](ids), models[1](ids), rtol=0, atol=0)


# ------------------------------------------------------------------ auto


@pytest.mark.skipif(CUDA, reason="auto picks triton where CUDA is available")
def test_auto_picks_torch_without_cuda(design, interpreter):
    assert compile_source(design, "cpu-xs") == compile_source(design, "cpu-xs", backend="torch")
    assert "triton" not in build(design, "cpu-xs", backend="auto").genesys_source


WIDE = {"d_model": 32768, "n_layers": 1, "vocab_size": 256, "context_length": 64}  # checked, never built


def test_auto_with_cuda_falls_back_to_torch_per_primitive(design, monkeypatch):
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    assert "Triton kernels for HeadRMSNorm, RMSNorm, causal_conv;" in compile_source(design, "cpu-xs", backend="auto")
    wide = compile_source(design, WIDE, backend="auto")  # the norms' rows are too wide for one program
    assert "Backend triton: Triton kernels for causal_conv; PyTorch for the rest" in wide
    assert "def _rms_norm(x, weight, eps)" in wide and "forward_residual" not in wide


def test_triton_backend_refuses_an_unsupported_shape(design):
    with pytest.raises(BackendError, match=r"Triton kernel of \w*RMSNorm \(plugin primitives\) does not take this "
                                           r"shape: .* pads to \d+ features, above the 16384 one program "
                                           r"normalises; use backend 'auto'"):
        compile_source(design, WIDE, backend="triton")


# ------------------------------------------------------------------ choosing, and errors


def test_environment_variable_selects_the_backend(design, monkeypatch):
    monkeypatch.setenv(backends.ENV, "triton")
    assert "@triton.jit" in compile_source(design)
    monkeypatch.setenv(backends.ENV, "torch")
    assert "triton" not in compile_source(design)
    assert "@triton.jit" in compile_source(design, backend="triton")  # an argument beats the variable


def test_no_backend_given_means_auto_kernels_on_a_gpu_torch_elsewhere(design, monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    assert compile_source(design, "cpu-xs") == compile_source(design, "cpu-xs", backend="auto")
    assert "@triton.jit" in compile_source(design, "cpu-xs")
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    assert compile_source(design, "cpu-xs") == compile_source(design, "cpu-xs", backend="torch")


def test_unknown_backend_names_the_ones_there_are(design, monkeypatch):
    assert BACKENDS == ("auto", "torch", "triton")
    with pytest.raises(BackendError, match=r"unknown backend 'cuda'; available: auto, torch, triton"):
        compile_source(design, backend="cuda")
    monkeypatch.setenv(backends.ENV, "fast")
    with pytest.raises(BackendError, match=r"GENESYS_BACKEND=fast names no backend; available: auto, torch, triton"):
        build(design, "cpu-xs")


def test_triton_missing_is_an_error_for_triton_and_torch_for_auto(design, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    with pytest.raises(BackendError, match=r"triton package cannot be imported .* pip install 'genesys-dsl\[triton\]'"):
        compile_source(design, backend="triton")
    assert "triton" not in compile_source(design, backend="auto")


@pytest.mark.skipif(CUDA, reason="refused only where no CUDA device is")
def test_triton_build_without_cuda_or_interpreter_is_refused(design, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendError, match=r"a CUDA device, and there is none.* TRITON_INTERPRET=1"):
        build(design, "cpu-xs", backend="triton")


def test_cli_compile_backend_and_environment(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "probe.gab"
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["compile", str(spec), "--backend", "triton", "-o", str(tmp_path / "out.py")]) == 0
    assert "@triton.jit" in (tmp_path / "out.py").read_text(encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setenv(backends.ENV, "fast")
    assert main(["compile", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "genesys: error: GENESYS_BACKEND=fast names no backend; available: auto, torch, triton"


# ------------------------------------------------------------------ plugin mistakes
# This module serves as a Triton implementation module (Primitive.triton) with errors.


def RMSNorm(x):  # noqa: N802 - named like the primitive, as the contract asks
    """A function where the torch implementation is a module: generated code could not call both alike."""
    return x


class causal_conv(nn.Module):  # noqa: N801
    def forward(self, x):
        return x


def _rms_norm_fwd_kernel():
    """Named like a helper of the built-in RMSNorm kernel."""


IMPLEMENTATIONS = {
    "RMSNorm": TritonImpl(f"{__name__}:RMSNorm"),
    "causal_conv": TritonImpl(f"{__name__}:causal_conv", uses=(f"{__name__}:_rms_norm_fwd_kernel",)),
}


def with_kernels_from_here(*names):
    return Registry({name: replace(p, triton=__name__) if name in names else p
                     for name, p in registry().primitives.items()})


def test_a_triton_implementation_of_another_kind_is_refused(design):
    with pytest.raises(BackendError, match=r"is a function; its torch implementation is a module"):
        compile_source(design, backend="triton", registry=with_kernels_from_here("RMSNorm"))


def test_two_helpers_with_one_name_are_refused(design):
    with pytest.raises(ImplementationError, match=r"both named '_rms_norm_fwd_kernel'"):
        compile_source(design, backend="triton", registry=with_kernels_from_here("causal_conv"))
