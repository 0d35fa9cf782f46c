"""The torch backend's chunked scans against an earlier version of themselves, in the same run.

    .venv/bin/python benchmarks/bench_torch_mixers.py [--against REV] [--rounds 12] [--threads 1]

`plugins/genesys_primitives/torch_ops/mixers.py` as it is now and as it was at git
revision REV (default: ec29a5e, before the per-channel decay scan took float64
differences of cumulative sums instead of per-segment sums) are both loaded, and the
per-channel decay scan (`_chunk_channel_decay`: gla, and RWKV-6's wkv6 with
exclusive=True) runs forward + backward at the shapes gla's seed gives it at cpu-xs,
cpu-s and 14M. The two versions alternate call by call (which goes first swaps each
round); the median of the rounds after two warm-up rounds is printed, with the speed-up
old / new and the largest difference of their outputs. One torch thread by default.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
MIXERS = "plugins/genesys_primitives/torch_ops/mixers.py"
SHAPES = {  # B, L, H, K, V: gla's seed (keys D / 8, values D / 4 wide, 4 heads)
    "cpu-xs": (16, 128, 4, 8, 16),
    "cpu-s": (16, 256, 4, 16, 32),
    "14M": (1, 2048, 4, 32, 64),
}
CHUNK = 16  # gla's and wkv6's default


def load_version(source: str, name: str) -> types.ModuleType:
    """The module's scan functions from its source text (the registry at its end, which
    imports the package, is left out: only the functions are timed)."""
    source = source[:source.index("\n_HERE = ")].replace("from . import TorchImpl\n", "")
    module = types.ModuleType(name)
    exec(compile(source, f"{MIXERS} ({name})", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def old_source(revision: str) -> str:
    try:
        return subprocess.run(["git", "show", f"{revision}:{MIXERS}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        detail = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
        sys.exit(f"bench_torch_mixers: cannot read {MIXERS} at revision '{revision}' ({detail})")


def seconds(scan, inputs: list[torch.Tensor], exclusive: bool) -> float:
    leaves = [t.detach().requires_grad_() for t in inputs]
    start = time.perf_counter()
    scan(*leaves, CHUNK, exclusive).square().sum().backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="ec29a5e", metavar="REV", help="git revision of the old version")
    parser.add_argument("--rounds", type=int, default=12, help="timed calls of each version (default: 12)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.rounds < 3 or args.threads < 1:
        print("bench_torch_mixers: --rounds must be at least 3 and --threads at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    versions = {"old": load_version(old_source(args.against), "old"),
                "new": load_version((ROOT / MIXERS).read_text(encoding="utf-8"), "new")}
    print(f"_chunk_channel_decay, forward + backward, chunk {CHUNK}: median ms of {args.rounds - 2} rounds, "
          f"{args.threads} thread(s); old = {args.against}")
    print(f"{'scale':<8}{'shape':<28}{'scan':<18}{'old':>9}{'new':>9}{'speed-up':>10}{'max diff':>10}")
    for scale, (B, L, H, K, V) in SHAPES.items():
        gen = torch.Generator().manual_seed(0)
        q, k = torch.randn(B, L, H, K, generator=gen), torch.randn(B, L, H, K, generator=gen)
        v = torch.randn(B, L, H, V, generator=gen)
        g = F.logsigmoid(torch.randn(B, L, H, K, generator=gen)) / 16  # the gla seed's gates
        for exclusive, label in ((False, "inclusive (gla)"), (True, "exclusive (wkv6)")):
            times: dict[str, list[float]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                order = ("old", "new") if round_ % 2 else ("new", "old")
                for name in order:
                    times[name].append(seconds(versions[name]._chunk_channel_decay, [q, k, v, g], exclusive))
            old, new = (statistics.median(times[name][2:]) * 1000 for name in ("old", "new"))
            with torch.no_grad():
                diff = (versions["old"]._chunk_channel_decay(q, k, v, g, CHUNK, exclusive)
                        - versions["new"]._chunk_channel_decay(q, k, v, g, CHUNK, exclusive)).abs().max().item()
            print(f"{scale:<8}{f'B={B} L={L} H={H} K={K} V={V}':<28}{label:<18}{old:>9.1f}{new:>9.1f}"
                  f"{old / new:>9.2f}x{diff:>10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
