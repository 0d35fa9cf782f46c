"""The fused LM head + cross-entropy: the same loss and gradients as the logits path
(mean and sum, ignored targets, any chunking, a bias, the tied embedding of a built
model), no gradient work in eval, and a trainer that uses it and keeps its guarantees."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genesys_dsl.compile import build
from genesys_dsl.evaluate import TrainConfig, trainer
from genesys_dsl.evaluate.loss import IGNORE_INDEX, fused_lm_loss, lm_loss
from genesys_dsl.evaluate.trainer import CHECKPOINT_FILE, fused_head, train
from genesys_dsl.scales import get_scale
from genesys_dsl.syntax.files import read_design
from paths import SPECS

torch.set_num_threads(1)

VOCAB = 1000
WIDTH = 32
TOKENS = 300


def inputs(seed: int = 0, tokens: int = TOKENS, ignored_every: int | None = 5, bias: bool = False):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, WIDTH, generator=gen).requires_grad_()
    weight = (0.2 * torch.randn(VOCAB, WIDTH, generator=gen)).requires_grad_()
    b = torch.randn(VOCAB, generator=gen).requires_grad_() if bias else None
    targets = torch.randint(0, VOCAB, (tokens,), generator=gen)
    if ignored_every:
        targets[::ignored_every] = IGNORE_INDEX
    return hidden, weight, b, targets


def loss_and_grads(loss_fn, hidden, weight, bias, targets, reduction):
    wrt = [hidden, weight] + ([bias] if bias is not None else [])
    loss = loss_fn(hidden, weight, bias, targets, reduction)
    return loss.detach(), torch.autograd.grad(loss, wrt)


def unfused(hidden, weight, bias, targets, reduction):
    return lm_loss(F.linear(hidden, weight, bias), targets, reduction)


def fused(chunk_tokens):
    def loss(hidden, weight, bias, targets, reduction):
        return fused_lm_loss(hidden, weight, targets, reduction, bias=bias, chunk_tokens=chunk_tokens)

    return loss


def assert_same(expected, actual):
    (loss_a, grads_a), (loss_b, grads_b) = expected, actual
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert b.dtype == a.dtype and b.shape == a.shape
        # float32 rounding of sums over hundreds of tokens: relative to the gradient's scale,
        # and never below that of unit-sized terms (a gradient can be tiny: vocab 2, one token)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6 * max(1.0, float(a.abs().max())))


# ------------------------------------------------------------------ parity with the logits path


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_loss_and_both_gradients_equal_the_logits_path(reduction, bias):
    args = inputs(bias=bias)  # 60 of 300 targets ignored; 240 scored tokens in chunks of 64: 3 full + 48
    assert_same(loss_and_grads(unfused, *args, reduction), loss_and_grads(fused(64), *args, reduction))


def test_batched_hidden_states_keep_their_shape():
    hidden, weight, _, targets = inputs(tokens=2 * 150)
    hidden = hidden.detach().reshape(2, 150, WIDTH).requires_grad_()
    targets = targets.reshape(2, 150)
    expected = loss_and_grads(unfused, hidden, weight, None, targets, "mean")
    actual = loss_and_grads(fused(100), hidden, weight, None, targets, "mean")
    assert actual[1][0].shape == (2, 150, WIDTH)
    assert_same(expected, actual)


def test_every_chunk_size_gives_the_same_result():
    args = inputs()
    expected = loss_and_grads(unfused, *args, "sum")
    for chunk in (1, 7, 240, 1000):  # one token, not dividing, exactly the scored tokens, more than all
        assert_same(expected, loss_and_grads(fused(chunk), *args, "sum"))


def test_tied_embedding_gradient_adds_both_uses_through_a_built_model():
    scale = get_scale("cpu-xs").model_copy(update={"vocab_size": VOCAB, "context_length": 64})
    design = read_design(SPECS / "transformer.gab")
    ids = torch.randint(0, VOCAB, (2, 65), generator=torch.Generator().manual_seed(1))
    inputs_, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[0, :10] = IGNORE_INDEX
    grads = []
    for use_fused in (False, True):
        model = build(design, scale, seed=0)
        assert model.lm_head.weight is model.embedding.weight  # tied
        if use_fused:
            loss = fused_lm_loss(model.hidden(inputs_), model.lm_head.weight, targets, chunk_tokens=50)
        else:
            loss = lm_loss(model(inputs_), targets)
        loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    logits_grads, fused_grads = grads
    assert logits_grads.keys() == fused_grads.keys() and "embedding.weight" in fused_grads
    for name, expected in logits_grads.items():
        torch.testing.assert_close(fused_grads[name], expected, rtol=1e-4, atol=1e-6, msg=name)


def test_hidden_is_what_the_head_reads():
    scale = get_scale("cpu-xs").model_copy(update={"vocab_size": VOCAB})
    model = build(read_design(SPECS / "gpt2.gab"), scale, seed=0)
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(ids), model.lm_head(model.hidden(ids)))
    assert "def hidden(self, input_ids):" in model.genesys_source


@settings(max_examples=40, deadline=None)
@given(tokens=st.integers(1, 70), width=st.integers(1, 12), vocab=st.integers(2, 60), chunk=st.integers(1, 80),
       ignored=st.lists(st.booleans(), min_size=70, max_size=70), reduction=st.sampled_from(["mean", "sum"]),
       seed=st.integers(0, 2**16))
def test_any_shape_and_mask_matches_the_logits_path(tokens, width, vocab, chunk, ignored, reduction, seed):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, width, generator=gen).requires_grad_()
    weight = torch.randn(vocab, width, generator=gen).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), generator=gen)
    targets[torch.tensor(ignored[:tokens])] = IGNORE_INDEX
    expected = loss_and_grads(unfused, hidden, weight, None, targets, reduction)
    actual = loss_and_grads(fused(chunk), hidden, weight, None, targets, reduction)
    if math.isnan(expected[0]):  # every target ignored: "mean" is 0/0, as F.cross_entropy's; no gradient
        assert math.isnan(actual[0]) and all(torch.equal(g, torch.zeros_like(g)) for g in actual[1])
    else:
        assert_same(expected, actual)


# ------------------------------------------------------------------ behaviour around the maths


def test_deterministic_on_cpu():
    args = inputs()
    first, second = loss_and_grads(fused(64), *args, "mean"), loss_and_grads(fused(64), *args, "mean")
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))


def test_without_grad_it_gives_the_loss_alone():
    hidden, weight, _, targets = inputs()
    with torch.no_grad():
        loss = fused_lm_loss(hidden, weight, targets)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, unfused(hidden, weight, None, targets, "mean").detach())
    frozen = fused_lm_loss(hidden.detach(), weight.detach(), targets)  # nothing requires grad
    assert frozen.grad_fn is None and torch.equal(frozen, loss)


def test_only_the_inputs_that_require_grad_get_one():
    hidden, weight, _, targets = inputs()
    frozen_head = weight.detach()
    loss = fused_lm_loss(hidden, frozen_head, targets)
    (grad,) = torch.autograd.grad(loss, [hidden])
    (expected,) = torch.autograd.grad(unfused(hidden, frozen_head, None, targets, "mean"), [hidden])
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)


def test_the_incoming_gradient_scales_the_result():
    hidden, weight, _, targets = inputs()
    (fused_grad,) = torch.autograd.grad(fused_lm_loss(hidden, weight, targets, "sum") / 7.0, [weight])
    (expected,) = torch.autograd.grad(unfused(hidden, weight, None, targets, "sum") / 7.0, [weight])
    torch.testing.assert_close(fused_grad, expected, rtol=1e-5, atol=1e-7)


def test_under_bf16_autocast_products_are_bf16_and_gradients_keep_their_dtypes():
    hidden, weight, _, targets = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_lm_loss(hidden, weight, targets)
        reference = lm_loss(F.linear(hidden, weight), targets)  # nn.Linear's bf16 product, float32 loss
    grads = torch.autograd.grad(loss, [hidden, weight])
    expected = torch.autograd.grad(reference, [hidden, weight])
    assert loss.dtype == torch.float32 and [g.dtype for g in grads] == [torch.float32, torch.float32]
    torch.testing.assert_close(loss, reference, rtol=2e-2, atol=0)
    for got, want in zip(grads, expected):  # bf16 products: about 3 significant digits
        assert (got - want).norm() < 2e-2 * want.norm()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_under_cuda_bf16_autocast_it_matches_the_logits_path():
    hidden, weight, _, targets = (t.cuda() if t is not None else None for t in inputs())
    hidden = hidden.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = fused_lm_loss(hidden, weight, targets, chunk_tokens=64)
        reference = lm_loss(F.linear(hidden, weight), targets)
    grads = torch.autograd.grad(loss, [hidden, weight])
    expected = torch.autograd.grad(reference, [hidden, weight])
    assert [g.dtype for g in grads] == [torch.float32, torch.float32]
    torch.testing.assert_close(loss, reference, rtol=2e-2, atol=0)
    for got, want in zip(grads, expected):
        assert (got - want).norm() < 2e-2 * want.norm()


@pytest.mark.parametrize("call, message", [
    (lambda h, w, t: fused_lm_loss(h, w, t, "none"), "unknown reduction 'none'; use one of mean, sum"),
    (lambda h, w, t: fused_lm_loss(h, w[:, :5], t), r"hidden \(300, 32\) and weight \(1000, 5\) do not fit"),
    (lambda h, w, t: fused_lm_loss(h, w, t[:10]), r"targets \(10,\) should have hidden's shape"),
    (lambda h, w, t: fused_lm_loss(h, w, t, chunk_tokens=0), "chunk_tokens must be at least 1"),
    (lambda h, w, t: fused_lm_loss(h, w, torch.full_like(t, VOCAB)),
     r"target 1000 is outside the vocabulary of 1000 tokens \(0..999, or -100"),
])
def test_misuse_is_a_clear_error(call, message):
    hidden, weight, _, targets = inputs()
    with pytest.raises(ValueError, match=message):
        call(hidden, weight, targets)


# ------------------------------------------------------------------ the trainer

LENGTH = 16
BATCH = 8


class LogitsOnly(torch.nn.Module):
    """A user's own module: only logits, no `hidden`, so the trainer takes the logits path."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids)


