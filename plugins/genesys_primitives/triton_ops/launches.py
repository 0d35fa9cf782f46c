"""The kernel launches the built-in Triton implementations make at the seed designs' shapes,
found and compiled for a GPU on a machine without one.

The host code picks each kernel's block sizes, warps and stages from the shapes it is given
(`_chunked_dims`, `_causal_conv_launch`, `_rms_norm_launch`, ...). Rather than restating those
choices, `seed_launches` runs it: every Triton implementation a seed design calls is called,
forward and backward, at each call site's sizes at a scale (bound as the compiler binds them),
on meta tensors that report themselves as CUDA tensors, and each kernel launch is recorded
instead of run. `compile_launch` compiles a recorded launch for a CUDA architecture as
triton's JIT would on that GPU (its own argument specialisation, then front end, backend and
ptxas; no driver needed), so what the real compiler rejects shows up without a GPU.

Used by tests/test_triton_compile.py and benchmarks/kernel_resources.py; nothing here is
copied into generated files. It relies on two of triton's internals (the binder that
`JITFunction.run` builds, and `JITFunction._pack_args`), checked against triton 3.7.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pathlib
import re
import subprocess
import tempfile
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

from genesys_dsl import ir
from genesys_dsl.check import check
from genesys_dsl.check.stats import scaffold_setting
from genesys_dsl.compile.backends import interpreted, primitive_bindings
from genesys_dsl.compile.implementations import implementation, triton_implementation
from genesys_dsl.ops import registry as default_registry
from genesys_dsl.scales import get_scale
from genesys_dsl.syntax.parse import parse
from genesys_dsl.syntax.unparse import unparse

SCALES = ("14M", "125M")
H100_SMS = 132  # what a host-side grid that depends on the GPU's size sees (the norms' dw reduction)


@dataclass(frozen=True)
class Launch:
    """One kernel launch as the host code made it, and where: `site` is e.g.
    "gla (H=4, K=96, V=192) in gla at 125M"."""

    kernel: JITFunction
    args: tuple = field(compare=False)
    kwargs: dict = field(compare=False)
    site: str = field(compare=False)
    key: tuple = ()  # the compile-relevant part: signature, constants, alignment, warps, stages

    @property
    def name(self) -> str:
        return self.kernel.__name__

    @property
    def constants(self) -> dict[str, Any]:
        """The constexpr arguments and the launch options, e.g. {"BT": 64, ..., "num_warps": 4}."""
        return dict(self.key[1]) | dict(self.key[3])


class _LooksCuda(torch.Tensor):
    """A meta tensor that says it is on CUDA, so the host code takes its kernel path."""

    @property
    def is_cuda(self) -> bool:
        return True


def _bind(kernel: JITFunction, args: tuple, kwargs: dict, arch: int):
    """What triton's JIT derives from a launch on a GPU of `arch`: (options, signature,
    constexprs, attrs), ready for ASTSource and triton.compile."""
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    return kernel._pack_args(backend, kwargs, bound, specialization, options)


def _key(kernel: JITFunction, args: tuple, kwargs: dict) -> tuple:
    options, signature, constexprs, attrs = _bind(kernel, args, kwargs, 90)
    names = kernel.arg_names
    return (tuple(signature.items()),
            tuple((names[path[0]], value) for path, value in constexprs.items()),
            tuple(sorted((path, repr(value)) for path, value in attrs.items())),
            (("num_warps", options.num_warps), ("num_stages", options.num_stages)))


@contextlib.contextmanager
def _recording(into: list[tuple[JITFunction, tuple, dict]]) -> Iterator[None]:
    """Kernel launches are appended to `into` instead of run. The two things host code asks of
    a CUDA device that meta tensors cannot answer are answered as on an H100."""
    saved = JITFunction.run, torch.cuda.get_device_properties, torch.is_autocast_enabled
    JITFunction.run = lambda self, *args, grid, warmup, **kwargs: into.append((self, args, kwargs))
    torch.cuda.get_device_properties = lambda device=None: types.SimpleNamespace(multi_processor_count=H100_SMS)
    torch.is_autocast_enabled = lambda *device: False if device == ("meta",) else saved[2](*device)
    try:
        yield
    finally:
        JITFunction.run, torch.cuda.get_device_properties, torch.is_autocast_enabled = saved


def _size(dim: ir.Dim, bindings: dict[str, Any]) -> list[int]:
    if isinstance(dim, ir.RestDim):
        return list(bindings[dim.name])
    if isinstance(dim, ir.Name):
        return [int(bindings[dim.id])]
    if isinstance(dim, ir.IntLit):
        return [dim.value]
    raise ValueError(f"cannot size the dimension {dim!r} of a primitive's signature")


def _call(prim, target: str, kind: str, residual_norm: bool, bindings: dict[str, Any], batch: int,
          dtype: torch.dtype):
    """Run the implementation at these sizes on meta tensors, forward and backward (and a norm's
    fused residual add where it has one)."""
    tensors = [torch.empty(batch, bindings["L"], *[n for d in p.type.dims for n in _size(d, bindings)],
                           device="meta", dtype=dtype).as_subclass(_LooksCuda).requires_grad_()
               for p in prim.tensor_inputs]
    scalars = {p.name: bindings[p.name] for p in prim.signature.params
               if not isinstance(p.type, ir.SeqType) and p.name in bindings}
    obj = _resolve(target)
    if kind == "module":
        accepted = inspect.signature(obj.__init__).parameters
        module = obj(**{n: v for n, v in bindings.items() if n in accepted}).to("meta")
        out, params = module(*tensors), list(module.parameters())
        if residual_norm:  # the fused residual add the compiler writes after `h = a + b`
            out = torch.cat(module.forward_residual(tensors[0], torch.empty_like(tensors[0])), -1)
    else:
        accepted = inspect.signature(obj).parameters
        out, params = obj(*tensors, **{n: v for n, v in scalars.items() if n in accepted}), []
    torch.autograd.grad(out, tensors + params, torch.empty_like(out))


def seed_launches(scales: tuple[str, ...] = SCALES, batch: int = 8,
                  dtype: torch.dtype = torch.bfloat16) -> list[Launch]:
    """Every distinct kernel launch (by what the compiler sees) of every Triton implementation
    the seed designs call, at each scale's sizes, with `dtype` inputs (bfloat16: what the
    trainer's autocast gives them), in the order first met."""
    from genesys_dsl.gp.tree import seeds

    reg = default_registry()
    found: dict[tuple, Launch] = {}
    for design in seeds():
        design = parse(unparse(design), filename=f"<{design.name}>")  # call sites need their spans
        for scale_name in scales:
            scale = get_scale(scale_name)
            report = check(design, [scale], registry=reg)
            if not report.ok:  # a seed that does not fit the scale launches nothing there; a kernel
                continue  # no seed launches is what tests/test_triton_compile.py reports
            norm = reg.get(scaffold_setting(report.design, "final_norm", "RMSNorm"))
            sites = primitive_bindings(report, scale, norm, scaffold_setting(report.design, "final_norm_eps", None))
            for name, site_bindings in sites.items():
                prim = reg.get(name)
                impl = triton_implementation(prim, implementation(prim)) if prim.triton else None
                if impl is None:
                    continue
                for bindings in site_bindings:
                    sizes = ", ".join(f"{k}={v}" for k, v in bindings.items() if k != "L")
                    site = f"{name} ({sizes}) in {design.name} at {scale_name}"
                    recorded: list[tuple[JITFunction, tuple, dict]] = []
                    with _recording(recorded):
                        _call(prim, _target_of(prim), impl.kind, impl.residual_norm, bindings, batch, dtype)
                    for kernel, args, kwargs in recorded:
                        key = (kernel.__name__, _key(kernel, args, kwargs))
                        found.setdefault(key, Launch(kernel, args, kwargs, site, key[1]))
    return list(found.values())


