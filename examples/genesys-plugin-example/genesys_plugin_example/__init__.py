"""An example genesys-dsl plugin: one primitive with its torch implementation, and
one mutation operator. See docs/plugins.md in genesys-dsl."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Sequence

from genesys_dsl import hookimpl, ir
from genesys_dsl.gp.operator import NotApplicable, Operator
from genesys_dsl.ops import per_element, primitive

# ------------------------------------------------------------------ a primitive

swish_beta = replace(
    primitive(
        "swish_beta(x: seq[*S], beta: float = 1.0 in 0.1..10.0) -> seq[*S]",
        family="activation",
        temporal="pointwise",
        summary="x * sigmoid(beta * x) (swish with a fixed slope)",
        flops=per_element(5),
        reference="Ramachandran et al. 2017, Searching for Activation Functions",
    ),
    # the module whose IMPLEMENTATIONS holds the torch code (imported only to compile)
    torch="genesys_plugin_example.torch_ops",
)


@hookimpl
def register_primitives(register):
    register(swish_beta)


# ------------------------------------------------------------------ an operator


def _float_hyperparameters(design: ir.Design) -> list[ir.Param]:
    """Float hyperparameters with a default and a range: what scale_float may edit."""
    return [p for unit in design.units for p in unit.params
            if isinstance(p.type, ir.ScalarType) and p.type.kind == "float"
            and isinstance(p.default, float) and isinstance(p.domain, ir.Range)]


def scale_float(parents: Sequence[ir.Design], rng: random.Random) -> ir.Design:
    """Multiply one float hyperparameter's default by a factor in [0.5, 2], kept in its range."""
    child = ir.strip_spans(parents[0])  # a fresh tree: the parent is never changed
    candidates = _float_hyperparameters(child)
    if not candidates:
        raise NotApplicable("no float hyperparameter with a range")
    param = rng.choice(candidates)
    low, high = float(param.domain.low), float(param.domain.high)
    param.default = round(min(high, max(low, param.default * rng.uniform(0.5, 2.0))), 4)
    return child


@hookimpl
def register_operators(register):
    register(Operator("scale_float", arity=1, weight=1.0, function=scale_float,
                      summary="scale a float hyperparameter's default by 0.5x to 2x"))
