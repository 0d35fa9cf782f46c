"""The training loop every suite and the pretraining share.

A run is a fixed number of optimiser steps, each fed by a `BatchSource` that maps the
step index to that step's whole batch. Because the batch depends only on the step,
a run resumed from a checkpoint sees exactly the batches the uninterrupted run would
have seen, and (with the RNG states restored) ends with the same weights.

AdamW with decoupled weight decay on matrices only; linear warmup then a cosine to
lr x min_lr_ratio; gradient clipping; gradient accumulation over micro-batches,
weighted by target count so it equals the full-batch gradient. bf16 autocast only on
CUDA; float32 and deterministic on CPU. A model with `hidden(input_ids)` and an
nn.Linear `lm_head` (every generated model) is scored by the fused LM head + loss
(`loss.fused_lm_loss`), which never stores the [tokens, V] logits; any other model by
cross-entropy on its logits. A run whose loss turns NaN/inf, or climbs
above divergence_factor x the loss at the end of warmup, stops with a recorded
reason instead of raising: a design that cannot train is a result, not a crash.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from .config import TrainConfig
from .loss import IGNORE_INDEX, fused_lm_loss, lm_loss
from .suite import EvaluationError

Batch = tuple[torch.Tensor, torch.Tensor]  # inputs [B, L] int64, targets [B, L] int64 with -100 = ignored
BatchSource = Callable[[int], Batch]  # step index -> that optimiser step's whole batch

FINAL_LOSS_STEPS = 10  # final_loss averages this many last steps (one step's loss is noisy)
CHECKPOINT_FILE = "train.pt"


@dataclass
class TrainResult:
    status: str  # "ok", "diverged", "nonfinite"
    reason: str | None  # a human sentence when not ok
    steps: int
    tokens: int
    wall_seconds: float
    final_loss: float  # mean of the last few steps' losses
    losses: list[float] = field(default_factory=list)  # per step

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0


def step_count(config: TrainConfig, context_length: int) -> int:
    """Optimiser steps needed to see config.tokens tokens (at least one)."""
    return max(1, math.ceil(config.tokens / (config.batch_size * context_length)))


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    return min(total_steps, math.ceil(config.warmup_fraction * total_steps))


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """The learning rate of optimiser step `step` (0-based): linear warmup to config.lr
    over warmup_steps, then a cosine down to lr x min_lr_ratio at the last step."""
    warmup = warmup_steps(config, total_steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    floor = config.lr * config.min_lr_ratio
    decay_steps = total_steps - warmup
    progress = (step - warmup) / (decay_steps - 1) if decay_steps > 1 else 1.0
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (projections, embeddings); leave vectors (norm gains, biases) alone:
    decaying a gain towards zero fights the normalisation it is there to undo."""
    decay, keep = [], []
    for param in model.parameters():  # de-duplicated, so a tied embedding appears once
        if param.requires_grad:
            (decay if param.dim() >= 2 else keep).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.beta1, config.beta2))


def micro_batches(inputs: torch.Tensor, targets: torch.Tensor, size: int | None) -> Iterator[Batch]:
    size = size or inputs.shape[0]
    for start in range(0, inputs.shape[0], size):
        yield inputs[start:start + size], targets[start:start + size]


def train(model: torch.nn.Module, batches: BatchSource, config: TrainConfig, *, seed: int,
          device: torch.device | str | None = None, checkpoint_dir: Path | None = None,
          progress: bool = False, description: str = "") -> TrainResult:
    """Train `model` in place for ceil(config.tokens / (batch_size x L)) steps, L being the
    length of the batches `batches` gives. With checkpoint_dir, the state is saved every
    config.checkpoint_every steps and at the end, and a run finds and resumes from it."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    first_inputs, _ = batches(0)
    total_steps = step_count(config, first_inputs.shape[1])
    optimizer = make_optimizer(model, config)
    state = _RunState(total_steps=total_steps)
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    resumed = checkpoint is not None and checkpoint.exists()
    if resumed:
        state = _resume(checkpoint, model, optimizer, config, total_steps)
    else:
        torch.manual_seed(seed)
    start_step, start_status = state.step, state.status
    was_training = model.training
    model.train()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())
    warmup = warmup_steps(config, total_steps)
    bar = _ProgressBar(description or "training", total_steps, state.step) if progress else None
    started = time.perf_counter()
    try:
        while state.step < total_steps and state.status == "ok":
            lr = learning_rate(state.step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets = batches(state.step)
            if inputs.shape[0] != config.batch_size or targets.shape != inputs.shape:
                raise ValueError(f"the batch source gave inputs {tuple(inputs.shape)} and targets "
                                 f"{tuple(targets.shape)} for step {state.step}; expected "
                                 f"{config.batch_size} rows (config.batch_size) and equal shapes")
            inputs, targets = inputs.to(device), targets.to(device)
            loss = _accumulate(model, inputs, targets, config.micro_batch_size, autocast)
            state.tokens += inputs.numel()
            if not math.isfinite(loss):
                state.stop("nonfinite", f"the loss became {loss} at step {state.step + 1} of {total_steps}")
                break
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if not torch.isfinite(grad_norm):
                state.stop("nonfinite", f"the gradient norm became {grad_norm.item()} at step "
                                        f"{state.step + 1} of {total_steps}")
                break
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.losses.append(loss)
            state.step += 1
            _check_divergence(state, warmup, config.divergence_factor)
            elapsed = state.wall_seconds + time.perf_counter() - started
            if bar is not None:
                bar.advance(loss, state.tokens / elapsed if elapsed > 0 else 0.0)
            if (checkpoint is not None and config.checkpoint_every and state.step % config.checkpoint_every == 0
                    and state.step < total_steps):
                _save(checkpoint, model, optimizer, config, state, elapsed)
    finally:
        if bar is not None:
            bar.close()
        optimizer.zero_grad(set_to_none=True)  # a stopped step leaves no gradients behind
        model.train(was_training)
    worked = not resumed or state.step > start_step or state.status != start_status
    if worked:  # a finished run found again is returned exactly as it was
        state.wall_seconds += time.perf_counter() - started
        if checkpoint is not None:
            _save(checkpoint, model, optimizer, config, state, state.wall_seconds)
    return state.result()


def _accumulate(model, inputs: torch.Tensor, targets: torch.Tensor, micro_batch_size: int | None,
                autocast) -> float:
    """Forward and backward over the step's micro-batches; returns the step's mean loss.
    Each micro-batch's summed loss is divided by the whole batch's target count, so the
    accumulated gradient equals the full batch's however the rows are split."""
    counted = int((targets != IGNORE_INDEX).sum())
    if counted == 0:
        raise ValueError("a training batch has no targets (every target is -100)")
    total = 0.0
    for micro_inputs, micro_targets in micro_batches(inputs, targets, micro_batch_size):
        loss = summed_loss(model, micro_inputs, micro_targets, autocast) / counted
        if torch.isfinite(loss):
            loss.backward()
        total += loss.item()
    return total


