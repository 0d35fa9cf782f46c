"""Training throughput of compiled seeds against hand-written nanoGPT-style peers, and
model FLOP utilisation against a matmul peak measured on the same machine.

    .venv/bin/python benchmarks/bench_train.py [--scales cpu-xs cpu-s] [--designs transformer gpt2]
        [--steps 10] [--repeats 3] [--batch 16] [--threads N] [--device cpu|cuda]

For each seed design and scale, the compiled model and a hand-written peer of exactly
the same architecture and parameter count (nanoGPT's layout: fused qkv projection,
`scaled_dot_product_attention`, rotary tables precomputed once) are trained by the
same loop, `genesys_dsl.evaluate.trainer.train`, on the same batches of the bundled
corpus, alternating run by run after a warm-up. Prints tokens/s (median of the
repeats), the time ratio compiled / peer (target <= 1.1), and MFU: 3 x forward FLOPs
per token (from `genesys_dsl.check.stats`, as `genesys stats` prints them) x tokens/s,
over the matmul peak (fp32 on CPU, bf16 on CUDA) measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from genesys_dsl.check.stats import stats  # noqa: E402
from genesys_dsl.compile import build  # noqa: E402
from genesys_dsl.evaluate import DataConfig, TrainConfig  # noqa: E402
from genesys_dsl.evaluate.data import lm_batches, load_corpus  # noqa: E402
from genesys_dsl.evaluate.trainer import train  # noqa: E402
from genesys_dsl.scales import get_scale  # noqa: E402
from genesys_dsl.syntax.files import read_design  # noqa: E402

TARGET_RATIO = 1.1
HEADS = 8  # both seeds' default


# ------------------------------------------------------------------ the nanoGPT-style peers


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, bias: bool, rotary: bool, context: int) -> None:
        super().__init__()
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)
        self.rotary = rotary
        if rotary:
            e = d // HEADS
            inv_freq = 1.0 / 10000.0 ** (torch.arange(0, e, 2).float() / e)
            angle = torch.outer(torch.arange(context).float(), inv_freq).repeat(1, 2)
            self.register_buffer("cos", angle.cos(), persistent=False)
            self.register_buffer("sin", angle.sin(), persistent=False)

    def rotate(self, x):  # x [B, H, L, E]
        cos, sin = self.cos[: x.shape[2]].to(x.dtype), self.sin[: x.shape[2]].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def forward(self, x):
        b, length, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (t.view(b, length, HEADS, d // HEADS).transpose(1, 2) for t in (q, k, v))
        if self.rotary:
            q, k = self.rotate(q), self.rotate(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, length, d))


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        h = x.float()
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class GeluMLP(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class SwiGLU(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        hidden = math.ceil(2.667 * d / 8) * 8
        self.w1, self.w2 = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.w3 = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class Block(nn.Module):
    def __init__(self, d: int, kind: str, context: int) -> None:
        super().__init__()
        gpt2 = kind == "gpt2"
        self.ln_1 = nn.LayerNorm(d) if gpt2 else RMSNorm(d)
        self.attn = CausalSelfAttention(d, bias=gpt2, rotary=not gpt2, context=context)
        self.ln_2 = nn.LayerNorm(d) if gpt2 else RMSNorm(d)
        self.mlp = GeluMLP(d) if gpt2 else SwiGLU(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    """GPT-2 (kind "gpt2") or the Genesys transformer seed (RMSNorm, rotary, SwiGLU)."""

    def __init__(self, kind: str, d: int, n: int, vocab: int, context: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d) if kind == "gpt2" else None
        self.h = nn.ModuleList(Block(d, kind, context) for _ in range(n))
        self.ln_f = nn.LayerNorm(d) if kind == "gpt2" else RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def hidden(self, idx):  # as the generated model's: the trainer fuses lm_head with the loss for both
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx):
        return self.lm_head(self.hidden(idx))


# ------------------------------------------------------------------ measuring


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """FLOP/s of a square matmul, the best of several timings."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * size**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tokens_per_second(model, batches, config: TrainConfig, device) -> float:
    sync(device)
    result = train(model, batches, config, seed=0, device=device)
    sync(device)
    assert result.ok, result.reason
    return result.tokens / result.wall_seconds


def bench(design_name: str, scale_name: str, args, corpus, device) -> dict:
    design = read_design(ROOT / "specs" / f"{design_name}.gab")
    scale = get_scale(scale_name)
    ours = build(design, scale, seed=0).to(device)
    torch.manual_seed(0)
    peer = NanoGPT(design_name, scale.d_model, scale.n_layers, scale.vocab_size, scale.context_length).to(device)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    if count(ours) != count(peer):
        raise SystemExit(f"{design_name}@{scale_name}: peer has {count(peer):,} parameters, ours {count(ours):,}")
    batches = lm_batches(corpus.train, args.batch, scale.context_length, seed=0)
    timed = TrainConfig(tokens=args.steps * args.batch * scale.context_length, batch_size=args.batch,
                        checkpoint_every=0)
    warm = timed.model_copy(update={"tokens": 2 * args.batch * scale.context_length})
    for model in (ours, peer):
        train(model, batches, warm, seed=0, device=device)
    speeds = {"ours": [], "peer": []}
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        speeds["ours"].append(tokens_per_second(ours, batches, timed, device))
        speeds["peer"].append(tokens_per_second(peer, batches, timed, device))
    ours_tps, peer_tps = statistics.median(speeds["ours"]), statistics.median(speeds["peer"])
    flops = stats(design, scale).flops_per_token
    return {"design": design_name, "scale": scale_name, "params": count(ours), "ours": ours_tps, "peer": peer_tps,
            "ratio": peer_tps / ours_tps, "train_flops_per_token": 3 * flops}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["cpu-xs", "cpu-s"])
    parser.add_argument("--designs", nargs="+", default=["transformer", "gpt2"], choices=["transformer", "gpt2"])
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # what training runs in
    peak = matmul_peak(device, peak_dtype, 4096 if device.type == "cuda" else 1024)
    corpus = load_corpus(DataConfig())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({where}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{str(peak_dtype).split('.')[-1]} matmul peak {peak / 1e9:,.1f} GFLOP/s; batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats (median)")
    header = f"{'design':<12} {'scale':<7} {'params':>9} {'ours tok/s':>11} {'peer tok/s':>11} " \
             f"{'ours/peer time':>15} {'MFU ours':>9} {'MFU peer':>9}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for scale in args.scales:
        for design in args.designs:
            r = bench(design, scale, args, corpus, device)
            worst = max(worst, r["ratio"])
            mfu_ours, mfu_peer = (r["train_flops_per_token"] * r[side] / peak for side in ("ours", "peer"))
            print(f"{r['design']:<12} {r['scale']:<7} {r['params']:>9,} {r['ours']:>11,.0f} {r['peer']:>11,.0f} "
                  f"{r['ratio']:>15.3f} {mfu_ours:>9.1%} {mfu_peer:>9.1%}")
    verdict = "meets" if worst <= TARGET_RATIO else "misses"
    print(f"worst ratio {worst:.3f}: {verdict} the target <= {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