def tiny_model(seed: int = 0):
    scale = get_scale("cpu-xs").model_copy(update={"vocab_size": 64, "context_length": LENGTH, "n_layers": 1})
    return build(read_design(SPECS / "transformer.gab"), scale, seed=seed)


def batches(step: int):
    gen = torch.Generator().manual_seed(step)
    ids = torch.randint(0, 64, (BATCH, LENGTH + 1), generator=gen)
    targets = ids[:, 1:].clone()
    targets[: BATCH // 2, : LENGTH // 2] = IGNORE_INDEX  # unequal micro-batches
    return ids[:, :-1], targets


def config(steps: int = 12, **changes) -> TrainConfig:
    return TrainConfig(**({"tokens": steps * BATCH * LENGTH, "batch_size": BATCH, "lr": 1e-2,
                          "warmup_fraction": 0.1} | changes))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_trainer_takes_the_fused_path_only_for_a_plain_linear_head():
    model = tiny_model()
    assert fused_head(model) is model.lm_head
    assert fused_head(LogitsOnly(model)) is None
    model.lm_head = torch.nn.Sequential(torch.nn.Linear(32, 64))  # a suite's own head: logits
    assert fused_head(model) is None


def test_the_trainers_loss_curve_equals_the_logits_path(monkeypatch):
    calls = []
    monkeypatch.setattr(trainer, "fused_lm_loss", lambda *a, **k: calls.append(1) or fused_lm_loss(*a, **k))
    fused_model, logits_model = tiny_model(), tiny_model()
    a = train(fused_model, batches, config(), seed=0)
    assert len(calls) == 12  # one per step: the generated model went the fused way
    b = train(LogitsOnly(logits_model), batches, config(), seed=0)
    assert len(calls) == 12
    assert a.ok and b.ok and a.final_loss < 0.8 * a.losses[0]
    assert a.losses == pytest.approx(b.losses, rel=1e-4)
    for name, value in weights(logits_model).items():
        torch.testing.assert_close(weights(fused_model)[name], value, rtol=1e-3, atol=1e-5, msg=name)


def test_fused_training_is_bit_for_bit_repeatable_and_accumulates_like_the_full_batch():
    runs = [(train(m := tiny_model(), batches, config(steps=6), seed=3), weights(m)) for _ in range(2)]
    (first, first_weights), (second, second_weights) = runs
    assert first.losses == second.losses
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    accumulated = train(tiny_model(), batches, config(steps=6, micro_batch_size=3), seed=3)  # 3 + 3 + 2 rows
    assert accumulated.losses == pytest.approx(first.losses, rel=1e-5)


def test_a_resumed_fused_run_equals_an_uninterrupted_one(tmp_path):
    cfg = config(steps=8, checkpoint_every=4)
    uninterrupted = tiny_model()
    expected = train(uninterrupted, batches, cfg, seed=0)

    def dies_at_step_5(step):
        if step == 5:
            raise KeyboardInterrupt
        return batches(step)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), dies_at_step_5, cfg, seed=0, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_FILE).exists()
    resumed_model = tiny_model(seed=7)  # its own weights are replaced by the checkpoint's
    resumed = train(resumed_model, batches, cfg, seed=0, checkpoint_dir=tmp_path)
    assert resumed.losses == expected.losses
    resumed_weights = weights(resumed_model)
    assert all(torch.equal(resumed_weights[k], v) for k, v in weights(uninterrupted).items())
