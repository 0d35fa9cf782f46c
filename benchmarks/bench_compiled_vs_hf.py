"""Compiled designs against Hugging Face transformers on CPU, and spec -> module latency.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_compiled_vs_hf.py [--runs 10] [--warmup 3]
        [--threads N] [--archs gpt2 llama mamba2] [--no-compile] [--no-latency] [--compile-timeout SECONDS]

1. Training-step speed. For GPT-2, Llama and Mamba-2 at a moderate size (hidden 256,
   4 layers, batch 4, length 256), a random HF model is imported with
   `genesys_dsl.interop.from_hf`, so both sides hold the same weights; then one step,
   forward + cross-entropy + backward, is timed on the same tokens, the two models
   alternating run by run, after warm-up. Prints the median of each and the ratio
   ours / HF (target <= 1.05), in eager mode, then with torch.compile on both (each
   architecture in a subprocess under a time limit; a failure or time-out is printed
   as the reason it was skipped).
2. Compile latency: spec text -> checked design -> generated source -> built module, for
   every seed spec at the smallest scale (target < 100 ms), median of several runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models are built from configs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import genesys_dsl as g  # noqa: E402

HIDDEN, LAYERS, VOCAB, BATCH, LENGTH = 256, 4, 4096, 4, 256
TARGET_RATIO, TARGET_LATENCY_MS = 1.05, 100.0


# ------------------------------------------------------------------ the models


def hf_model(arch: str):
    """A random HF model of the benchmark's size (dropout off: our models have none)."""
    import transformers as tf

    if arch == "gpt2":
        config = tf.GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=4, vocab_size=VOCAB, n_positions=LENGTH,
                               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return tf.GPT2LMHeadModel(config)
    if arch == "llama":
        config = tf.LlamaConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                num_key_value_heads=2, intermediate_size=688, vocab_size=VOCAB,
                                max_position_embeddings=LENGTH)
        return tf.LlamaForCausalLM(config)
    if arch == "mamba2":
        # eps 1e-6: the scaffold's final RMSNorm cannot take HF's default 1e-5 (see interop)
        config = tf.Mamba2Config(hidden_size=HIDDEN, num_hidden_layers=LAYERS, vocab_size=VOCAB, expand=2,
                                 head_dim=64, num_heads=2 * HIDDEN // 64, state_size=64, n_groups=1,
                                 layer_norm_epsilon=1e-6)
        return tf.Mamba2ForCausalLM(config)
    raise ValueError(arch)


ARCHS = ("gpt2", "llama", "mamba2")


def pair(arch: str, compiled: bool):
    """(ours, hf) as training-step functions on the same weights, and their logits' max difference."""
    from genesys_dsl.interop import from_hf

    torch.manual_seed(0)
    hf = hf_model(arch).train()
    _, ours = from_hf(hf)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=generator)
    targets = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=generator)
    with torch.no_grad():
        diff = (ours(ids) - hf(ids, use_cache=False).logits).abs().max().item()
    ours_fwd = torch.compile(ours) if compiled else ours
    hf_fwd = torch.compile(hf) if compiled else hf

    def ours_step():
        train_step(ours, lambda: ours_fwd(ids), targets)

    def hf_step():
        train_step(hf, lambda: hf_fwd(ids, use_cache=False).logits, targets)

    return ours_step, hf_step, diff


def train_step(model, logits_of, targets) -> None:
    model.zero_grad(set_to_none=True)
    logits = logits_of()
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()


# ------------------------------------------------------------------ timing


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def race(a, b, runs: int, warmup: int) -> tuple[float, float, float, float]:
    """Medians of a and b, alternating run by run so that drift hits both; also the
    first calls' times (for torch.compile: compilation)."""
    first_a, first_b = timed(a), timed(b)
    for _ in range(warmup - 1):
        a(), b()
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return statistics.median(times_a), statistics.median(times_b), first_a, first_b


def measure(arch: str, compiled: bool, runs: int, warmup: int) -> dict:
    ours_step, hf_step, diff = pair(arch, compiled)
    ours, hf, first_ours, first_hf = race(ours_step, hf_step, runs, warmup)
    return {"arch": arch, "ours": ours, "hf": hf, "first_ours": first_ours, "first_hf": first_hf, "diff": diff}


