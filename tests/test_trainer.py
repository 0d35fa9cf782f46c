"""The trainer: learning, determinism, exact resume, accumulation, failure recording,
the learning-rate schedule and weight-decay groups."""

import math

import pytest
import torch

from genesys_dsl.compile import build
from genesys_dsl.evaluate import EvaluationError, TrainConfig
from genesys_dsl.evaluate.trainer import (
    CHECKPOINT_FILE, learning_rate, lm_loss, parameter_groups, step_count, train, warmup_steps,
)
from genesys_dsl.scales import get_scale
from genesys_dsl.syntax.files import read_design
from paths import SPECS

torch.set_num_threads(1)

VOCAB = 32
LENGTH = 16
BATCH = 8


class Bigram(torch.nn.Module):
    """A tiny LM with a matrix, a norm gain and a bias: fast, and it can learn a mapping."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.norm = torch.nn.LayerNorm(16)
        self.head = torch.nn.Linear(16, VOCAB)
        self.poisoned = False  # set: the output turns NaN

    def forward(self, ids):
        logits = self.head(self.norm(self.embed(ids)))
        return logits * math.nan if self.poisoned else logits


def mapping_batches(seed: int = 0, switch_at: int | None = None, log: list | None = None):
    """Random tokens whose target is a fixed permutation of the input; from `switch_at`
    on, a different permutation (the task changes under the model's feet)."""
    first = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(seed))
    second = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(seed + 1))

    def batch(step):
        if log is not None:
            log.append(step)
        inputs = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(seed * 7919 + step))
        table = second if switch_at is not None and step >= switch_at else first
        return inputs, table[inputs]

    return batch


def config(steps: int = 20, **changes) -> TrainConfig:
    settings = dict(tokens=steps * BATCH * LENGTH, batch_size=BATCH, lr=0.05, warmup_fraction=0.1)
    return TrainConfig(**(settings | changes))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_goes_down_for_a_compiled_design():
    scale = get_scale("cpu-xs").model_copy(update={"vocab_size": VOCAB, "context_length": LENGTH})
    model = build(read_design(SPECS / "transformer.gab"), scale, seed=0)
    result = train(model, mapping_batches(), config(steps=25, lr=1e-2), seed=0)
    assert result.status == "ok" and result.reason is None
    assert result.steps == 25 and result.tokens == 25 * BATCH * LENGTH
    assert result.losses[0] > math.log(VOCAB) * 0.8  # starts near a uniform guess
    assert result.final_loss < 0.5 * result.losses[0]
    assert result.wall_seconds > 0


def test_same_seed_same_run_on_cpu():
    runs = []
    for _ in range(2):
        model = Bigram()
        runs.append((train(model, mapping_batches(), config(), seed=3), weights(model)))
    (first, first_weights), (second, second_weights) = runs
    assert first.losses == second.losses
    assert same_weights(first_weights, second_weights)


