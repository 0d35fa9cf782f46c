"""Swaps: a primitive for another of its family, a unit call for a compatible unit.

Replacements keep the call's arguments: they must have the same interface (tensor
inputs by rank, required scalars, outputs by rank) and accept the same positional
arguments; keywords the replacement does not take are dropped. The checker then
decides whether the call still binds (e.g. retention needs as many key as query
heads).
"""

from __future__ import annotations

from genesys_dsl import ir
from genesys_dsl.gp.tree import (
    callee, first_valid, fresh, get, import_units, interface, positional_prefix, registry, seeds,
    shuffled, sites, unit_names,
)


def _compatible(a_params, a_outputs, b_params, b_outputs) -> bool:
    return (interface(a_params, a_outputs) == interface(b_params, b_outputs)
            and positional_prefix(a_params) == positional_prefix(b_params))


def _retarget(call: ir.Call, name: str, params: list[ir.Param]) -> None:
    call.func = name
    accepted = {p.name for p in params}
    call.keywords = [k for k in call.keywords if k.name in accepted]


def _alternatives(prim) -> list:
    out = []
    for other in registry().families().get(prim.family, []):
        if other.name == prim.name or other.temporal == "acausal":
            continue
        if _compatible(prim.signature.params, prim.signature.outputs,
                       other.signature.params, other.signature.outputs):
            out.append(other)
    return out


def primitive_swap(parents, rng):
    """Replace one primitive call by another primitive of the same family and signature class."""
    (parent,) = parents
    targets = []
    for path, node in sites(parent):
        if isinstance(node, ir.Call) and node.func not in unit_names(parent.units[path[0]]):
            prim = registry().get(node.func)
            if prim is not None and parent.unit(node.func) is None:
                alts = _alternatives(prim)
                if alts:
                    targets.append((path, alts))

    def make(path, alts):
        def build():
            child = fresh(parent)
            alt = rng.choice(alts)
            _retarget(get(child, path), alt.name, alt.signature.params)
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "primitive swap")


def _unit_sources(parent: ir.Design):
    """(source design or None for the parent itself, unit) for every unit a call may swap to."""
    out = [(None, u) for u in parent.units if not u.is_block]
    for seed in seeds():
        out += [(seed, u) for u in seed.units if not u.is_block]
    return out


def unit_swap(parents, rng):
    """Replace one unit call by a compatible unit of the same design or of the seed library,
    bringing the library unit (and what it calls) along, renamed on collision."""
    (parent,) = parents
    calls = [(path, node.func) for path, node in sites(parent)
             if isinstance(node, ir.Call) and parent.unit(node.func) is not None
             and node.func not in unit_names(parent.units[path[0]])]
    sources = _unit_sources(parent)
    targets = []
    for path, name in calls:
        old = parent.unit(name)
        for source, unit in sources:
            if (source is None and unit.name == name) or not _compatible(
                    old.params, old.outputs, unit.params, unit.outputs):
                continue
            targets.append((path, source, unit.name))

    def make(path, source, name):
        def build():
            child = fresh(parent)
            new = name if source is None else import_units(child, source, [name])[name]
            _retarget(get(child, path), new, callee(child, new).params)
            return child
        return build

    return first_valid((make(*t) for t in shuffled(targets, rng)), parents, "unit swap")
