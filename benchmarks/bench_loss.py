"""The fused LM head + cross-entropy (`genesys_dsl.evaluate.loss.fused_lm_loss`) against
the logits path it replaces (`lm_loss(hidden @ W^T, targets)`), measured in the same run.

    .venv/bin/python benchmarks/bench_loss.py [--scales 14M 125M] [--batches 1 4]
        [--repeats 3] [--threads 1] [--device cpu|cuda] [--no-step] [--chunks 64 256 1024 4096]

1. The LM head and the loss alone, forward + backward (the gradients of the hidden
   states and of the weight), at each scale's width and vocabulary, for batches of
   `--batches` x the scale's context (2048) tokens. Time: fused and logits runs
   alternate, median of `--repeats` each, after a warm-up of both. Peak memory: on the
   CPU each variant runs in a fresh subprocess, which measures its resident set's
   high-water mark (Linux VmHWM, reset through /proc/self/clear_refs after the inputs
   exist and one warm-up call has run) less its resident set before the call: the
   memory the call itself adds. On CUDA, torch's peak allocation over the call.
2. A whole training step (AdamW, clipping, as genesys_dsl.evaluate.trainer runs it) of
   the transformer seed at the first scale (torch backend), batch 1: the trainer's fused
   path against the same model seen as a plain module with logits only (`LogitsOnly`).
   Same timing and memory measurement.
With `--chunks` instead: the fused loss's time for each chunk size at each scale, for
the largest of `--batches` (how the default chunk was chosen).

Ratios are logits-path / fused: above 1 means the fused loss is faster or smaller. One
torch thread on the CPU unless `--threads` says otherwise; the load average is printed
before and after. bf16 autocast on CUDA, as the trainer; float32 on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.evaluate import TrainConfig  # noqa: E402
from genesys_dsl.evaluate.loss import default_chunk_tokens, fused_lm_loss, lm_loss  # noqa: E402
from genesys_dsl.evaluate.trainer import make_optimizer, summed_loss  # noqa: E402
from genesys_dsl.scales import ConfigError, Scale, get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

VARIANTS = ("logits", "fused")
STEP_SEED = "transformer"


class LogitsOnly(nn.Module):
    """The model as a user's own module would be: logits only, so the trainer's logits path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids)


# ------------------------------------------------------------------ the measured calls


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def head_call(variant: str, width: int, vocab: int, tokens: int, device: torch.device,
              chunk_tokens: int | None = None) -> Callable[[], None]:
    """Forward + backward of the LM head and the loss over `tokens` tokens, as the trainer runs them."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=gen).to(device).requires_grad_()
    weight = (width ** -0.5 * torch.randn(vocab, width, generator=gen)).to(device).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), generator=gen).to(device)

    def run() -> None:
        with autocast(device):
            if variant == "fused":
                loss = fused_lm_loss(hidden, weight, targets, chunk_tokens=chunk_tokens)
            else:
                logits = hidden @ weight.T
        if variant != "fused":
            loss = lm_loss(logits, targets)
        torch.autograd.grad(loss, [hidden, weight])

    return run


def step_call(variant: str, sc: Scale, batch: int, device: torch.device) -> Callable[[], None]:
    """One optimiser step of the transformer seed as the trainer takes it (its `summed_loss`)."""
    model = build(read_design(ROOT / "specs" / f"{STEP_SEED}.gab"), sc, seed=0, backend="torch").to(device)
    optimizer = make_optimizer(model, TrainConfig(tokens=batch * sc.context_length))
    scored = model if variant == "fused" else LogitsOnly(model)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, sc.vocab_size, (batch, sc.context_length + 1), generator=gen).to(device)

    def run() -> None:
        loss = summed_loss(scored, ids[:, :-1], ids[:, 1:], autocast(device)) / ids[:, 1:].numel()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


# ------------------------------------------------------------------ timing and memory


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_ms(calls: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median ms of each call, the calls alternating (so load changes hit them alike), after a warm-up."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(1e3 * seconds(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def added_peak_bytes(fn: Callable[[], None], device: torch.device) -> tuple[int, str]:
    """What one call adds to the peak memory, after a warm-up call (which allocates what
    lasts: the optimiser's state, the allocator's caches), and how it was measured."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated"
    before = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:  # no clear_refs: the process's maximum, which the call's peak exceeds here
        fn()
        return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - 1024 * before, "ru_maxrss"
    fn()
    return 1024 * (_status_kb("VmHWM") - before), "VmHWM"


