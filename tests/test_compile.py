"""Compiling designs to standalone PyTorch: exact sizes, readable and inert source, models that run."""

import subprocess
import sys

import pytest
import torch

import genesys_dsl as g
from genesys_dsl.compile import compile_source, load_source
from paths import SPECS, seed_paths

SMALL = {"d_model": 64, "n_layers": 2, "vocab_size": 97, "context_length": 64}


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_builds_with_the_parameter_count_of_stats(path):
    design = g.parse_file(path)
    for scale in ("cpu-xs", "cpu-s"):
        model = g.build(design, scale)
        assert sum(p.numel() for p in model.parameters()) == g.stats(design, scale).params


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_seed_model_gives_logits(path):
    model = g.build(g.parse_file(path), SMALL, seed=1)
    ids = torch.randint(0, SMALL["vocab_size"], (2, 19))
    logits = model(ids)
    assert logits.shape == (2, 19, SMALL["vocab_size"])
    assert torch.isfinite(logits).all()


def test_same_design_gives_byte_identical_source():
    design = g.parse_file(SPECS / "hybrid.gab")
    assert compile_source(design) == compile_source(g.parse(g.unparse(design)))


def test_same_seed_gives_the_same_weights():
    design = g.parse_file(SPECS / "transformer.gab")
    a, b = g.build(design, SMALL, seed=3), g.build(design, SMALL, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = g.build(design, SMALL, seed=4)
    assert not torch.equal(a.embedding.weight, c.embedding.weight)


def test_weights_are_named_after_the_variables_of_the_spec():
    names = dict(g.build(g.parse_file(SPECS / "transformer.gab"), SMALL).named_parameters())
    assert {"blocks.0.attention.q.weight", "blocks.0.attention.k.weight", "blocks.0.attention.v.weight",
            "blocks.0.attention.out.weight", "blocks.0.rms_norm.weight", "norm.weight",
            "embedding.weight"} <= set(names)


def test_generated_file_needs_only_torch(tmp_path):
    source = compile_source(g.parse_file(SPECS / "llama.gab"), "cpu-xs")
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"math", "torch", "torch.nn", "torch.nn.functional"}
    (tmp_path / "llama_model.py").write_text(source)
    probe = ("import torch, llama_model as m\n"
             "model = m.build_model(**m.SCALE)\n"
             "print(tuple(model(torch.zeros(1, 3, dtype=torch.long)).shape))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 3, 256)"


def test_learned_positions_and_untied_head_follow_the_scaffold():
    text = ('design p\nscaffold(positions=learned, tie_embeddings=false, final_norm=LayerNorm)\n'
            'block(x: seq[D]) -> seq[D] {\n    return x + Linear(x, D)\n}\n')
    design = g.parse(text)
    model = g.build(design, SMALL)
    assert model.positions.weight.shape == (SMALL["context_length"], SMALL["d_model"])
    assert model.lm_head.weight.data_ptr() != model.embedding.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == g.stats(design, SMALL).params


HOSTILE = '''design lambda_ "quote \\" and newline \\n and \\"\\"\\" triple; __import__('os').system('x')"

block(x: seq[D], import_: int = 2 in 1..4) -> seq[D] {
    """Docstring with a \\\\ backslash and 'quotes' and unicode: \u0430\u0442\u0442ention."""
    lambda = Linear(x, D)
    self = lambda + x
    class = Scale(self)
    return silu(class) * import_
}
'''


def test_hostile_names_and_strings_end_up_inert():
    design = g.parse(HOSTILE)
    assert g.check(design).ok
    source = compile_source(design)
    compile(source, "<generated>", "exec")  # valid Python
    module = load_source(source)
    model = module.build_model(**SMALL)
    assert model(torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, SMALL["vocab_size"])
    # the names Python would misread were renamed, the description stayed text
    assert "lambda_ = " in source and "self_ = " in source and "class_ = " in source
    assert module.__doc__.startswith("lambda_: quote \" and newline")


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_prefix_gives_the_same_logits_as_the_whole_sequence(path):
    """What autoregressive decoding relies on: no output depends on the sequence length."""
    model = g.build(g.parse_file(path), {**SMALL, "context_length": 128}, seed=2).double()
    ids = torch.randint(0, SMALL["vocab_size"], (2, 70))  # longer than the chunk sizes
    full = model(ids)
    for cut in (1, 17, 64):
        torch.testing.assert_close(model(ids[:, :cut]), full[:, :cut], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", seed_paths(), ids=lambda p: p.stem)
def test_parameter_count_equals_stats_at_every_scale(path):
    """Built on the meta device: exact shapes, no memory, so the 350M rung costs nothing."""
    design = g.parse_file(path)
    module = load_source(compile_source(design))
    for name, scale in g.scales().items():
        with torch.device("meta"):
            model = module.build_model(scale.d_model, scale.n_layers, scale.vocab_size, scale.context_length)
        assert sum(p.numel() for p in model.parameters()) == g.stats(design, name).params, name
