"""Triton implementations of the built-in primitives' hot paths.

A primitive may have a Triton implementation beside its torch one. The compiler
copies it, as source text, into the generated model file in place of the torch
implementation when the backend is `triton` (or `auto` on a CUDA device), so a
compiled design then needs torch and triton and nothing else. The rules every
implementation here (and in a third-party plugin) follows:

* Registration: the plugin's `register_primitives` sets the primitive's `triton`
  field to the name of a module (here `genesys_primitives.triton_ops.<catalog
  module>`) whose `IMPLEMENTATIONS` maps primitive names to `TritonImpl` records.
  A primitive missing from that dict simply keeps its torch implementation. The
  module may import triton at the top: it is imported only when a Triton backend
  is chosen.
* A drop-in: `TritonImpl.target` is one top-level function or `nn.Module`
  subclass named exactly like the primitive, of the same kind as the torch
  implementation, with the same constructor keywords, the same parameters (names,
  shapes, and initialised in the same order with the same calls, so one seed gives
  the same weights on either backend and checkpoints move between them) and the
  same forward signature and output dtype. Generated code is identical apart from
  which source is copied.
* Self-contained source: the target's source must run given `TRITON_PRELUDE`
  (math, torch, nn, F, triton, tl) plus the helpers listed in `uses`, copied
  before it in that order and once per file: the `@triton.jit` kernels, the
  `torch.autograd.Function` that launches them, and any plain helpers (torch_ops
  helpers may be listed too, e.g. for a reference fallback). No other imports, no
  module-level state. Every copied top-level name lands in one namespace, so
  prefix private helpers with the op's name or its family's (`_rms_norm_fwd_kernel`,
  not `_fwd_kernel`; `_chunked_` for the helpers the chunked mixers share, in
  chunked.py); the compiler refuses two different helpers with one name.
* Forward and backward: differentiable in every tensor input and parameter
  (a `torch.autograd.Function` whose backward runs kernels too). Inputs may be
  non-contiguous; any batch >= 1 and any length >= 1 (mask the tails: lengths
  that are not a multiple of the block size are tested). float32, float16 and
  bfloat16 inputs; accumulate in float32, and give float32 `tl.dot`s
  `input_precision="ieee"` (torch's float32 matmuls are full precision by default;
  Triton's default, TF32, kept about 3 digits and failed the float32 parity tests on
  an H100). float64 (the causality check's) may be
  handed to the torch implementation, as the mixers do. Deterministic: reduce partial sums
  (e.g. a weight gradient) in a fixed order, not with atomics.
* Shapes: `TritonImpl.supports(bindings)` receives the primitive's names bound at
  a scale (as the params/flops formulas do, plus `L`, the context length) and
  returns None when the kernel takes them, otherwise a short sentence saying why
  not ("W = 32768 is above the 16384 features one program normalises"). With the
  `triton` backend an unsupported shape is a compile error naming the primitive
  and that sentence; with `auto` that primitive falls back to torch.
* Where it runs: CUDA tensors, or CPU tensors under Triton's interpreter
  (`TRITON_INTERPRET=1` set before the kernels are defined, i.e. before the
  generated file runs or this package is imported). The interpreter is exact in
  float32 and wrong in bfloat16, so CPU parity tests use float32. `auto` picks
  Triton where the model is built; a model built on a CUDA machine may still be
  run on CPU tensors, so on a tensor the kernels cannot take (not CUDA, and the
  kernel is a compiled `triton.runtime.JITFunction`) compute what the torch
  implementation computes (every module here lists the torch helpers in `uses`).
* Tests and figures: every implementation has forward and gradient parity tests
  against its torch implementation under the interpreter (float32, small shapes,
  batch > 1, lengths not a multiple of the block) and bfloat16 tolerance tests
  that run only where CUDA exists (tests/test_triton_*.py), and a line in
  benchmarks/bench_kernels.py against its torch implementation (and
  flash-linear-attention's kernel where there is one).

Optional fusion: `TritonImpl(residual_norm=True)` marks a norm module with a
`forward_residual(x, residual)` method returning `(x + residual, self(x + residual))`
from one pass over memory. The compiler then writes `h = a + b` followed, in the
next statement, by that norm of `h` as one call: `h, h_normed = self.norm.forward_residual(a, b)`.
"""

from genesys_dsl.ops.triton_impl import TRITON_PRELUDE, TritonImpl, always

__all__ = ["TRITON_PRELUDE", "TritonImpl", "always"]
