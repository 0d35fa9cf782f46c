"""Primitive registry: signatures, families, temporal classes, cost formulas."""

from .torch_impl import PRELUDE, TorchImpl
from .triton_impl import TRITON_PRELUDE, TritonImpl
from .registry import Bindings, Constraint, Primitive, Registry, RegistryError, numel, per_element, primitive


def registry() -> Registry:
    """The registry of every primitive the loaded plugins provide."""
    from ..plugins import primitive_registry

    return primitive_registry()


__all__ = [
    "Bindings", "Constraint", "Primitive", "Registry", "RegistryError", "numel", "per_element",
    "primitive", "registry", "PRELUDE", "TorchImpl", "TRITON_PRELUDE", "TritonImpl",
]