def probe_in_subprocess(spec: dict) -> tuple[int, str]:
    """Run `added_peak_bytes` for one call in a fresh Python: nothing left over from the other variant."""
    env = os.environ | {"OMP_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, __file__, "--probe", json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe {spec} failed:\n{done.stderr.strip()}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["bytes"], answer["method"]


def probe(spec: dict) -> int:
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if spec["kind"] == "head":
        fn = head_call(spec["variant"], spec["width"], spec["vocab"], spec["tokens"], device, spec["chunk"])
    else:
        fn = step_call(spec["variant"], get_scale(spec["scale"]), spec["batch"], device)
    used, method = added_peak_bytes(fn, device)
    print(json.dumps({"bytes": used, "method": method}))
    return 0


def peak_bytes(spec: dict, device: torch.device) -> tuple[dict[str, int], str]:
    """Each variant's added peak memory: fresh subprocesses on the CPU, in this process on CUDA."""
    found, method = {}, ""
    for variant in VARIANTS:
        one = spec | {"variant": variant}
        if device.type == "cuda":
            fn = (head_call(variant, one["width"], one["vocab"], one["tokens"], device, one["chunk"])
                  if one["kind"] == "head"
                  else step_call(variant, get_scale(one["scale"]), one["batch"], device))
            found[variant], method = added_peak_bytes(fn, device)
            del fn
            torch.cuda.empty_cache()
        else:
            found[variant], method = probe_in_subprocess(one)
    return found, method


# ------------------------------------------------------------------ the report


def row(label: str, ms: dict[str, float], memory: dict[str, int]) -> str:
    mb = {k: v / 2**20 for k, v in memory.items()}
    ratio = f"{mb['logits'] / mb['fused']:>9.1f}x" if mb["fused"] >= 1 else f"{'-':>10}"  # under 1 MB: noise
    return (f"{label:<40}{ms['logits']:>11.1f}{ms['fused']:>10.1f}{ms['logits'] / ms['fused']:>9.2f}x"
            f"{mb['logits']:>12.0f}{mb['fused']:>10.0f}{ratio}")


HEADER = (f"{'':<40}{'logits ms':>11}{'fused ms':>10}{'ratio':>10}{'logits MB':>12}{'fused MB':>10}{'ratio':>10}")


def chunk_sweep(scales: list[Scale], sizes: list[int], batch: int, repeats: int, device: torch.device) -> None:
    for sc in scales:
        tokens = batch * sc.context_length
        print(f"\nfused loss by chunk size, {sc.name} D={sc.d_model} V={sc.vocab_size}, {tokens} tokens: median ms")
        ms = interleaved_ms({str(c): head_call("fused", sc.d_model, sc.vocab_size, tokens, device, c)
                             for c in sizes}, repeats, device)
        best = min(ms.values())
        for size, value in ms.items():
            print(f"  chunk {size:>5}: {value:9.1f} ms  ({value / best:.2f} x the fastest)", flush=True)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], metavar="NAME")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4], metavar="B",
                        help="sequences of the scale's context per call (default: 1 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default: 1)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--no-step", action="store_true", help="skip the whole training step")
    parser.add_argument("--chunk", type=int, help="the fused loss's chunk (default: the library's default)")
    parser.add_argument("--chunks", nargs="*", type=int, metavar="C",
                        help="only time the fused loss at these chunk sizes (no sizes: 32 .. 4096)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one memory measurement (JSON spec)
    args = parser.parse_args(argv)
    if args.probe:
        return probe(json.loads(args.probe))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_loss: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    if min(args.repeats, args.threads, *args.batches, *(args.chunks or [1])) < 1:
        print("bench_loss: --repeats, --threads, --batches and --chunks must be at least 1", file=sys.stderr)
        return 2
    try:
        scales = [get_scale(name) for name in args.scales]
    except ConfigError as err:
        print(f"bench_loss: {err}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    where = (f"cpu, {args.threads} thread{'s' if args.threads > 1 else ''}, float32" if device.type == "cpu"
             else f"{torch.cuda.get_device_name()}, bf16 autocast")
    print(f"bench_loss: torch {torch.__version__}, {where}, {os.cpu_count()} CPU cores, load average {load()} "
          f"(1, 5, 15 min); median of {args.repeats}; ratio = logits path / fused")

    if args.chunks is not None:
        chunk_sweep(scales, args.chunks or [32, 64, 128, 256, 512, 1024, 2048, 4096], max(args.batches),
                    args.repeats, device)
        print(f"\nload average after: {load()}")
        return 0

    print(f"\nLM head + cross-entropy, forward + backward\n{HEADER}\n{'-' * len(HEADER)}")
    method = ""
    for sc in scales:
        for batch in args.batches:
            tokens = batch * sc.context_length
            ms = interleaved_ms({v: head_call(v, sc.d_model, sc.vocab_size, tokens, device, args.chunk)
                                 for v in VARIANTS}, args.repeats, device)
            spec = {"kind": "head", "width": sc.d_model, "vocab": sc.vocab_size, "tokens": tokens,
                    "chunk": args.chunk, "threads": args.threads, "device": args.device}
            memory, method = peak_bytes(spec, device)
            chunk = args.chunk or default_chunk_tokens(sc.d_model, sc.vocab_size, device)
            print(row(f"{sc.name} D={sc.d_model} V={sc.vocab_size} {batch}x{sc.context_length} chunk {chunk}", ms,
                      memory), flush=True)

    if not args.no_step:
        sc = scales[0]
        print(f"\nwhole training step, {STEP_SEED} seed at {sc.name}, batch 1 x {sc.context_length} "
              f"(AdamW, clipping)\n{HEADER}\n{'-' * len(HEADER)}")
        ms = interleaved_ms({v: step_call(v, sc, 1, device) for v in VARIANTS}, args.repeats, device)
        spec = {"kind": "step", "scale": sc.name, "batch": 1, "threads": args.threads, "device": args.device}
        memory, method = peak_bytes(spec, device)
        print(row(f"{STEP_SEED} {sc.name}", ms, memory), flush=True)
    print(f"\nmemory: the peak a call adds ({method})")
    print(f"\nload average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
