"""Mamba-2 (transformers.Mamba2ForCausalLM) as a design, after specs/mamba2.gab."""

from __future__ import annotations

import math

from .common import activation, bias, copy_module, final_norm_eps, int_range, int_set, lit, require, split_rows

HF_CLASS = "Mamba2ForCausalLM"

# Mamba-2 has no context limit; a scale needs one (it only enters FLOP counts here).
CONTEXT_LENGTH = 2048

_MIXER = "blocks.{i}.mamba2."


def scale(config) -> dict:
    return {"d_model": config.hidden_size, "n_layers": config.num_hidden_layers, "vocab_size": config.vocab_size,
            "context_length": getattr(config, "max_position_embeddings", None) or CONTEXT_LENGTH}


def spec(config) -> str:
    """The GAB text of the model's block, at the config's exact sizes."""
    _require_supported(config)
    act = activation(config, "hidden_act")  # after the convolution; the gate is always silu
    eps, linear_bias = lit(config.layer_norm_epsilon), bias(config.use_bias)
    groups = config.n_groups
    # HF normalises the gated output in n_groups groups of features (MambaRMSNormGated's
    # group_size = intermediate / n_groups): one RMSNorm, or an RMSNorm per group
    if groups == 1:
        norm = f"RMSNorm(y * silu(z), eps={eps})"
    else:
        norm = f"merge_heads(HeadRMSNorm(split_heads(y * silu(z), groups), eps={eps}))"
    tie = "true" if config.tie_word_embeddings else "false"
    final_eps = final_norm_eps(config, "layer_norm_epsilon", "RMSNorm")
    return f'''\
# Mamba-2 imported from Hugging Face transformers ({HF_CLASS}), at the checkpoint's sizes:
# one mixer per block, no MLP. x, B and C pass a short causal convolution and {act}; the
# SSD scan mixes over time with a per-head decay; the output is gated by silu(z) and
# normalised in {groups} group(s).
design mamba2 "Mamba-2 block: short convolution, SSD scan over heads, gated RMSNorm"
scaffold(final_norm=RMSNorm, tie_embeddings={tie}{final_eps})

block(x: seq[D]) -> seq[D] {{
    """A single pre-norm residual Mamba-2 mixer."""
    return x + Mamba2(RMSNorm(x, eps={eps}))
}}

unit Mamba2(
    x: seq[D],
    expand: int = {int_range(config.expand, 1, 4)},
    head_size: int = {int_set(config.head_dim, (16, 32, 64, 128))},
    state: int = {int_range(config.state_size, 16, 256)},
    groups: int = {int_set(groups, (1, 2, 4))},
    kernel: int = {int_range(config.conv_kernel, 2, 8)},
) -> seq[D] {{
    """SSD with expand * D channels in heads of head_size; B and C shared within groups."""
    inner = expand * D
    heads = inner / head_size
    z = Linear(x, inner{linear_bias})
    xs = {act}(causal_conv(Linear(x, inner{linear_bias}), kernel))
    b = split_heads({act}(causal_conv(Linear(x, groups * state{linear_bias}), kernel)), groups)
    c = split_heads({act}(causal_conv(Linear(x, groups * state{linear_bias}), kernel)), groups)
    dt = Linear(x, heads{linear_bias})
    y = merge_heads(ssd(split_heads(xs, heads), dt, b, c))
    return Linear({norm}, D{linear_bias})
}}
'''


def _require_supported(config) -> None:
    inner = int(config.expand * config.hidden_size)
    require(inner == config.expand * config.hidden_size, config, "expand", config.expand,
            "the inner width expand * hidden_size must be a whole number")
    require(config.num_heads * config.head_dim == inner, config, "num_heads", config.num_heads,
            "must equal expand * hidden_size / head_dim")
    require(config.use_conv_bias, config, "use_conv_bias", config.use_conv_bias,
            "causal_conv always has a bias")
    low, high = config.time_step_limit
    # softplus(dt) > 0, so a lower limit <= 0 clamps nothing; any other limit changes dt
    require(low <= 0 and high == math.inf, config, "time_step_limit", tuple(config.time_step_limit),
            "ssd does not clamp dt")
    # residual_in_fp32 is a no-op in float32, the dtype of the model we build


def weights(hf_model, config) -> dict:
    """Our state dict from the HF one. in_proj is fused [z | x | B | C | dt] along its
    output features and conv1d runs over x | B | C jointly (depthwise, so it splits by
    channel); we hold one Linear and one causal_conv per part."""
    theirs = hf_model.state_dict()
    inner, bc = config.num_heads * config.head_dim, config.n_groups * config.state_size
    out = {"embedding.weight": theirs["backbone.embeddings.weight"], "lm_head.weight": theirs["lm_head.weight"]}
    copy_module(out, "norm", theirs, "backbone.norm_f.")
    for i in range(config.num_hidden_layers):
        src, dst = f"backbone.layers.{i}.", _MIXER.format(i=i)
        copy_module(out, f"blocks.{i}.rms_norm", theirs, src + "norm.")
        projections = [dst + n for n in ("z", "linear", "linear_2", "linear_3", "dt")]
        for suffix in ("weight", "bias") if config.use_bias else ("weight",):
            split_rows(out, projections, theirs[f"{src}mixer.in_proj.{suffix}"],
                       [inner, inner, bc, bc, config.num_heads], suffix)
        convs = [dst + n for n in ("causal_conv", "causal_conv_2", "causal_conv_3")]
        for suffix in ("weight", "bias"):
            split_rows(out, convs, theirs[f"{src}mixer.conv1d.{suffix}"], [inner, bc, bc], suffix)
        for name in ("A_log", "dt_bias", "D"):
            out[f"{dst}y.{name}"] = theirs[f"{src}mixer.{name}"]
        gain = theirs[src + "mixer.norm.weight"]
        if config.n_groups == 1:
            out[dst + "rms_norm.weight"] = gain
        else:  # HeadRMSNorm holds its gain per group: [groups, inner / groups]
            out[dst + "head_rms_norm.weight"] = gain.view(config.n_groups, -1)
        copy_module(out, dst + "linear_4", theirs, src + "mixer.out_proj.")
    return out
