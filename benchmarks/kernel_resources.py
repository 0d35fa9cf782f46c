"""What the compiler gives each Triton kernel, per launch at the seeds' shapes: registers per
thread, spilled bytes and shared memory, for a GPU architecture, without a GPU.

    .venv/bin/python benchmarks/kernel_resources.py [--scales 14M 125M] [--arch 90] [--kernels gla ssd] [--strict]

Every kernel launch the built-in Triton implementations make for the seed designs at each
scale (the host code's own block sizes, warps and stages: see
plugins/genesys_primitives/triton_ops/launches.py) is compiled for sm_<arch> through triton's
bundled ptxas, which is rerun with -v on the PTX and the flags triton uses; shared memory is
what triton allocates per program. Static figures from the compiler, not measurements:
occupancy and speed need a GPU (bench_kernels.py). A kernel that spills registers to local
memory is flagged SPILLS. Spilling is a hint, not a verdict: causal_conv's backward spills
at the tiles that timed fastest on an H200 (benchmarks/sweep_conv_tiles.py). With --strict
the script exits 1 if any kernel spills, to gate a change that should not.
Launches that compile alike at several call sites are listed once, under the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesys_dsl.scales import ConfigError, get_scale

FLAGS = ("HAS_RESIDUAL", "HAS_DS")  # shown when set
SIZES = ("H", "G", "K", "V", "E", "BT", "BC", "BK", "BV", "BLOCK_M", "BLOCK_H", "BLOCK_E", "BLOCK_T", "BLOCK_C")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["14M", "125M"], help="scales (default: 14M 125M)")
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100), 80 (A100)")
    parser.add_argument("--kernels", nargs="+", default=None,
                        help="only kernels whose name contains one of these words (e.g. gla ssd)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a kernel spills registers")
    args = parser.parse_args(argv)
    try:
        for name in args.scales:
            get_scale(name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        from genesys_primitives.triton_ops import launches
    except ImportError as err:
        print(f"error: triton is needed ({err}); pip install -c constraints.txt -e '.[triton]'", file=sys.stderr)
        return 2
    missing = launches.ptxas_missing(args.arch)
    if missing:
        print(f"error: cannot compile for sm_{args.arch} here: {missing}", file=sys.stderr)
        return 2

    spilling = []
    print(f"Static resources per kernel launch, sm_{args.arch} (triton's ptxas -v; bfloat16 inputs)")
    for scale in args.scales:
        found = [x for x in launches.seed_launches((scale,))
                 if not args.kernels or any(word in x.name for word in args.kernels)]
        print(f"\n{scale}")
        print(f"  {'kernel':30s} {'sizes':58s} {'warps':>5s} {'stages':>6s} {'regs':>5s} {'spill st/ld':>11s}"
              f" {'smem KiB':>8s}  first call site")
        for launch in found:
            res = launches.ptxas_resources(launches.compile_launch(launch, args.arch), args.arch)
            c = launch.constants
            sizes = " ".join([f"{k}={c[k]}" for k in SIZES if k in c] + [f for f in FLAGS if c.get(f)])
            spill = f"{res.spill_stores}/{res.spill_loads}"
            flag = "  SPILLS" if res.spill_stores or res.spill_loads else ""
            if flag:
                spilling.append(f"{launch.name} at {scale}")
            print(f"  {launch.name:30s} {sizes:58s} {c['num_warps']:5d} {c['num_stages']:6d} {res.registers:5d}"
                  f" {spill:>11s} {res.shared / 1024:8.1f}  {launch.site.split(' in ', 1)[-1]}{flag}")
    print(f"\n{'kernels that spill: ' + ', '.join(spilling) if spilling else 'no kernel spills'}")
    return 1 if spilling and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
