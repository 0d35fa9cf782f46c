"""Peak memory of one call (a training step), on CUDA or on the CPU.

CUDA: the caching allocator's own high-water mark, `torch.cuda.max_memory_allocated`,
less what was allocated before the step (other models may share the device).

CPU: torch keeps no allocator statistics there (and tracemalloc does not see its
allocations), so `LiveBytes` counts tensor storages instead: a dispatch mode sees
every aten operator of the step (forward, backward and the optimizer), adds the
storage of each new output, and a weak-reference finalizer subtracts it when the
last tensor using it dies. Storages that existed before the step (parameters,
optimizer state) are added as a constant, on both devices. Limits: memory a kernel allocates and
frees internally (workspaces), allocator rounding and fragmentation, and non-tensor
memory are not counted; in-place resizes keep their first size. So the figure is a
lower bound of what the allocator holds, good for comparing designs on one machine.
"""

from __future__ import annotations

import weakref
from typing import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .trace import tensors


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage allocated inside the mode and still alive; `peak` is the maximum."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors alive that use it]
        self.now = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        given = {storage_address(t) for t in tensors((args, kwargs))}
        for t in tensors(out):
            self._track(t, given)
        return out

    def _track(self, t: torch.Tensor, given: set[int]) -> None:
        address = storage_address(t)
        entry = self.live.get(address)
        if entry is None:
            if address in given or address == 0:
                return  # in place or a view of memory from before the step: nothing new
            nbytes = t.untyped_storage().nbytes()
            entry = self.live[address] = [nbytes, 0]
            self.now += nbytes
            self.peak = max(self.peak, self.now)
        entry[1] += 1
        weakref.finalize(t, self._release, address)

    def _release(self, address: int) -> None:
        entry = self.live.get(address)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.now -= entry[0]
                del self.live[address]


def storage_address(t: torch.Tensor) -> int:
    """Where a tensor's storage starts; 0 for tensors without one (meta, sparse), never counted."""
    try:
        return t.untyped_storage().data_ptr() if t.device.type != "meta" else 0
    except (RuntimeError, NotImplementedError):
        return 0


def resident_bytes(held: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `held` (tied weights count once)."""
    storages = {storage_address(t): t.untyped_storage().nbytes() for t in held}
    storages.pop(0, None)
    return sum(storages.values())


def peak_bytes(step: Callable[[], None], device: torch.device, held: Callable[[], Iterable[torch.Tensor]]) -> int:
    """The peak memory while `step()` runs; `held()` gives the tensors alive before it."""
    before = resident_bytes(held())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return before + torch.cuda.max_memory_allocated(device) - start
    with LiveBytes() as meter:
        step()
    return before + meter.peak
