"""The perplexity suite and the pretraining it scores: a trained design beats an
untrained one, scores are finite and normalisable, pretraining resumes and fails cleanly."""

import math

import pytest
import torch

from genesys_benchmarks import perplexity
from genesys_dsl.evaluate import EvalContext, EvaluationError, EvaluationFailed, TrainConfig
from genesys_dsl.evaluate.data import load_corpus
from genesys_dsl.evaluate.pretrain import pretrain
from genesys_dsl.plugins import benchmark_registry
from genesys_dsl.scales import get_scale
from genesys_dsl.syntax.files import read_design
from paths import SPECS

torch.set_num_threads(1)

CONTEXT = 64
OPTIONS = {"perplexity": {"max_tokens": 4096}}
TRANSFORMER = read_design(SPECS / "transformer.gab")


def context(tokens: int = 40 * 8 * CONTEXT, lr: float = 3e-3, **changes) -> EvalContext:
    settings = dict(design=TRANSFORMER, scale=get_scale("cpu-xs"), seed=0, device=torch.device("cpu"),
                    train=TrainConfig(tokens=tokens, batch_size=8, context_length=CONTEXT, lr=lr,
                                      warmup_fraction=0.1),
                    options=OPTIONS)
    return EvalContext(**(settings | changes))


@pytest.fixture(scope="module")
def trained_context():
    ctx = context()
    ctx.pretrained()
    return ctx


def test_the_suite_is_registered_by_the_builtin_plugin():
    suite = benchmark_registry().lookup("perplexity")
    assert suite.plugin == "benchmarks"
    assert [t.name for t in suite.tasks] == ["bits_per_byte", "perplexity"]
    assert [t.name for t in suite.chosen(None)] == ["bits_per_byte"]  # both normalise alike: count once


def test_a_trained_design_scores_better_than_an_untrained_one(trained_context):
    ctx = trained_context
    pre = ctx.pretrained()
    untrained = ctx.model(context_length=CONTEXT)
    corpus = pre.corpus
    lengths = corpus.tokenizer.byte_lengths()
    nats, _, scored_bytes = perplexity.heldout_loss(untrained, corpus.heldout, CONTEXT, 4096, 8, lengths,
                                                         ctx.device)
    untrained_bpb = nats / math.log(2) / scored_bytes
    (bpb,) = perplexity.run(ctx, ["bits_per_byte"])
    # an untrained model is no better than a uniform guess (its unit-variance logits make it a bit worse)
    assert bpb.random_score * 0.95 < untrained_bpb < bpb.random_score * 1.25
    assert bpb.score < untrained_bpb - 1.5
    assert 0.15 < bpb.normalized < 1


def test_scores_are_finite_and_both_tasks_normalise_alike(trained_context):
    scores = perplexity.run(trained_context, ["bits_per_byte", "perplexity"])
    bpb, ppl = scores
    assert [s.task for s in scores] == ["bits_per_byte", "perplexity"]
    assert (bpb.metric, ppl.metric) == ("bits_per_byte", "log_perplexity")
    for score in scores:
        data = score.to_dict()
        assert all(math.isfinite(data[k]) for k in ("score", "random_score", "best_score", "normalized"))
        assert data["details"]["tokens"] == 4096 - 4096 % CONTEXT and data["details"]["tokenizer"] == "byte"
    assert bpb.random_score == pytest.approx(8.0) and ppl.random_score == pytest.approx(math.log(256))
    assert ppl.details["perplexity"] == pytest.approx(math.exp(ppl.score))
    assert bpb.normalized == pytest.approx(ppl.normalized)  # byte tokens: bits/byte = nats/token / ln 2


def test_bad_options_are_named(trained_context):
    ctx = context(options={"perplexity": {"max_token": 10}}, _pretrained=trained_context.pretrained())
    with pytest.raises(EvaluationError, match=r"no option 'max_token'; its options: max_tokens, batch_size"):
        perplexity.run(ctx, ["bits_per_byte"])
    ctx = context(options={"perplexity": {"batch_size": 0}}, _pretrained=trained_context.pretrained())
    with pytest.raises(EvaluationError, match="batch_size must be a positive integer, got 0"):
        perplexity.run(ctx, ["bits_per_byte"])


def test_pretraining_resumes_from_the_work_folder(tmp_path):
    first = context(tokens=6 * 8 * CONTEXT, work_dir=tmp_path).pretrained()
    assert (tmp_path / "pretrain" / "train.pt").exists()
    again = context(tokens=6 * 8 * CONTEXT, work_dir=tmp_path).pretrained()
    assert again.result.losses == first.result.losses
    assert again.wall_seconds == first.wall_seconds  # nothing was trained the second time
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_design_that_cannot_train_fails_with_its_reason():
    with pytest.raises(EvaluationFailed, match="pretraining transformer at scale cpu-xs") as caught:
        pretrain(context(tokens=20 * 8 * CONTEXT, lr=50.0))
    assert caught.value.reason in ("diverged", "nonfinite")


def test_a_tokenizer_larger_than_the_scale_is_refused_before_training():
    ctx = context()
    ctx.data = ctx.data.model_copy(update={"tokenizer": "gpt2"})
    with pytest.raises(EvaluationError, match="'gpt2' has 50,257 tokens but scale 'cpu-xs'"):
        pretrain(ctx)


def test_the_corpus_is_loaded_once_per_process():
    ctx = context()
    assert load_corpus(ctx.data) is load_corpus(ctx.data)
