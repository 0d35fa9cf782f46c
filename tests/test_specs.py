"""The seed library: every spec is clean, canonical, cited, and counted right."""

import re

import pytest

import genesys_dsl as g
from genesys_dsl.syntax.parse import read_text

from paths import SPECS, seed_paths

REQUIRED = {
    "transformer", "gpt2", "llama", "mamba2", "retnet", "rwkv6", "ttt", "gla", "gated_deltanet",
    "hyena", "hybrid", "baselines/mlp_only",
}


def test_the_required_seeds_exist():
    names = {str(p.relative_to(SPECS).with_suffix("")) for p in seed_paths()}
    assert REQUIRED <= names


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_checks_clean_at_every_scale(path):
    report = g.check(g.parse_file(path))
    assert report.diagnostics == [], report.render()


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_is_canonically_formatted(path):
    text = read_text(path)
    assert g.unparse(g.parse(text)) == text


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_has_a_description_a_paper_and_docstrings(path):
    design = g.parse_file(path)
    assert design.description
    header = " ".join(design.comments)
    assert re.search(r"\b(19|20)\d\d\b", header), "the header comment names the paper and its year"
    assert all(u.doc for u in design.units), "every unit says what it does"


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_has_a_figure_at_every_scale(path):
    design = g.parse_file(path)
    counts = [g.stats(design, name).params for name in g.scales()]
    assert all(c > 0 for c in counts)


def test_gpt2_parameter_count_matches_the_published_model():
    # GPT-2 small: 124,439,808 parameters with 1024 positions; our 125M scale has 2048.
    design = g.parse_file(SPECS / "gpt2.gab")
    figures = g.stats(design, {"d_model": 768, "n_layers": 12, "vocab_size": 50257, "context_length": 1024})
    assert figures.params == 124_439_808


def test_llama_parameter_count_by_hand():
    d, n, vocab = 64, 2, 256
    heads, kv_heads = 8, 2
    kv = kv_heads * d // heads
    hidden = 192  # multiple_of(8 * 64 / 3 = 170.67, 32)
    attention = d * d + 2 * d * kv + d * d
    mlp = 3 * d * hidden
    block = attention + mlp + 2 * d
    figures = g.stats(g.parse_file(SPECS / "llama.gab"), "cpu-xs")
    assert figures.block_params == block
    assert figures.params == vocab * d + n * block + d


def test_stats_flops_grow_with_context_for_attention_only():
    settings = {"d_model": 64, "n_layers": 2, "vocab_size": 256}
    attention = g.parse_file(SPECS / "transformer.gab")
    recurrent = g.parse_file(SPECS / "mamba2.gab")
    short = lambda d: g.stats(d, {**settings, "context_length": 128}).flops_per_token  # noqa: E731
    long = lambda d: g.stats(d, {**settings, "context_length": 4096}).flops_per_token  # noqa: E731
    assert long(attention) > short(attention)
    assert long(recurrent) == short(recurrent)


def test_stats_of_a_broken_design_raise_a_located_error():
    design = g.parse('design t\nblock(x: seq[D]) -> seq[D] {\n    return x + y\n}\n', filename="t.gab")
    with pytest.raises(g.DSLError) as err:
        g.stats(design, "cpu-xs")
    assert err.value.diagnostics[0].line == 3
