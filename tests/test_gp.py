"""Genetic programming core: canonical hashing, structural diff, the built-in operators,
mutate/crossover and bloat control."""

from __future__ import annotations

import random
import re
from importlib.metadata import entry_points

import pytest

import genesys_dsl as g
from genesys_dsl import ir
from genesys_dsl.gp import (
    GPError, Limits, NotApplicable, Offspring, Operator, canonical_hash, crossover, diff, mutate, operators,
)
from genesys_dsl.gp.bloat import bloat_problem
from genesys_dsl.gp.tree import seeds
from genesys_dsl.ops import registry

from paths import SPECS, seed_paths

BUILTIN = {
    "hyper_default", "hyper_callsite", "primitive_swap", "unit_swap", "insert_norm", "insert_gate",
    "insert_residual", "remove_wrapper", "duplicate_branch", "drop_branch", "subtree_crossover",
    "unit_crossover",
}
DRAWS = 2  # rng draws per operator and seed


def load(name: str) -> ir.Design:
    return g.parse_file(SPECS / f"{name}.gab")


def edit(name: str, *replacements: tuple[str, str]) -> ir.Design:
    text = (SPECS / f"{name}.gab").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return g.parse(text, filename=f"{name}-edited.gab")


@pytest.fixture(scope="module")
def designs() -> list[ir.Design]:
    return [g.parse_file(p) for p in seed_paths()]


# ----------------------------------------------------------------- hashing


def test_hash_ignores_formatting_comments_docs_and_description():
    d = load("llama")
    text = (SPECS / "llama.gab").read_text()
    squashed = re.sub(r"#[^\n]*", "", text)  # no comments
    squashed = re.sub(r'"""[^"]*"""', "", squashed)  # no docstrings
    squashed = squashed.replace('"Llama block', '"Another description of a Llama block')
    squashed = " ".join(squashed.split())  # one line: newlines carry no meaning
    other = g.parse(squashed, filename="squashed.gab")
    assert not g.same_design(d, other)
    assert canonical_hash(other) == canonical_hash(d)
    assert canonical_hash(g.parse(g.unparse(d))) == canonical_hash(d)
    assert canonical_hash(ir.strip_spans(d)) == canonical_hash(d)


def test_hash_ignores_local_names_and_unit_order():
    d = load("llama")
    renamed = edit("llama", *[(f"{old} =", f"{new} =") for old, new in [("head_size", "hs"), ("hidden", "width")]],
                   ("kv_heads * head_size", "kv_heads * hs"), ("x, hidden)", "x, width)"))
    assert "head_size =" not in g.unparse(renamed)
    assert canonical_hash(renamed) == canonical_hash(d)
    swapped = d.model_copy(deep=True)
    swapped.units = [swapped.units[0], *reversed(swapped.units[1:])]
    assert canonical_hash(swapped) == canonical_hash(d)


def test_hash_distinguishes_architectures():
    d = load("transformer")
    base = canonical_hash(d)
    variants = [
        edit("transformer", ("ratio: float = 2.667", "ratio: float = 3.0")),  # hyperparameter
        edit("transformer", ("causal_attention(q, k, v)", "retention(q, k, v)")),  # primitive swap
        edit("transformer", ("x = x + Attention(RMSNorm(x))", "x = x + Attention(LayerNorm(x))")),
        edit("transformer", ("heads: int = 8", "n_heads: int = 8"), ("x, D), heads)", "x, D), n_heads)")),
        edit("transformer", ("= x + Attention(RMSNorm(x))", "= x + RMSNorm(Attention(RMSNorm(x)))")),
    ]
    hashes = {canonical_hash(v) for v in variants}
    assert base not in hashes and len(hashes) == len(variants)


def test_hash_is_alpha_renaming_not_name_erasure():
    # swapping which local feeds which argument changes the architecture
    d = load("transformer")
    swapped = edit("transformer", ("causal_attention(q, k, v)", "causal_attention(k, q, v)"))
    assert canonical_hash(swapped) != canonical_hash(d)


# ----------------------------------------------------------------- diff


