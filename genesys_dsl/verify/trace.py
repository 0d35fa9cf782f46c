"""Record what every unit and primitive computes during one forward pass.

Units, learned primitives and the scaffold are nn.Modules, seen through forward
hooks. Primitives without parameters are plain functions of the generated module,
so they are wrapped in its namespace while the trace is active (the model is our
own fresh build, and the originals are put back on exit). Calls are recorded in
the order they *finish*: a child finishes before its parent, so the first call
with some property (a leak, an inf) is the innermost place where it appears.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class Call:
    name: str  # "blocks.0.attention", or "blocks.0.attention: causal_attention()" for a function
    what: str  # "unit Attention", "primitive causal_attention", "torch Embedding"
    inputs: list[Any]  # `keep` applied to each tensor argument
    outputs: list[Any]  # `keep` applied to each tensor of the result


def tensors(value) -> list[torch.Tensor]:
    """The tensors in an argument or result (nested tuples, lists and dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    return []


class Trace:
    """`with Trace(model, primitives, keep) as trace: model(ids)`, then `trace.calls`."""

    def __init__(self, model: nn.Module, primitives: set[str], keep: Callable[[torch.Tensor], Any]):
        self.model = model
        self.primitives = primitives
        self.keep = keep
        self.calls: list[Call] = []
        self._stack: list[str] = []
        self._handles: list = []
        self._patched: dict[str, Callable] = {}
        self._namespace = type(model).forward.__globals__  # the generated module's globals
        self._counts: dict[tuple[str, str], int] = {}

    def describe(self, module: nn.Module) -> str:
        cls = type(module).__name__
        if cls in self.primitives:
            return f"primitive {cls}"
        if type(module).__module__ == self._namespace.get("__name__"):
            return "scaffold" if module is self.model else f"unit {cls}"
        return f"torch {cls}"

    def __enter__(self) -> "Trace":
        for name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._enter_module(name)))
            self._handles.append(module.register_forward_hook(self._leave_module(name, self.describe(module)),
                                                              with_kwargs=True))
        for name in self.primitives:
            fn = self._namespace.get(name)
            if inspect.isfunction(fn):
                self._patched[name] = fn
                self._namespace[name] = self._wrap(name, fn)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._namespace.update(self._patched)
        self._handles, self._patched = [], {}

    def _enter_module(self, name: str):
        def hook(module, args):
            self._stack.append(name)

        return hook

    def _leave_module(self, name: str, what: str):
        def hook(module, args, kwargs, output):
            self._stack.pop()
            self._record(name or "(the whole model)", what, (args, kwargs), output)

        return hook

    def _wrap(self, name: str, fn: Callable) -> Callable:
        def traced(*args, **kwargs):
            output = fn(*args, **kwargs)
            owner = self._stack[-1] if self._stack else ""
            n = self._counts[owner, name] = self._counts.get((owner, name), 0) + 1
            label = f"{owner}: {name}()" + (f" #{n}" if n > 1 else "")
            self._record(label, f"primitive {name}", (args, kwargs), output)
            return output

        return traced

    def _record(self, name: str, what: str, inputs, output) -> None:
        self.calls.append(Call(name, what, [self.keep(t) for t in tensors(inputs)],
                               [self.keep(t) for t in tensors(output)]))
