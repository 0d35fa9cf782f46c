"""Finding primitives' torch and Triton implementations and the source text to copy.

A primitive's `torch` field names the module holding its implementation; that
module's `IMPLEMENTATIONS` maps primitive names to `TorchImpl` records (see
plugins/genesys_primitives/torch_ops/__init__.py for the contract). Its optional
`triton` field does the same with `TritonImpl` records (the contract is in
plugins/genesys_primitives/triton_ops/__init__.py). Modules are imported only when
compiling, so checking specs never imports torch (nor triton, unless it is asked for).
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from dataclasses import dataclass
from functools import lru_cache

from ..ops.registry import Primitive
from ..ops.triton_impl import Supports, always


class ImplementationError(RuntimeError):
    """A primitive without a usable torch implementation (a plugin bug, named)."""


@dataclass(frozen=True)
class Implementation:
    name: str  # the name generated code calls
    kind: str  # "module" | "function"
    source: str
    uses: tuple[str, ...]  # "module:qualname" of helpers copied before it
    backend: str = "torch"  # "torch" | "triton"
    supports: Supports = always  # Triton: None when the kernel takes these bindings, else why not
    residual_norm: bool = False  # Triton norms: has forward_residual(x, residual) (see TritonImpl)


def _resolve(target: str):
    module_name, _, qualname = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ImplementationError(f"cannot import {target}: {err}") from None
    return obj


@lru_cache(maxsize=None)
def source_of(target: str) -> str:
    """The source text of a top-level function or class, dedented (decorators included)."""
    obj = _resolve(target)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        obj = getattr(obj, "fn", obj)  # a @triton.jit kernel wraps its Python function as .fn
    return textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n"


def _entry(prim: Primitive, module_ref):
    """The IMPLEMENTATIONS entry for `prim` in the module `module_ref` names (None if absent)."""
    try:
        module = importlib.import_module(module_ref) if isinstance(module_ref, str) else module_ref
    except ImportError as err:
        raise ImplementationError(f"cannot import {module_ref} (implementations of plugin {prim.plugin}): "
                                  f"{err}") from None
    return module, getattr(module, "IMPLEMENTATIONS", {}).get(prim.name)


def _named_like(prim: Primitive, target: str):
    obj = _resolve(target)
    if obj.__name__ != prim.name:
        raise ImplementationError(f"the implementation {target} of '{prim.name}' is named '{obj.__name__}'; "
                                  "generated code calls it by the primitive's name")
    return obj


def implementation(prim: Primitive) -> Implementation:
    """The primitive's torch implementation."""
    if not prim.torch:
        raise ImplementationError(f"primitive '{prim.name}' (plugin {prim.plugin}) has no torch implementation")
    module, impl = _entry(prim, prim.torch)
    if impl is None:
        raise ImplementationError(f"{module.__name__}.IMPLEMENTATIONS has no entry for '{prim.name}'")
    _named_like(prim, impl.target)
    return Implementation(prim.name, impl.kind, source_of(impl.target), tuple(impl.uses))


def triton_implementation(prim: Primitive, torch_impl: Implementation) -> Implementation | None:
    """The primitive's Triton implementation, a drop-in for `torch_impl`; None if it has none."""
    if not prim.triton:
        return None
    _, impl = _entry(prim, prim.triton)
    if impl is None:
        return None
    kind = "module" if inspect.isclass(_named_like(prim, impl.target)) else "function"
    if kind != torch_impl.kind:
        raise ImplementationError(f"the Triton implementation {impl.target} of '{prim.name}' is a {kind}; "
                                  f"its torch implementation is a {torch_impl.kind}, and generated code "
                                  "calls both the same way")
    return Implementation(prim.name, kind, source_of(impl.target), tuple(impl.uses), backend="triton",
                          supports=impl.supports, residual_norm=impl.residual_norm)
