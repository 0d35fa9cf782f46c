"""Training settings, as a ladder rung or a user's config file states them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """How one model is trained. `tokens` is the total budget; the number of optimiser
    steps is tokens / (batch_size x context_length)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int = Field(gt=0)
    batch_size: int = Field(16, gt=0)  # sequences per optimiser step
    micro_batch_size: int | None = Field(None, gt=0)  # sequences per forward (accumulation); None = batch_size
    context_length: int | None = Field(None, gt=0)  # None: the scale's
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # cosine decays to lr x this
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    divergence_factor: float = Field(3.0, gt=1)  # loss above this x the first loss after warmup: diverged
    checkpoint_every: int = Field(200, ge=0)  # optimiser steps between checkpoints (0: none)


class DataConfig(BaseModel):
    """The text a design is pretrained and measured on. `corpus` lists files or folders
    of UTF-8 text (empty: the corpus bundled with genesys-dsl), or one "hf:NAME[:CONFIG]"
    Hugging Face dataset; `tokenizer` is "byte" (256 symbols, no files), "gpt2" (GPT-2
    BPE, 50257 symbols, from bundled files) or the path of a Hugging Face tokenizer.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: tuple[str, ...] = ()
    tokenizer: str = "byte"
    heldout_fraction: float = Field(0.05, gt=0, lt=1)  # of a user corpus; the bundled one has its own split
