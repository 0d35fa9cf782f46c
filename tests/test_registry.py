"""The primitive registry: complete, consistent, and loaded through the plugin mechanism."""

from dataclasses import replace
from importlib.metadata import entry_points

import pytest

import genesys_dsl as g
from genesys_dsl import ir
from genesys_dsl.check.dims import evaluate
from genesys_dsl.check.analyze import size_of
from genesys_dsl.ops import Registry, RegistryError, primitive, registry
from genesys_dsl.ops.registry import TEMPORAL_CLASSES, probe_bindings

PRIMITIVES = list(registry())

SEED_MIXERS = {
    "causal_attention", "retention", "gla", "gated_delta_rule", "ssd", "wkv6", "ttt_linear", "long_conv",
    "causal_conv", "token_shift",
}


def test_the_seeds_mixers_and_basics_are_registered():
    names = {p.name for p in PRIMITIVES}
    assert SEED_MIXERS <= names
    assert {"Linear", "LowRank", "RMSNorm", "LayerNorm", "rotary", "split_heads", "merge_heads", "silu"} <= names


@pytest.mark.parametrize("prim", PRIMITIVES, ids=lambda p: p.name)
def test_primitive_is_well_formed(prim):
    assert prim.temporal in TEMPORAL_CLASSES and prim.family and prim.summary
    sig = prim.signature
    assert len(sig.outputs) == 1 and isinstance(sig.outputs[0].type, ir.SeqType)
    assert any(isinstance(p.type, ir.SeqType) for p in sig.params)
    bindings = probe_bindings(prim)
    # every name in the output shape is bound by the inputs
    for d in sig.outputs[0].type.dims:
        if not isinstance(d, ir.RestDim):
            value = evaluate(size_of(d, lambda n, s: n), bindings)
            assert value > 0
    # the formulas evaluate to non-negative numbers at generic sizes
    assert prim.params(bindings) >= 0 and prim.flops(bindings) >= 0
    for c in prim.constraints:
        assert isinstance(c.holds(bindings), bool)


@pytest.mark.parametrize("prim", [p for p in PRIMITIVES if p.family.endswith("mixer") or p.family == "ssm"],
                         ids=lambda p: p.name)
def test_mixers_mix_over_time(prim):
    assert prim.temporal in ("causal", "acausal")


def test_builtin_primitives_come_from_an_entry_point_plugin():
    eps = {ep.name: ep.value for ep in entry_points(group="genesys_dsl")}
    assert eps.get("primitives") == "genesys_primitives"
    assert {p.plugin for p in PRIMITIVES} == {"primitives"}


def test_duplicate_names_are_refused():
    reg = Registry()
    prim = primitive("twice(x: seq[*S]) -> seq[*S]", family="activation", temporal="pointwise", summary="x")
    reg.register(replace(prim, plugin="a"))
    with pytest.raises(RegistryError, match="already registered by a"):
        reg.register(replace(prim, plugin="b"))


@pytest.mark.parametrize("signature, message", [
    ("bad(x: seq[D] -> seq[D]", "bad primitive signature"),
    ("ok(x: seq[D]) -> seq[D]", "temporal must be one of"),
])
def test_bad_primitive_definitions_are_refused(signature, message):
    temporal = "sometimes" if "ok(" in signature else "pointwise"
    with pytest.raises(RegistryError, match=message):
        primitive(signature, family="x", temporal=temporal, summary="x")


def test_a_custom_registry_extends_the_language():
    reg = Registry(dict(registry().primitives))
    reg.register(primitive("swish_beta(x: seq[*S], beta: float = 1.0 in 0.1..10.0) -> seq[*S]",
                           family="activation", temporal="pointwise", summary="x * sigmoid(beta x)"))
    design = g.parse("design t\nblock(x: seq[D]) -> seq[D] {\n    return x + swish_beta(x, beta=2.0)\n}\n")
    assert g.check(design, registry=reg).ok
    assert not g.check(design).ok
