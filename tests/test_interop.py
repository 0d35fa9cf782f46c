"""Importing Hugging Face GPT-2, Llama and Mamba-2: the design checks clean, the model has
the HF model's parameters and gives its logits. Small random configs, built locally."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

import genesys_dsl as g  # noqa: E402
from genesys_dsl.interop import UnsupportedConfig, from_hf, spec_of  # noqa: E402

VOCAB = 97
SMALL = dict(hidden_size=64, num_hidden_layers=2, vocab_size=VOCAB)


def gpt2(**overrides):
    config = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=256)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**config | overrides))


def llama(**overrides):
    config = SMALL | dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=172)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**config | overrides))


def mamba2(**overrides):
    # chunk_size 48: HF's chunks differ from ours (64), and 150 tokens span several of both
    config = SMALL | dict(state_size=16, head_dim=16, num_heads=8, n_groups=1, expand=2,
                          layer_norm_epsilon=1e-6, chunk_size=48)
    return transformers.Mamba2ForCausalLM(transformers.Mamba2Config(**config | overrides))


MODELS = {
    "gpt2": (gpt2, {}),
    "gpt2-exact-gelu-untied-odd-mlp": (gpt2, dict(activation_function="gelu", tie_word_embeddings=False, n_inner=100)),
    "llama-gqa": (llama, {}),
    "llama-biases-head-dim-tied": (llama, dict(attention_bias=True, mlp_bias=True, head_dim=32, num_key_value_heads=1,
                                               tie_word_embeddings=True,
                                               rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    "mamba2": (mamba2, {}),
    "mamba2-groups-biases": (mamba2, dict(n_groups=2, use_bias=True, state_size=8, conv_kernel=3)),
}


def hf_model(name):
    """A small HF model with every weight perturbed, so that no norm gain is 1 and no bias 0."""
    make, overrides = MODELS[name]
    torch.manual_seed(0)
    model = make(**overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def scale_of(hf, model):
    """The scale from_hf built at: the HF config's sizes."""
    config = hf.config
    return {"d_model": config.hidden_size, "n_layers": config.num_hidden_layers, "vocab_size": config.vocab_size,
            "context_length": model.context_length}


@pytest.fixture(scope="module", params=list(MODELS))
def imported(request):
    hf = hf_model(request.param)
    design, model = from_hf(hf)
    return request.param, hf, design, model


def test_design_prints_as_a_spec_that_checks_clean(imported):
    _, hf, design, model = imported
    text = g.unparse(design)
    reparsed = g.parse(text)
    assert g.same_design(reparsed, design)
    report = g.check(reparsed, [scale_of(hf, model)])
    assert report.ok and not report.diagnostics, report.render()


def test_spec_carries_the_checkpoints_own_sizes():
    text = spec_of(hf_model("llama-gqa"))
    assert "kv_heads: int = 2" in text and "hidden: int = 172" in text and "base=theta" in text
    text = spec_of(hf_model("mamba2-groups-biases"))
    assert "groups: int = 2" in text and "state: int = 8" in text and "kernel: int = 3" in text
    assert "HeadRMSNorm" in text  # HF normalises the gated output group by group


def test_parameter_count_is_the_hf_models(imported):
    _, hf, design, model = imported
    ours = sum(p.numel() for p in model.parameters())
    assert ours == sum(p.numel() for p in hf.parameters())
    assert ours == g.stats(design, scale_of(hf, model)).params


def test_logits_match_the_hf_model(imported):
    name, hf, _, model = imported
    lengths = (23, 150) if name.startswith("mamba2") else (23,)  # 150: several SSD chunks
    generator = torch.Generator().manual_seed(7)
    for length in lengths:
        ids = torch.randint(0, VOCAB, (2, length), generator=generator)
        with torch.no_grad():
            expected = hf(ids, use_cache=False).logits
            got = model(ids)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < 1e-4, (name, length)


@pytest.mark.parametrize("make, overrides", [
    (llama, dict(rms_norm_eps=1e-5)),  # Llama-2/3 checkpoints
    (mamba2, dict(layer_norm_epsilon=1e-5)),  # Mamba-2 checkpoints
    (gpt2, dict(layer_norm_epsilon=1e-6)),
])
def test_final_norm_eps_other_than_the_default_is_imported_exactly(make, overrides):
    hf = make(**overrides | dict(num_hidden_layers=1)).eval()  # GPT-2 has dropout
    design, model = from_hf(hf)
    assert "final_norm_eps=" in g.unparse(design)
    ids = torch.randint(0, VOCAB, (2, 23))
    with torch.no_grad():
        assert (model(ids) - hf(ids, use_cache=False).logits).abs().max().item() < 1e-4


def test_gradients_flow_through_every_imported_weight():
    _, model = from_hf(hf_model("mamba2-groups-biases"))
    model(torch.randint(0, VOCAB, (1, 9))).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("make, overrides, field", [
    (llama, dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
     "rope_parameters.rope_type"),
    (llama, dict(hidden_act="quick_gelu"), "hidden_act"),
    (mamba2, dict(time_step_limit=(0.0, 0.1)), "time_step_limit"),
    (mamba2, dict(use_conv_bias=False), "use_conv_bias"),
    (gpt2, dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
])
def test_inexpressible_configs_raise_naming_the_field(make, overrides, field):
    with pytest.raises(UnsupportedConfig, match=field) as err:
        spec_of(make(**overrides | dict(num_hidden_layers=1)))
    assert err.value.field == field


def test_sizes_the_primitives_reject_raise_unsupported_config():
    model = llama(num_hidden_layers=1, rope_parameters={"rope_type": "default", "rope_theta": 1e8})
    with pytest.raises(UnsupportedConfig, match="outside"):
        from_hf(model)


def test_other_models_are_refused():
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        from_hf(transformers.GPT2Model(transformers.GPT2Config(n_embd=64, n_layer=1, n_head=4, vocab_size=VOCAB)))
