"""Which implementation of each primitive a generated file copies: torch or Triton.

`torch` copies every primitive's torch implementation (the file needs only torch).
`triton` copies the Triton implementation of every primitive that has one and
takes the shapes at the scale (an unsupported shape is an error), torch for the
rest. `auto` is `triton` on a machine with a CUDA device and triton installed,
with unsupported shapes falling back to torch per primitive, and `torch`
otherwise. No backend given means `GENESYS_BACKEND`, else `auto`: the kernels'
tests, bfloat16 ones included, pass on an H100 and an H200, and a training step
with them is 1.7-5.4x faster there (docs/results.md). docs/kernels.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..check.checker import Report
from ..check.scale import ScaleWalker
from ..ops.registry import Primitive
from ..scales import Scale
from .codegen import CompileError
from .implementations import Implementation, ImplementationError, implementation, triton_implementation

BACKENDS = ("auto", "torch", "triton")
ENV = "GENESYS_BACKEND"
DEFAULT = "auto"  # the kernels where a CUDA device and triton are, torch elsewhere
INSTALL_HINT = "pip install 'genesys-dsl[triton]'"


class BackendError(CompileError):
    """A backend that does not exist or cannot be used here (the message says why, and what to use)."""


def resolve(backend: str | None) -> str:
    """The backend asked for: the argument, else $GENESYS_BACKEND, else DEFAULT."""
    if backend is None:
        backend = os.environ.get(ENV, "").strip() or DEFAULT
        if backend not in BACKENDS:
            raise BackendError(f"{ENV}={backend} names no backend; available: {', '.join(BACKENDS)}")
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    return backend


def triton_missing() -> str | None:
    """Why Triton cannot be used here (None when it can be imported)."""
    try:
        import triton  # noqa: F401
    except ImportError as err:
        return f"the triton package cannot be imported ({err}); install it with {INSTALL_HINT}"
    return None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def interpreted() -> bool:
    """Whether Triton kernels defined now run in Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@contextlib.contextmanager
def interpreter(*modules: str) -> Iterator[None]:
    """Triton's CPU interpreter inside the block, whatever was imported before (for tests).

    @triton.jit decides at definition whether a kernel is interpreted, and triton.language's
    own helpers (tl.sum, ...) are kernels defined when triton is imported. So with
    TRITON_INTERPRET=1 set, triton's Python modules (its C extension stays) and the kernel
    `modules` named are imported afresh inside the block; on leaving, the variable, the
    modules that were there before and their parents' attributes are put back."""

    def swapped(name: str) -> bool:
        return ((name == "triton" or name.startswith("triton.")) and not name.startswith("triton._C")) or any(
            name == m or name.startswith(m + ".") for m in modules)

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if swapped(name)}
    variable = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        fresh = [name for name in sys.modules if swapped(name)]
        for name in fresh:
            del sys.modules[name]
        sys.modules.update(saved)
        for name in set(fresh) | set(saved):  # a parent outside the swap got the fresh child as an attribute
            parent, _, child = name.rpartition(".")
            if parent and parent in sys.modules and not swapped(parent):
                if name in saved:
                    setattr(sys.modules[parent], child, saved[name])
                elif hasattr(sys.modules[parent], child):
                    delattr(sys.modules[parent], child)
        if variable is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = variable


def primitive_bindings(report: Report, scale: Scale, final_norm: Primitive,
                       final_norm_eps: float | None) -> dict[str, list[dict[str, Any]]]:
    """Every primitive call of the model at `scale` -> its bindings (as the formulas see them)."""
    found: dict[str, list[dict[str, Any]]] = {}

    class Recorder(ScaleWalker):
        def primitive_cost(self, prim, b, call):
            cost = super().primitive_cost(prim, b, call)  # adds L
            if b not in found.setdefault(prim.name, []):
                found[prim.name].append(dict(b))
            return cost

    infos = report.infos
    walker = Recorder(infos, scale, report.cyclic)
    block = report.design.block
    walker.walk(block.name, walker.block_env(infos[block.name]))
    norm = {p.name: p.default for p in final_norm.signature.params if p.default is not None}
    norm.update(W=scale.d_model, L=scale.context_length)
    if final_norm_eps is not None:
        norm["eps"] = final_norm_eps
    found.setdefault(final_norm.name, []).append(norm)
    return found


def unsupported(impl: Implementation, bindings: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the Triton implementation cannot take one of the call sites' shapes."""
    for b in bindings:
        reason = impl.supports(b)
        if reason:
            return reason
    return None


def choose(prims: list[Primitive], backend: str,
           bindings: Mapping[str, list[dict[str, Any]]] | None) -> dict[str, Implementation]:
    """Primitive name -> the implementation the file copies, for a resolved backend.

    `bindings` (from `primitive_bindings`) are known when a scale is; without them every
    shape is taken as supported."""
    impls = {p.name: implementation(p) for p in prims}
    if backend == "torch":
        return impls
    missing = triton_missing()
    if backend == "auto":
        if missing or not cuda_available():
            return impls
    elif missing:
        raise BackendError(f"backend 'triton': {missing}")
    for prim in prims:
        if not prim.triton:
            continue
        try:
            fast = triton_implementation(prim, impls[prim.name])
        except ImplementationError as err:
            raise BackendError(f"backend '{backend}': {err}") from None
        if fast is None:
            continue
        reason = unsupported(fast, (bindings or {}).get(prim.name, ()))
        if reason is None:
            impls[prim.name] = fast
        elif backend == "triton":
            raise BackendError(f"backend 'triton': the Triton kernel of {prim.name} (plugin {prim.plugin}) "
                               f"does not take this shape: {reason}; use backend 'auto' to run it with torch")
    return impls