def test_step_count_rounds_the_token_budget_up():
    cfg = TrainConfig(tokens=1000, batch_size=4)
    assert step_count(cfg, context_length=100) == 3  # 2.5 steps of 400 tokens
    result = train(Bigram(), mapping_batches(), TrainConfig(tokens=1, batch_size=BATCH), seed=0)
    assert result.steps == 1


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    cfg = config(steps=12, checkpoint_every=4)
    uninterrupted = Bigram()
    expected = train(uninterrupted, mapping_batches(), cfg, seed=0)

    class Interrupted(Exception):
        pass

    source = mapping_batches()

    def dies_at_step_6(step):
        if step == 6:
            raise Interrupted
        return source(step)

    with pytest.raises(Interrupted):
        train(Bigram(), dies_at_step_6, cfg, seed=0, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_FILE).exists()  # written at step 4

    requested = []
    resumed_model = Bigram()
    resumed = train(resumed_model, mapping_batches(log=requested), cfg, seed=0, checkpoint_dir=tmp_path)
    trained_steps = requested[1:]  # the first request only reads the batch shape
    assert trained_steps == list(range(4, 12))  # finished steps are not redone
    assert resumed.steps == expected.steps == 12
    assert resumed.losses == expected.losses
    assert same_weights(weights(resumed_model), weights(uninterrupted))

    # a finished run found again is returned as it was, without training
    requested.clear()
    again_model = Bigram(seed=99)
    again = train(again_model, mapping_batches(log=requested), cfg, seed=0, checkpoint_dir=tmp_path)
    assert requested == [0] and again.losses == expected.losses
    assert same_weights(weights(again_model), weights(uninterrupted))


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    train(Bigram(), mapping_batches(), config(steps=4), seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(EvaluationError, match=r"different training settings \(lr\)"):
        train(Bigram(), mapping_batches(), config(steps=4, lr=0.01), seed=0, checkpoint_dir=tmp_path)


def test_gradient_accumulation_equals_the_full_batch():
    full, accumulated = Bigram(), Bigram()
    a = train(full, mapping_batches(), config(steps=8), seed=0)
    b = train(accumulated, mapping_batches(), config(steps=8, micro_batch_size=3), seed=0)  # 3 + 3 + 2 rows
    assert a.losses == pytest.approx(b.losses, rel=1e-5)
    for name, value in weights(full).items():
        torch.testing.assert_close(weights(accumulated)[name], value, rtol=1e-4, atol=1e-5)


def test_accumulation_weights_micro_batches_by_their_targets():
    """Ignored targets (-100) make micro-batches unequal; the step still equals the full batch."""
    source = mapping_batches()

    def half_ignored(step):
        inputs, targets = source(step)
        targets = targets.clone()
        targets[:5, : LENGTH - 2] = -100
        return inputs, targets

    full, accumulated = Bigram(), Bigram()
    a = train(full, half_ignored, config(steps=6), seed=0)
    b = train(accumulated, half_ignored, config(steps=6, micro_batch_size=4), seed=0)
    assert a.losses == pytest.approx(b.losses, rel=1e-5)


def test_a_nan_loss_is_recorded_not_raised():
    model = Bigram()
    source = mapping_batches()

    def poisons_at_step_5(step):
        model.poisoned = step >= 5
        return source(step)

    result = train(model, poisons_at_step_5, config(steps=20), seed=0)
    assert result.status == "nonfinite"
    assert result.steps == 5 and len(result.losses) == 5
    assert "nan" in result.reason and "step 6 of 20" in result.reason
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was not applied


def test_divergence_is_recorded_not_raised():
    # 40 steps, 4 of warmup; the mapping changes at step 15 and the loss jumps
    result = train(Bigram(), mapping_batches(switch_at=15), config(steps=40, lr=0.1), seed=0)
    assert result.status == "diverged"
    assert result.steps == 16  # stopped at the first step on the new mapping
    assert "end of warmup, step 4" in result.reason
    assert result.losses[-1] > 3.0 * result.losses[3]


def test_learning_rate_warms_up_then_follows_a_cosine_to_the_floor():
    cfg = TrainConfig(tokens=1, lr=1.0, min_lr_ratio=0.1, warmup_fraction=0.1)
    total = 100
    assert warmup_steps(cfg, total) == 10
    assert [learning_rate(s, total, cfg) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert learning_rate(10, total, cfg) == pytest.approx(1.0)  # the cosine starts at the peak
    middle = 10 + (total - 10 - 1) / 2
    assert learning_rate(int(middle), total, cfg) == pytest.approx(0.55, abs=0.02)
    assert learning_rate(total - 1, total, cfg) == pytest.approx(0.1)  # ends on the floor
    decay = [learning_rate(s, total, cfg) for s in range(10, total)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    no_warmup = TrainConfig(tokens=1, lr=2.0, warmup_fraction=0.0)
    assert learning_rate(0, 5, no_warmup) == pytest.approx(2.0)


def test_weight_decay_spares_norm_gains_and_biases():
    model = Bigram()
    decayed, spared = parameter_groups(model, weight_decay=0.1)
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(decayed["params"]) == ids([model.embed.weight, model.head.weight])
    assert ids(spared["params"]) == ids([model.norm.weight, model.norm.bias, model.head.bias])


def test_lm_loss_ignores_masked_targets():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0
    targets = torch.tensor([[2, -100, -100]])
    assert lm_loss(logits, targets).item() == pytest.approx(0.0, abs=1e-3)
    assert lm_loss(logits, torch.tensor([[1, -100, -100]])).item() > 9


def test_the_progress_bar_shows_loss_and_speed(capsys):
    train(Bigram(), mapping_batches(), config(steps=3), seed=0, progress=True, description="bigram")
    shown = capsys.readouterr().out
    assert "bigram" in shown and "loss" in shown and "tok/s" in shown


def test_a_batch_of_the_wrong_size_is_a_programming_error():
    with pytest.raises(ValueError, match="expected 4 rows"):
        train(Bigram(), mapping_batches(), config(steps=2, batch_size=4), seed=0)
