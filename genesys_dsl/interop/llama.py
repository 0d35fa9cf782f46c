"""Llama (transformers.LlamaForCausalLM) as a design, after specs/llama.gab."""

from __future__ import annotations

from .common import activation, bias, copy_module, final_norm_eps, float_range, int_range, int_set, lit, require

HF_CLASS = "LlamaForCausalLM"


def scale(config) -> dict:
    return {"d_model": config.hidden_size, "n_layers": config.num_hidden_layers, "vocab_size": config.vocab_size,
            "context_length": config.max_position_embeddings}


def rope_theta(config) -> float:
    """The rotary base; only plain RoPE (no scaling of any kind) is expressible."""
    rope = getattr(config, "rope_parameters", None) or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    require(kind == "default", config, "rope_parameters.rope_type", kind,
            "rotary() is plain RoPE; scaled variants (linear, dynamic, yarn, llama3, ...) are not expressible")
    legacy = getattr(config, "rope_scaling", None)  # transformers 4.x
    require(not legacy or legacy.get("rope_type", legacy.get("type")) == "default", config, "rope_scaling",
            legacy, "rotary() is plain RoPE, without scaling")
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def spec(config) -> str:
    """The GAB text of the model's block, at the config's exact sizes."""
    width, heads, kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    require(heads % kv_heads == 0, config, "num_key_value_heads", kv_heads, "must divide num_attention_heads")
    head_dim = getattr(config, "head_dim", None) or width // heads
    theta = rope_theta(config)
    act = activation(config, "hidden_act")
    final_eps = final_norm_eps(config, "rms_norm_eps", "RMSNorm")
    eps, attn_bias, mlp_bias = lit(config.rms_norm_eps), bias(config.attention_bias), bias(config.mlp_bias)
    if head_dim * heads == width:  # the seed's head size, D / heads
        head_param, head_size, q_width = "", "    head_size = D / heads\n", "D"
    else:  # a head size of its own: q has heads * head_size features, not D
        head_param = f"\n    head_size: int = {int_range(head_dim, 1, 1024)},"
        head_size, q_width = "", "heads * head_size"
    tie = "true" if config.tie_word_embeddings else "false"
    return f'''\
# Llama imported from Hugging Face transformers ({HF_CLASS}), at the checkpoint's sizes:
# RMSNorm, rotary grouped-query attention with {kv_heads} key/value heads for {heads} query
# heads, and a gated MLP {config.intermediate_size} wide.
design llama "Llama block: RMSNorm, rotary grouped-query attention and a SwiGLU MLP"
scaffold(final_norm=RMSNorm, tie_embeddings={tie}{final_eps})

block(x: seq[D]) -> seq[D] {{
    """Attention, then the MLP, each in a pre-norm residual branch."""
    x = x + GroupedQueryAttention(RMSNorm(x, eps={eps}))
    return x + SwiGLU(RMSNorm(x, eps={eps}))
}}

unit GroupedQueryAttention(
    x: seq[D],
    heads: int = {int_range(heads, 1, 64)},
    kv_heads: int = {int_set(kv_heads, (1, 2, 4, 8))},{head_param}
    theta: float = {float_range(theta, 100.0, 10000000.0)},
) -> seq[D] {{
    """Each key/value head serves heads / kv_heads query heads."""
{head_size}    q = rotary(split_heads(Linear(x, {q_width}{attn_bias}), heads), base=theta)
    k = rotary(split_heads(Linear(x, kv_heads * head_size{attn_bias}), kv_heads), base=theta)
    v = split_heads(Linear(x, kv_heads * head_size{attn_bias}), kv_heads)
    return Linear(merge_heads(causal_attention(q, k, v)), D{attn_bias})
}}

unit SwiGLU(x: seq[D], hidden: int = {int_range(config.intermediate_size, 1, 1 << 20)}) -> seq[D] {{
    """{act}(x W_gate) * (x W_up), projected back to D."""
    return Linear({act}(Linear(x, hidden{mlp_bias})) * Linear(x, hidden{mlp_bias}), D{mlp_bias})
}}
'''


# our module (under blocks.i.) -> HF module (under model.layers.i.)
_LAYER = {
    "rms_norm": "input_layernorm",
    "grouped_query_attention.q": "self_attn.q_proj",
    "grouped_query_attention.k": "self_attn.k_proj",
    "grouped_query_attention.v": "self_attn.v_proj",
    "grouped_query_attention.out": "self_attn.o_proj",
    "rms_norm_2": "post_attention_layernorm",
    "swi_glu.linear": "mlp.gate_proj",  # modules are numbered in evaluation order: gate, up, down
    "swi_glu.linear_2": "mlp.up_proj",
    "swi_glu.linear_3": "mlp.down_proj",
}


def weights(hf_model, config) -> dict:
    """Our state dict from the HF one: module for module, nothing fused."""
    theirs = hf_model.state_dict()
    out = {"embedding.weight": theirs["model.embed_tokens.weight"], "lm_head.weight": theirs["lm_head.weight"]}
    copy_module(out, "norm", theirs, "model.norm.")
    for i in range(config.num_hidden_layers):
        for ours, hf in _LAYER.items():
            copy_module(out, f"blocks.{i}.{ours}", theirs, f"model.layers.{i}.{hf}.")
    return out