def test_diff_of_known_edits():
    d = load("transformer")
    assert diff(d, d) == []
    assert diff(d, edit("transformer", ("ratio: float = 2.667", "ratio: float = 3.0"))) == [
        "GatedMLP: ratio 2.667 -> 3.0"]
    assert diff(d, edit("transformer", ("causal_attention(q, k, v)", "retention(q, k, v)"))) == [
        "Attention: causal_attention -> retention"]
    assert diff(d, edit("transformer", ("= x + Attention(RMSNorm(x))", "= x + RMSNorm(Attention(RMSNorm(x)))"))) == [
        "block: + RMSNorm wrapper around Attention(RMSNorm(x))"]
    wrapped = edit("transformer", ("= x + Attention(RMSNorm(x))", "= x + RMSNorm(Attention(RMSNorm(x)))"))
    assert diff(wrapped, d) == ["block: - RMSNorm wrapper around Attention(RMSNorm(x))"]
    doubled = edit("transformer", ("    x = x + Attention(RMSNorm(x))\n",
                                   "    x = x + Attention(RMSNorm(x))\n    x = x + Attention(RMSNorm(x))\n"))
    assert diff(d, doubled) == ["block: + x = x + Attention(RMSNorm(x))"]
    assert diff(d, edit("transformer", ("heads: int = 8 in 1..64", "heads: int = 8 in 1..32"))) == [
        "Attention: heads domain 1..64 -> 1..32"]


def test_diff_of_units_added_and_removed():
    gpt2, mlp = load("gpt2"), load("baselines/mlp_only")
    child = edit("gpt2", ("MLP(LayerNorm(x))", "SwiGLU(LayerNorm(x))"), ("unit MLP(", "unit SwiGLU("))
    assert diff(gpt2, child) == ["- unit MLP", "+ unit SwiGLU", "block: MLP -> SwiGLU"]
    assert "+ unit GatedMLP" in diff(gpt2, mlp)


def test_diff_ignores_comments_and_docstrings():
    d = load("llama")
    text = re.sub(r'"""[^"]*"""', "", re.sub(r"#[^\n]*", "", (SPECS / "llama.gab").read_text()))
    assert diff(d, g.parse(text)) == []


# ----------------------------------------------------------------- operators


def test_builtin_operators_come_from_an_entry_point_plugin():
    eps = {ep.name: ep.value for ep in entry_points(group="genesys_dsl")}
    assert eps.get("operators") == "genesys_operators"
    found = operators()
    assert BUILTIN <= set(found)
    for name in BUILTIN:
        op = found[name]
        assert isinstance(op, Operator) and op.summary and op.weight > 0
        assert op.plugin == "operators"
        assert op.arity == (2 if name.endswith("crossover") else 1)


def _parents(op: Operator, designs: list[ir.Design], i: int, draw: int) -> list[ir.Design]:
    if op.arity == 1:
        return [designs[i]]
    return [designs[i], designs[(i + 1 + 3 * draw) % len(designs)]]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_operator_children_check_clean_and_parents_are_unchanged(name, designs):
    op = operators()[name]
    children = valid = 0
    failures = []
    for i in range(len(designs)):
        for draw in range(DRAWS):
            parents = _parents(op, designs, i, draw)
            before = [ir.dumps(p) for p in parents]
            try:
                child = op(parents, random.Random(draw))
            except NotApplicable:
                continue
            assert [ir.dumps(p) for p in parents] == before, f"{name} changed a parent"
            assert isinstance(child, ir.Design)
            children += 1
            report = g.check(child, ["cpu-xs"])
            if report.ok:
                valid += 1
            else:
                failures.append(f"{parents[0].name}: {report.errors[0].message}")
            assert canonical_hash(child) not in {canonical_hash(p) for p in parents}
            if draw == 0:  # the same rng gives the same child
                again = op([p.model_copy(deep=True) for p in parents], random.Random(draw))
                assert g.same_design(again, child)
    assert children >= len(designs) // 2, f"{name} applied to only {children} of {len(designs) * DRAWS} trials"
    assert valid / children >= 0.95, failures


def test_operators_leave_the_seed_library_alone(designs):
    library = [ir.dumps(d) for d in seeds()]
    for name in ("unit_swap", "subtree_crossover", "unit_crossover"):
        op = operators()[name]
        for draw in range(3):
            op(_parents(op, designs, draw, draw), random.Random(draw))
    assert [ir.dumps(d) for d in seeds()] == library


def test_operators_raise_not_applicable_when_nothing_fits():
    mamba2 = load("mamba2")  # one residual branch only
    with pytest.raises(NotApplicable):
        operators()["drop_branch"]([mamba2], random.Random(0))
    bare = g.parse("design bare\nblock(x: seq[D]) -> seq[D] {\n    return x + Linear(x, D)\n}\n")
    for name in ("hyper_default", "unit_swap", "unit_crossover"):
        parents = [bare] * operators()[name].arity
        with pytest.raises(NotApplicable):
            operators()[name](parents, random.Random(0))


