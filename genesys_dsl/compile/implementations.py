"""Finding primitives' torch implementations and the source text to copy.

A primitive's `torch` field names the module holding its implementation; that
module's `IMPLEMENTATIONS` maps primitive names to `TorchImpl` records (see
plugins/genesys_primitives/torch_ops/__init__.py for the contract). Modules are
imported only when compiling, so checking specs never imports torch.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from dataclasses import dataclass
from functools import lru_cache

from ..ops.registry import Primitive


class ImplementationError(RuntimeError):
    """A primitive without a usable torch implementation (a plugin bug, named)."""


@dataclass(frozen=True)
class Implementation:
    name: str  # the name generated code calls
    kind: str  # "module" | "function"
    source: str
    uses: tuple[str, ...]  # "module:qualname" of helpers copied before it


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
    """The source text of a top-level function or class, dedented."""
    return textwrap.dedent(inspect.getsource(_resolve(target))).rstrip() + "\n"


def implementation(prim: Primitive) -> Implementation:
    if not prim.torch:
        raise ImplementationError(f"primitive '{prim.name}' (plugin {prim.plugin}) has no torch implementation")
    module = importlib.import_module(prim.torch) if isinstance(prim.torch, str) else prim.torch
    impls = getattr(module, "IMPLEMENTATIONS", {})
    impl = impls.get(prim.name)
    if impl is None:
        raise ImplementationError(f"{module.__name__}.IMPLEMENTATIONS has no entry for '{prim.name}'")
    obj = _resolve(impl.target)
    if obj.__name__ != prim.name:
        raise ImplementationError(f"the implementation of '{prim.name}' is named '{obj.__name__}'; "
                                  "generated code calls it by the primitive's name")
    return Implementation(prim.name, impl.kind, source_of(impl.target), tuple(impl.uses))
