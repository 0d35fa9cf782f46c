"""GPT-2 (transformers.GPT2LMHeadModel) as a design, after specs/gpt2.gab."""

from __future__ import annotations

from .common import activation, copy_module, final_norm_eps, int_range, lit, require, require_equal

HF_CLASS = "GPT2LMHeadModel"


def scale(config) -> dict:
    return {"d_model": config.n_embd, "n_layers": config.n_layer, "vocab_size": config.vocab_size,
            "context_length": config.n_positions}


def spec(config) -> str:
    """The GAB text of the model's block, at the config's exact sizes."""
    _require_supported(config)
    width, inner = config.n_embd, config.n_inner or 4 * config.n_embd
    act = activation(config, "activation_function")
    eps = lit(config.layer_norm_epsilon)
    # the seed's `ratio * D` when the MLP width is a small multiple of D, else the exact width
    if inner % width == 0 and 1 <= inner // width <= 8:
        mlp_param, mlp_width = f"ratio: int = {inner // width} in 1..8", "ratio * D"
    else:
        mlp_param, mlp_width = f"hidden: int = {int_range(inner, 1, 1 << 20)}", "hidden"
    tie = "true" if config.tie_word_embeddings else "false"
    final_eps = final_norm_eps(config, "layer_norm_epsilon", "LayerNorm")
    return f'''\
# GPT-2 imported from Hugging Face transformers ({HF_CLASS}), at the checkpoint's sizes:
# pre-norm blocks with LayerNorm, multi-head attention and a {inner}-wide MLP, every
# projection with a bias; learned absolute positions and a final LayerNorm.
design gpt2 "GPT-2 block: LayerNorm, multi-head attention and a GELU MLP, with biases"
scaffold(positions=learned, final_norm=LayerNorm, tie_embeddings={tie}{final_eps})

block(x: seq[D]) -> seq[D] {{
    """Attention, then the MLP, each in a pre-norm residual branch."""
    x = x + Attention(LayerNorm(x, eps={eps}))
    return x + MLP(LayerNorm(x, eps={eps}))
}}

unit Attention(x: seq[D], heads: int = {int_range(config.n_head, 1, 64)}) -> seq[D] {{
    """Causal multi-head self-attention, no positional rotation (positions are learned)."""
    q = split_heads(Linear(x, D, bias=true), heads)
    k = split_heads(Linear(x, D, bias=true), heads)
    v = split_heads(Linear(x, D, bias=true), heads)
    return Linear(merge_heads(causal_attention(q, k, v)), D, bias=true)
}}

unit MLP(x: seq[D], {mlp_param}) -> seq[D] {{
    """Expand, {act}, project back."""
    return Linear({act}(Linear(x, {mlp_width}, bias=true)), D, bias=true)
}}
'''


def _require_supported(config) -> None:
    require_equal(config, "add_cross_attention", False, "cross-attention is not part of a decoder-only block")
    require_equal(config, "scale_attn_weights", True, "causal_attention always scales by 1/sqrt(head size)")
    require_equal(config, "scale_attn_by_inverse_layer_idx", False,
                  "the scale would depend on the layer, and every block of a design is the same")
    require(config.n_embd % config.n_head == 0, config, "n_head", config.n_head, "must divide n_embd")
    # reorder_and_upcast_attn only changes the rounding of half-precision runs


def weights(hf_model, config) -> dict:
    """Our state dict from the HF one. Conv1D stores [in, out]: weights are transposed,
    and c_attn holds q | k | v along its output features."""
    theirs = hf_model.state_dict()
    width = config.n_embd
    out = {"embedding.weight": theirs["transformer.wte.weight"],
           "positions.weight": theirs["transformer.wpe.weight"],
           "lm_head.weight": theirs["lm_head.weight"]}
    copy_module(out, "norm", theirs, "transformer.ln_f.")
    for i in range(config.n_layer):
        src, dst = f"transformer.h.{i}.", f"blocks.{i}."
        copy_module(out, dst + "layer_norm", theirs, src + "ln_1.")
        fused_w, fused_b = theirs[src + "attn.c_attn.weight"].t(), theirs[src + "attn.c_attn.bias"]
        for name, w, b in zip("qkv", fused_w.split(width), fused_b.split(width), strict=True):
            out[f"{dst}attention.{name}.weight"], out[f"{dst}attention.{name}.bias"] = w, b
        copy_module(out, dst + "attention.out", theirs, src + "attn.c_proj.", transpose=True)
        copy_module(out, dst + "layer_norm_2", theirs, src + "ln_2.")
        copy_module(out, dst + "mlp.linear", theirs, src + "mlp.c_fc.", transpose=True)
        copy_module(out, dst + "mlp.linear_2", theirs, src + "mlp.c_proj.", transpose=True)
    return out
