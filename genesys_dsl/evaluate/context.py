"""What a benchmark suite is given: the design, its scale and seed, and two ways to
get models: a fresh seeded one (for suites that train on their own data) and the
design pretrained on the corpus (shared by every suite of one evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import DataConfig, TrainConfig

if TYPE_CHECKING:
    import torch

    from ..ir import Design
    from ..scales import Scale
    from .pretrain import Pretrained


@dataclass
class EvalContext:
    design: Design
    scale: Scale
    seed: int
    device: torch.device
    train: TrainConfig  # corpus pretraining
    data: DataConfig = field(default_factory=DataConfig)
    work_dir: Path | None = None  # checkpoints live here; None: nothing is written
    progress: bool = False
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # suite name -> its settings
    _pretrained: Pretrained | None = field(default=None, repr=False)

    def model(self, *, vocab_size: int | None = None, context_length: int | None = None, seed: int | None = None):
        """A freshly initialised model of the design at this scale (vocabulary and
        context length overridable), seeded from the evaluation's seed unless given."""
        from ..compile import build

        sc = self.scale.model_copy(update={
            "vocab_size": vocab_size or self.scale.vocab_size,
            "context_length": context_length or self.scale.context_length})
        return build(self.design, sc, seed=self.seed if seed is None else seed).to(self.device)

    def pretrained(self) -> Pretrained:
        """The design trained on the corpus (once per context; resumed from a checkpoint
        under work_dir when one exists). Raises EvaluationFailed if training fails."""
        if self._pretrained is None:
            from .pretrain import pretrain

            self._pretrained = pretrain(self)
        return self._pretrained

    def suite_options(self, suite: str) -> Mapping[str, Any]:
        return self.options.get(suite, {})

    def subdir(self, name: str) -> Path | None:
        """A folder under work_dir for one suite or task's files, or None."""
        if self.work_dir is None:
            return None
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
