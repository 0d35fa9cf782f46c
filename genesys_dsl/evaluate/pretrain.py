"""Pretrain a design on the corpus, once per evaluation; the suites that measure a
language model (perplexity, lm-evaluation-harness) share the result."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .context import EvalContext
from .data import Corpus, lm_batches, load_corpus
from .suite import EvaluationError, EvaluationFailed
from .tokenizers import Tokenizer, get_tokenizer
from .trainer import TrainResult, train


@dataclass
class Pretrained:
    model: torch.nn.Module  # in eval mode
    tokenizer: Tokenizer
    corpus: Corpus
    result: TrainResult
    tokens: int  # trained on
    wall_seconds: float
    context_length: int  # of the training windows


def pretrain(ctx: EvalContext) -> Pretrained:
    """Train a fresh model of ctx.design on the corpus with ctx.train. With a work_dir the
    run checkpoints under <work_dir>/pretrain and an interrupted evaluation resumes
    there. Raises EvaluationFailed when training diverges or turns non-finite."""
    check_vocabulary(get_tokenizer(ctx.data.tokenizer), ctx.scale.vocab_size, ctx.scale.name)  # before encoding
    corpus = load_corpus(ctx.data)
    context_length = ctx.train.context_length or ctx.scale.context_length
    model = ctx.model(context_length=context_length)
    batches = lm_batches(corpus.train, ctx.train.batch_size, context_length, seed=ctx.seed)
    result = train(model, batches, ctx.train, seed=ctx.seed, device=ctx.device,
                   checkpoint_dir=ctx.subdir("pretrain"), progress=ctx.progress,
                   description=f"pretrain {ctx.design.name} @ {ctx.scale.name}")
    if not result.ok:
        raise EvaluationFailed(result.status, f"pretraining {ctx.design.name} at scale {ctx.scale.name} "
                                              f"(seed {ctx.seed}) failed: {result.reason}")
    model.eval()
    return Pretrained(model=model, tokenizer=corpus.tokenizer, corpus=corpus, result=result,
                      tokens=result.tokens, wall_seconds=result.wall_seconds, context_length=context_length)


def check_vocabulary(tokenizer: Tokenizer, vocab_size: int, scale: str) -> None:
    """A model can only read ids below its vocabulary size."""
    if tokenizer.vocab_size > vocab_size:
        raise EvaluationError(f"tokenizer '{tokenizer.name}' has {tokenizer.vocab_size:,} tokens but scale "
                              f"'{scale}' has a vocabulary of {vocab_size:,}; use a scale with vocab_size >= "
                              f"{tokenizer.vocab_size:,}, or the 'byte' tokenizer (256 tokens)")
