"""Import Hugging Face transformers models as designs: GPT-2, Llama and Mamba-2.

    design, model = from_hf(hf_model)

`design` is the model's block written in GAB at the checkpoint's own sizes (heads,
key/value heads, MLP width, rotary base, norm eps, state size, ...), after the seed
specs; `unparse(design)` prints it and `check` accepts it. `model` is
`build(design, <the config's d_model, n_layers, vocab_size, context_length>)` with the
HF weights loaded, and gives the HF model's logits (float32). A config that uses
something a design cannot express exactly raises `UnsupportedConfig`, naming the field.

Needs the `hf` extra (transformers); importing this module does not import it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .. import ir
from ..check import check
from ..compile import build
from ..scales import get_scale
from ..syntax.parse import parse
from . import gpt2, llama, mamba2
from .common import UnsupportedConfig

__all__ = ["UnsupportedConfig", "from_hf", "spec_of"]

ARCHITECTURES: tuple[ModuleType, ...] = (gpt2, llama, mamba2)


def _architecture(hf_model: Any) -> ModuleType:
    """The importer for the model's class (subclasses included)."""
    import transformers

    for arch in ARCHITECTURES:
        if isinstance(hf_model, getattr(transformers, arch.HF_CLASS)):
            return arch
    supported = ", ".join(arch.HF_CLASS for arch in ARCHITECTURES)
    raise TypeError(f"from_hf imports {supported}; got {type(hf_model).__name__}")


def spec_of(hf_model: Any) -> str:
    """The GAB text of the model's design (raises UnsupportedConfig)."""
    return _architecture(hf_model).spec(hf_model.config)


def from_hf(hf_model: Any) -> tuple[ir.Design, Any]:
    """(design, our model with the HF weights) for a GPT2LMHeadModel, LlamaForCausalLM or
    Mamba2ForCausalLM. Raises UnsupportedConfig when the config cannot be expressed exactly."""
    arch = _architecture(hf_model)
    config = hf_model.config
    text = arch.spec(config)
    design = parse(text, filename=f"<{arch.HF_CLASS}>")
    scale = get_scale(arch.scale(config))
    report = check(design, [scale])
    if report.diagnostics:  # a value the primitives reject, e.g. a rotary base outside their domain
        raise UnsupportedConfig(f"{type(config).__name__}: the imported design does not check clean at "
                                f"{scale.describe()}:\n{report.render()}")
    model = build(design, scale)  # its initial weights are all replaced below
    model.load_state_dict(arch.weights(hf_model, config), strict=True)
    return design, model
