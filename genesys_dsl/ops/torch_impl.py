"""How a primitive points at its torch implementation (see the contract in
plugins/genesys_primitives/torch_ops/__init__.py and docs/plugins.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Every generated file starts with this; implementations may rely on nothing else.
PRELUDE = """\
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
"""


@dataclass(frozen=True)
class TorchImpl:
    """Where a primitive's torch implementation lives, and what it needs copied with it.

    `target` is "module:qualname" (imported lazily, so checking specs never imports
    torch); `kind` is "module" (an nn.Module built with the bound sizes) or
    "function" (called with tensors, then scalar keyword arguments); `uses` lists
    helper objects ("module:qualname") whose source must precede it.
    """

    target: str
    kind: str  # "module" | "function"
    uses: tuple[str, ...] = field(default=())
