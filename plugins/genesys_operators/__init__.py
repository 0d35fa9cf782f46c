"""The built-in genetic-programming operators, registered as a plugin like any other.

Mutations (one parent): hyperparameter moves (at a unit's declaration or at a call
site), primitive swaps within a family, unit swaps (same design or seed library),
insertion of a norm, a gate or a residual branch, removal of a wrapper, duplication
or removal of a residual branch. Crossovers (two parents): typed subtree exchange
and unit replacement. Every operator works on a copy, draws everything from the
`rng` it is given, returns only children that check clean at the reference scale
and stay within the bloat limits (`genesys_dsl.gp.bloat`), and raises
`NotApplicable` when no edit of its kind gives one.
"""

from genesys_dsl.gp.operator import Operator
from genesys_dsl.hookspecs import hookimpl

from .crossover import subtree_crossover, unit_crossover
from .hyper import hyper_callsite, hyper_default
from .structure import (
    drop_branch, duplicate_branch, insert_gate, insert_norm, insert_residual, remove_wrapper,
)
from .swaps import primitive_swap, unit_swap

OPERATORS = [
    Operator("hyper_default", 1, 3.0, hyper_default,
             "move one hyperparameter default of a unit within its domain (step, resample, other option, flip)"),
    Operator("hyper_callsite", 1, 2.0, hyper_callsite,
             "set one hyperparameter at one call site (keyword) to another value within its domain"),
    Operator("primitive_swap", 1, 2.0, primitive_swap,
             "replace a primitive call by another of its family with the same signature class"),
    Operator("unit_swap", 1, 1.0, unit_swap,
             "replace a unit call by a compatible unit of the same design or of the seed library"),
    Operator("insert_norm", 1, 0.5, insert_norm, "wrap a tensor expression in a norm"),
    Operator("insert_gate", 1, 0.5, insert_gate, "gate a tensor expression: h * sigmoid(Linear(h, W))"),
    Operator("insert_residual", 1, 0.5, insert_residual,
             "add a residual branch around a tensor expression: h + U(RMSNorm(h))"),
    Operator("remove_wrapper", 1, 0.75, remove_wrapper,
             "replace a one-input call or elementwise operation by its operand of the same type"),
    Operator("duplicate_branch", 1, 0.5, duplicate_branch, "repeat a residual branch x = x + F(N(x))"),
    Operator("drop_branch", 1, 0.5, drop_branch, "drop one residual branch of a unit that has several"),
    Operator("subtree_crossover", 2, 1.0, subtree_crossover,
             "replace a seq[W] expression of A by one of B, bringing what it reads and calls"),
    Operator("unit_crossover", 2, 1.0, unit_crossover,
             "replace a unit of A, at every call, by a unit of B with the same interface"),
]


@hookimpl
def register_operators(register):
    for op in OPERATORS:
        register(op)