def test_primitive_swap_stays_in_family():
    d = load("transformer")
    families = {p.name: p.family for p in registry()}
    for draw in range(6):
        child = operators()["primitive_swap"]([d], random.Random(draw))
        (line,) = diff(d, child)
        old, new = line.split(": ", 1)[1].split(" -> ")
        assert families[old] == families[new]


# ----------------------------------------------------------------- mutate / crossover


def test_mutate_and_crossover_api(designs):
    d, other = load("transformer"), load("mamba2")
    before = ir.dumps(d)
    child = mutate(d, seed=3)
    assert isinstance(child, Offspring) and child.operator in BUILTIN and child.edits
    assert g.check(child.design, ["cpu-xs"]).ok
    assert ir.dumps(d) == before
    again = mutate(d, seed=3)
    assert g.same_design(child.design, again.design) and child.operator == again.operator
    assert child.edits == diff(d, child.design)
    named = mutate(d, seed=1, op="hyper_default")
    assert named.operator == "hyper_default" and len(named.edits) == 1
    child = crossover(d, other, seed=4)
    assert child.operator in {"subtree_crossover", "unit_crossover"}
    assert g.check(child.design, ["cpu-xs"]).ok and child.edits
    assert g.same_design(crossover(d, other, seed=4).design, child.design)
    # different seeds explore different offspring
    assert len({canonical_hash(mutate(d, seed=s).design) for s in range(8)}) >= 4


def test_mutate_errors_are_clear():
    d = load("mamba2")
    with pytest.raises(GPError, match="no operator 'no_such_op'"):
        mutate(d, seed=0, op="no_such_op")
    with pytest.raises(GPError, match="arity"):
        mutate(d, seed=0, op="unit_crossover")
    with pytest.raises(GPError, match="drop_branch"):
        mutate(d, seed=0, op="drop_branch")  # a single residual branch: nothing to drop


def test_mutate_accepts_an_operator_object():
    def rename_nothing(parents, rng):
        raise NotApplicable("never applies")

    d = load("transformer")
    with pytest.raises(GPError, match="never applies"):
        mutate(d, seed=0, op=Operator("noop", 1, 1.0, rename_nothing))


# ----------------------------------------------------------------- bloat


def test_bloat_limits():
    d = load("transformer")
    assert bloat_problem(d) is None
    assert "units" in bloat_problem(d, Limits(max_units=2))
    assert "statements" in bloat_problem(d, Limits(max_statements=1))
    assert "nested" in bloat_problem(d, Limits(max_depth=3))
    assert "parameters" in bloat_problem(d, Limits(max_param_ratio=0.5))
    broken = edit("transformer", ("heads: int = 8", "heads: int = 7"))  # 64 / 7 at cpu-xs
    assert "check clean" in bloat_problem(broken)


def test_mutate_enforces_bloat_limits():
    d = load("transformer")  # block: two statements; Attention: four
    with pytest.raises(GPError, match="statements"):
        mutate(d, seed=0, op="duplicate_branch", limits=Limits(max_statements=3))
    for seed in range(6):  # the transformer has 3 units: swaps may not bring more along
        assert len(mutate(d, seed=seed, op="unit_swap", limits=Limits(max_units=3)).design.units) <= 3
    child = mutate(d, seed=0, op="duplicate_branch", limits=Limits(max_statements=4))
    assert len(child.design.block.body) == 3
    child = mutate(d, seed=0, op="insert_residual", limits=Limits(max_param_ratio=1.2))
    assert bloat_problem(child.design, Limits(max_param_ratio=1.2)) is None
    # growth stops at the default limits: duplicating forever is refused eventually
    design = d
    for seed in range(40):
        try:
            design = mutate(design, seed=seed, op="duplicate_branch").design
        except GPError:
            break
    else:
        pytest.fail("duplicate_branch grew the block without limit")
    assert bloat_problem(design) is None


def test_bloat_control_rejects_an_all_but_empty_block():
    empty = g.parse("design empty\nblock(x: seq[D]) -> seq[D] {\n    return x + Scale(x)\n}\n")
    assert "at least" in bloat_problem(empty)
