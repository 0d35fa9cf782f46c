"""How a primitive points at its Triton implementation (the contract is in
plugins/genesys_primitives/triton_ops/__init__.py; docs/kernels.md explains dispatch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .torch_impl import PRELUDE

# A generated file that uses any Triton implementation starts with this instead of PRELUDE.
TRITON_PRELUDE = PRELUDE + """
import triton
import triton.language as tl
"""

Supports = Callable[[Mapping[str, Any]], "str | None"]


def always(_: Mapping[str, Any]) -> None:
    """`supports` of a kernel that takes every shape the signature allows."""
    return None


@dataclass(frozen=True)
class TritonImpl:
    """Where a primitive's Triton implementation lives, what it needs, and which shapes it takes.

    `target` is "module:qualname" of a top-level function or nn.Module named like the
    primitive, a drop-in for its torch implementation (same kind, constructor keywords,
    parameters and forward signature). `uses` lists the helpers copied before it, in
    order: @triton.jit kernels, torch.autograd.Function classes, plain functions.
    `supports(bindings)` gets the primitive's bindings at a scale (every signature name
    bound, plus `L`, as the params/flops formulas do) and returns None when the kernel
    takes them, or a sentence saying why not. `residual_norm` marks a norm module with
    a `forward_residual(x, residual)` method returning `(x + residual, self(x + residual))`
    in one pass, which the compiler fuses into `h = a + b` followed by the norm of `h`.
    """

    target: str
    uses: tuple[str, ...] = field(default=())
    supports: Supports = always
    residual_norm: bool = False