def measure_in_subprocess(arch: str, args) -> dict:
    """torch.compile on both sides, in a fresh process under a time limit."""
    command = [sys.executable, __file__, "--compiled-one", arch, "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.compile_timeout)
    except subprocess.TimeoutExpired:
        return {"arch": arch, "skipped": f"compile + runs took over {args.compile_timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"arch": arch, "skipped": f"torch.compile failed: {last[:150]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'model':<8} {'ours ms':>9} {'HF ms':>9} {'ours/HF':>8} {'target':>7} {'1st ours s':>11} "
          f"{'1st HF s':>9} {'max |dlogits|':>14}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['arch']:<8} skipped: {r['skipped']}")
            continue
        ratio = r["ours"] / r["hf"]
        verdict = "ok" if ratio <= TARGET_RATIO else "over"
        print(f"{r['arch']:<8} {1e3 * r['ours']:>9.1f} {1e3 * r['hf']:>9.1f} {ratio:>8.3f} {verdict:>7} "
              f"{r['first_ours']:>11.2f} {r['first_hf']:>9.2f} {r['diff']:>14.2e}")


# ------------------------------------------------------------------ compile latency


def median_ms(fn, runs: int) -> float:
    """Median milliseconds of fn after one untimed call, with the garbage collector held off
    (a collection landing in one run would dominate a few-millisecond figure)."""
    fn()
    gc.collect()
    gc.disable()
    try:
        return 1e3 * statistics.median(timed(fn) for _ in range(runs))
    finally:
        gc.enable()


def latency_table(runs: int) -> None:
    scale = next(iter(g.scales().values()))
    print(f"\nCompile latency at {scale.describe()}: median of {runs} (target < {TARGET_LATENCY_MS:.0f} ms)")
    print(f"{'spec':<26} {'parse ms':>9} {'source ms':>10} {'build ms':>9} {'total ms':>9} {'target':>7}")
    for path in sorted((ROOT / "specs").rglob("*.gab")):
        text = path.read_text(encoding="utf-8")
        design = g.parse(text)
        parse = median_ms(lambda: g.parse(text), runs)
        source = median_ms(lambda: g.compile_source(design), runs)  # check + code generation
        build = median_ms(lambda: g.build(design, scale), runs)  # check, codegen, exec, initialisation
        total = median_ms(lambda: g.build(g.parse(text), scale), runs)
        verdict = "ok" if total < TARGET_LATENCY_MS else "over"
        print(f"{str(path.relative_to(ROOT / 'specs')):<26} {parse:>9.1f} {source:>10.1f} {build:>9.1f} "
              f"{total:>9.1f} {verdict:>7}")


# ------------------------------------------------------------------ main


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure (badly so
    when it leaves fewer free cores than threads)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed before parallel work starts)
        pass


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=cores)
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile comparison")
    parser.add_argument("--no-latency", action="store_true", help="skip the compile latency table")
    parser.add_argument("--compile-timeout", type=float, default=600.0, help="seconds per architecture")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--compiled-one", help=argparse.SUPPRESS)  # child process: one compiled measurement
    args = parser.parse_args()
    pin_threads(args.threads)

    if args.compiled_one:
        print(json.dumps(measure(args.compiled_one, True, args.runs, args.warmup)))
        return

    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, {args.threads} thread(s) of {os.cpu_count()} CPU(s), load average {load()}")
    print(f"Training step (forward + cross-entropy + backward), float32, hidden {HIDDEN}, {LAYERS} layers, "
          f"vocab {VOCAB}, batch {BATCH}, length {LENGTH}; median of {args.runs} after {args.warmup} warm-up")
    speed_table([measure(arch, False, args.runs, args.warmup) for arch in args.archs], "Eager")
    if args.no_compile:
        print("\ntorch.compile: skipped (--no-compile)")
    else:
        speed_table([measure_in_subprocess(arch, args) for arch in args.archs],
                    "torch.compile (both sides; '1st' columns include compilation)")
    if not args.no_latency:
        latency_table(args.latency_runs)
    print(f"\nload average at the end: {load()} (timings need an otherwise idle machine)")


if __name__ == "__main__":
    main()