def fused_head(model: nn.Module) -> nn.Linear | None:
    """The model's LM head when the fused loss can stand in for `lm_head(hidden(x))`:
    the model has a `hidden` method and its `lm_head` is a plain nn.Linear (a suite may
    swap in another head, as the synthetic tasks' bottleneck does, and a subclass may
    change what forward computes: those get logits)."""
    head = getattr(model, "lm_head", None)
    return head if callable(getattr(model, "hidden", None)) and type(head) is nn.Linear else None


def summed_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, autocast=None) -> torch.Tensor:
    """The summed cross-entropy of the model's predictions for `targets`, fused with the
    LM head where the model allows it (`fused_head`), else on its logits."""
    autocast = autocast if autocast is not None else nullcontext()
    head = fused_head(model)
    if head is None:
        with autocast:
            logits = model(inputs)
        return lm_loss(logits, targets, reduction="sum")
    with autocast:  # the fused loss takes its products' dtype from autocast, as lm_head would
        return fused_lm_loss(model.hidden(inputs), head.weight, targets, "sum", bias=head.bias)


def _check_divergence(state: _RunState, warmup: int, factor: float) -> None:
    """After warmup, compare each step's loss with the loss of the last warmup step
    (the first step when there is no warmup)."""
    reference_step = max(warmup, 1)
    if state.step <= reference_step:
        return
    reference = state.losses[reference_step - 1]
    loss = state.losses[-1]
    if loss > factor * reference:
        state.stop("diverged", f"the loss rose to {loss:.4g} at step {state.step}, above {factor:g} x "
                               f"{reference:.4g} (the loss at the end of warmup, step {reference_step})")


@dataclass
class _RunState:
    total_steps: int
    step: int = 0  # optimiser steps finished
    tokens: int = 0
    wall_seconds: float = 0.0  # of earlier sessions of this run
    losses: list[float] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None

    def stop(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    def result(self) -> TrainResult:
        tail = self.losses[-FINAL_LOSS_STEPS:]
        final = sum(tail) / len(tail) if tail else math.nan
        return TrainResult(status=self.status, reason=self.reason, steps=self.step, tokens=self.tokens,
                           wall_seconds=self.wall_seconds, final_loss=final, losses=list(self.losses))


# -- checkpoints --------------------------------------------------------------------------------

def _save(path: Path, model, optimizer, config: TrainConfig, state: _RunState, wall_seconds: float) -> None:
    """Write the whole run state to a temporary file, then rename it over the old
    checkpoint: an interruption leaves either the old or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": config.model_dump(),
        "total_steps": state.total_steps, "step": state.step, "tokens": state.tokens,
        "wall_seconds": wall_seconds, "losses": state.losses, "status": state.status, "reason": state.reason,
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _resume(path: Path, model, optimizer, config: TrainConfig, total_steps: int) -> _RunState:
    """Restore a run from its checkpoint; one written for other settings is an error
    rather than a silent mix of two runs."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # data only, never code
    except Exception as err:  # a truncated or foreign file: torch raises several kinds
        raise EvaluationError(f"{path}: cannot read this training checkpoint ({err}); "
                              f"delete it to train from the start") from None
    saved = payload.get("config", {})
    changed = sorted(k for k, v in config.model_dump().items() if saved.get(k) != v)
    if changed or payload.get("total_steps") != total_steps:
        what = ", ".join(changed) if changed else "the batch shape"
        raise EvaluationError(f"{path}: this checkpoint was written with different training settings "
                              f"({what}); delete it or use another work folder")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["cpu_rng"])
    if payload["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return _RunState(total_steps=total_steps, step=payload["step"], tokens=payload["tokens"],
                     wall_seconds=payload["wall_seconds"], losses=list(payload["losses"]),
                     status=payload["status"], reason=payload["reason"])


# -- progress -----------------------------------------------------------------------------------

class _ProgressBar:
    """A rich progress bar showing the loss, tokens/s and the time left."""

    def __init__(self, description: str, total: int, completed: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
            TimeRemainingColumn(), transient=False)
        self.task = self.progress.add_task(description, total=total, completed=completed, loss="-", speed="-")
        self.progress.start()

    def advance(self, loss: float, tokens_per_second: float) -> None:
        self.progress.update(self.task, advance=1, loss=f"{loss:.3f}", speed=f"{tokens_per_second:,.0f}")

    def close(self) -> None:
        self.progress.stop()