def _resolve(target: str):
    """The object a "module:qualname" target names."""
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _target_of(prim) -> str:
    """The "module:qualname" of the primitive's Triton implementation."""
    module = importlib.import_module(prim.triton) if isinstance(prim.triton, str) else prim.triton
    return module.IMPLEMENTATIONS[prim.name].target


def compile_launch(launch: Launch, arch: int):
    """The launch compiled for sm_<arch> through ptxas (a triton CompiledKernel: .asm["ptx"],
    .asm["cubin"], .metadata). Compiler errors propagate as triton raises them."""
    options, signature, constexprs, attrs = _bind(launch.kernel, launch.args, launch.kwargs, arch)
    return triton.compile(ASTSource(launch.kernel, signature, constexprs, attrs),
                          target=GPUTarget("cuda", arch, 32), options=options.__dict__)


def kernels_of_implementations() -> dict[str, JITFunction]:
    """name -> every @triton.jit kernel (not the jit helpers they call) listed in the `uses` of a
    built-in primitive's Triton implementation."""
    reg = default_registry()
    jitted: dict[str, JITFunction] = {}
    for prim in reg:
        impl = triton_implementation(prim, implementation(prim)) if prim.triton else None
        for target in impl.uses if impl else ():
            obj = _resolve(target)
            if isinstance(obj, JITFunction):
                jitted[obj.__name__] = obj
    called = {name for name in jitted for other in jitted.values()
              if other.__name__ != name and f"{name}(" in other.src}
    return {name: fn for name, fn in jitted.items() if name not in called}


def ptxas_missing(arch: int = 90) -> str | None:
    """Why kernels cannot be compiled for sm_<arch> here (None when triton's CUDA backend and its
    bundled ptxas work)."""
    if interpreted():
        return "TRITON_INTERPRET=1 is set: kernels defined now are interpreted, not compiled"
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        subprocess.run([get_ptxas(arch).path, "--version"], check=True, capture_output=True)
    except (ImportError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
        return f"triton's CUDA backend or its ptxas is not usable here ({type(err).__name__}: {err})"
    return None


@dataclass(frozen=True)
class Resources:
    """What ptxas reports for a compiled kernel, per thread, and the shared memory triton sizes."""

    registers: int
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    stack: int  # bytes of stack frame
    shared: int  # bytes of (dynamic) shared memory per program


def ptxas_resources(compiled, arch: int) -> Resources:
    """Run triton's ptxas with -v on the kernel's PTX, with the flags triton's backend uses, and
    read its report (triton discards it; the driver's figures need a GPU)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as folder:
        ptx = pathlib.Path(folder) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        done = subprocess.run([get_ptxas(arch).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
                               f"--gpu-name={sm_arch_from_capability(arch)}", str(ptx), "-o", str(ptx) + ".o"],
                              check=True, capture_output=True, text=True)
    report = done.stderr + done.stdout
    number = lambda pattern: int(m.group(1)) if (m := re.search(pattern, report)) else 0
    if not re.search(r"Used \d+ registers", report):
        raise RuntimeError(f"ptxas -v printed no register count for {compiled.name}:\n{report}")
    return Resources(registers=number(r"Used (\d+) registers"), spill_stores=number(r"(\d+) bytes spill stores"),
                     spill_loads=number(r"(\d+) bytes spill loads"), stack=number(r"(\d+) bytes stack frame"),
                     shared=compiled.metadata.shared)
