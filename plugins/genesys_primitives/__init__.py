"""The built-in primitives of genesys-dsl, registered as a plugin like any other.

Each module holds one family group and exposes `PRIMITIVES`, a list built with
`genesys_dsl.ops.primitive`. Parameter and FLOP formulas follow the conventions in
docs/language.md: a multiply-add is 2 FLOPs; FLOPs are forward, per token.
"""

from dataclasses import replace

from genesys_dsl.hookspecs import hookimpl

from . import convs, heads, mixers, norms, pointwise, projections

MODULES = (projections, pointwise, norms, heads, convs, mixers)


@hookimpl
def register_primitives(register):
    for module in MODULES:
        # torch_ops/<same module name> holds the implementations (imported only to compile)
        implementations = f"{__name__}.torch_ops.{module.__name__.rsplit('.', 1)[1]}"
        for prim in module.PRIMITIVES:
            register(replace(prim, torch=implementations))
