"""The built-in primitives of genesys-dsl, registered as a plugin like any other.

Each module holds one family group and exposes `PRIMITIVES`, a list built with
`genesys_dsl.ops.primitive`. Parameter and FLOP formulas follow the conventions in
docs/language.md: a multiply-add is 2 FLOPs; FLOPs are forward, per token.
"""

from dataclasses import replace
from importlib.util import find_spec

from genesys_dsl.hookspecs import hookimpl

from . import convs, heads, mixers, norms, pointwise, projections

MODULES = (projections, pointwise, norms, heads, convs, mixers)


@hookimpl
def register_primitives(register):
    for module in MODULES:
        # torch_ops/<same module name> holds the implementations (imported only to compile);
        # triton_ops/<same name>, where it exists, the Triton kernels of some of them
        name = module.__name__.rsplit(".", 1)[1]
        kernels = f"{__name__}.triton_ops.{name}"
        triton = kernels if find_spec(kernels) is not None else None  # finds the file, imports no triton
        for prim in module.PRIMITIVES:
            register(replace(prim, torch=f"{__name__}.torch_ops.{name}", triton=triton))
