"""The perplexity suite: how well the pretrained design predicts the held-out corpus.

Two tasks over the same pass:
- bits_per_byte: cross-entropy in bits per UTF-8 byte of held-out text; comparable
  across tokenizers. Random = a uniform guess over the tokenizer's vocabulary
  (log2(V) bits per token, spread over the corpus's bytes per token); best = 0.
- perplexity: scored as log-perplexity (nats per token; details carry the perplexity
  itself). Random = ln(V), best = 0. Perplexity proper would normalise as
  (V - ppl) / (V - 1), which sits near 1 for any trained model and hides differences.

Both normalise to the same number (1 - model bits / uniform bits), so only
bits_per_byte runs by default, and fitness does not count the corpus twice.

Options (ctx.suite_options("perplexity")): max_tokens (held-out tokens scored,
default 16384), batch_size (windows per forward, default 8).
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch

from genesys_dsl.evaluate import (BenchmarkSuite, EvalContext, EvaluationError, EvaluationFailed, TaskInfo,
                                  TaskScore)
from genesys_dsl.evaluate.trainer import lm_loss

SUITE = "perplexity"
DEFAULT_MAX_TOKENS = 16384
DEFAULT_BATCH_SIZE = 8
OPTIONS = ("max_tokens", "batch_size")
BYTE_VOCAB = 256  # the nominal random scores below are for the default byte tokenizer

TASKS = (
    TaskInfo("bits_per_byte", "bits_per_byte", random_score=math.log2(BYTE_VOCAB), best_score=0.0,
             summary="cross-entropy of the held-out corpus in bits per UTF-8 byte"),
    TaskInfo("perplexity", "log_perplexity", random_score=math.log(BYTE_VOCAB), best_score=0.0,
             summary="log-perplexity (nats per token) of the held-out corpus; details give the perplexity"),
)


def suites() -> list[BenchmarkSuite]:
    return [BenchmarkSuite(name=SUITE, summary="held-out perplexity and bits per byte of the pretrained design",
                           tasks=TASKS, run=run, default_tasks=("bits_per_byte",))]


def run(ctx: EvalContext, task_names: Sequence[str]) -> list[TaskScore]:
    max_tokens, batch_size = _options(ctx)
    pretrained = ctx.pretrained()
    corpus = pretrained.corpus
    started = time.perf_counter()
    nats, tokens, scored_bytes = heldout_loss(pretrained.model, corpus.heldout, pretrained.context_length,
                                              max_tokens, batch_size, corpus.tokenizer.byte_lengths(), ctx.device)
    vocab = corpus.tokenizer.vocab_size
    details = {"tokens": tokens, "bytes": scored_bytes, "tokenizer": corpus.tokenizer.name, "vocab": vocab,
               "corpus": corpus.name, "pretrain_tokens": pretrained.tokens,
               "pretrain_seconds": round(pretrained.wall_seconds, 3),
               "seconds": round(time.perf_counter() - started, 3)}
    nats_per_token = nats / tokens
    measured = {
        "bits_per_byte": (nats / math.log(2) / scored_bytes, math.log2(vocab) * tokens / scored_bytes),
        "perplexity": (nats_per_token, math.log(vocab)),
    }
    scores = []
    for info in (next(t for t in TASKS if t.name == name) for name in task_names):
        score, random_score = measured[info.name]
        extra = {"perplexity": math.exp(nats_per_token)} if info.name == "perplexity" else {}
        scores.append(TaskScore(suite=SUITE, task=info.name, metric=info.metric, score=score,
                                random_score=random_score, best_score=info.best_score, details=details | extra))
    return scores


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, heldout: torch.Tensor, context_length: int, max_tokens: int,
                 batch_size: int, byte_lengths, device: torch.device) -> tuple[float, int, int]:
    """Summed cross-entropy (nats) over the first ~max_tokens held-out tokens, read in
    consecutive windows of context_length; returns (nats, tokens scored, their bytes).
    Windows do not overlap, so the first tokens of each see little context: the same
    view the model had in training, and every token is scored exactly once."""
    span = context_length + 1
    windows = min((len(heldout) - 1) // context_length, max(1, max_tokens // context_length))
    if windows < 1:
        raise EvaluationError(f"the held-out corpus has {len(heldout)} tokens, fewer than one window of {span}; "
                              f"give a longer corpus or a larger heldout_fraction")
    lengths = torch.as_tensor(byte_lengths)
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    nats, tokens, scored_bytes = 0.0, 0, 0
    try:
        for first in range(0, windows, batch_size):
            starts = torch.arange(first, min(first + batch_size, windows)) * context_length
            rows = heldout[starts[:, None] + torch.arange(span)].long()
            inputs, targets = rows[:, :-1].to(device), rows[:, 1:]
            with autocast:
                logits = model(inputs)
            nats += lm_loss(logits, targets.to(device), reduction="sum").item()
            tokens += targets.numel()
            scored_bytes += int(lengths[targets].sum())
    finally:
        model.train(was_training)
    if not math.isfinite(nats):
        raise EvaluationFailed("nonfinite", f"the pretrained model's held-out loss is {nats}")
    return nats, tokens, scored_bytes


def _options(ctx: EvalContext) -> tuple[int, int]:
    options = dict(ctx.suite_options(SUITE))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EvaluationError(f"suite '{SUITE}' has no option {', '.join(map(repr, unknown))}; "
                              f"its options: {', '.join(OPTIONS)}")
    values = []
    for name, default in (("max_tokens", DEFAULT_MAX_TOKENS), ("batch_size", DEFAULT_BATCH_SIZE)):
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EvaluationError(f"suite '{SUITE}' option {name} must be a positive integer, got {value!r}")
        values.append(value)
    return values[0], values[1]
