#!/usr/bin/env bash
# The Triton kernels' GPU checks in one run (docs/kernels.md, "On a lent GPU machine"),
# in stages, each with its own time limit so that a hung or slow stage still leaves the
# others' logs (together they fit one 10-minute device command):
#   tests    the kernel tests with CUDA: compiled kernels, bfloat16 tolerances (93 s on an H100),
#            and the fused loss's under bfloat16 autocast
#   steps    bench_kernels.py --no-kernels: whole training steps, torch against triton backend
#   kernels  bench_kernels.py --no-steps: each kernel against torch and fla (fla autotunes
#            each kernel on first use, which takes most of this stage's time), in four
#            processes (gla, retention, ssd, the rest) of a quarter of the time each
#   tiles    sweep_conv_tiles.py: causal_conv's launch choices timed against cuDNN
#   loss     bench_loss.py --device cuda: the fused LM head + loss against the logits path,
#            and its chunk sizes (measured on an H200: docs/results.md)
#   profile  profile_step.py: a step's time by primitive (off by default: done on an H100,
#            docs/results.md; give it seconds to run it again)
# A limit of 0 skips a stage: the defaults run the first three, which with the machine's
# start fill one 10-minute command; `gpu_checks.sh 0 0 0 80 60 90` then runs the others.
# Logs go to $OUT (default ./gpu-out); the exit status is the first failing stage's.
# `bench_kernels.py --check` is not a stage: run it here, on the CPU, before.
#
# On a machine with no package index, run `.venv/bin/python scripts/device_wheels.py`
# here first and carry .whl/: this script installs those wheels and the project itself
# into /tmp/site. Where the project is installed already, set GENESYS_GPU_NO_INSTALL=1
# (and PYTHON=.venv/bin/python, say).
#
#   bash scripts/gpu_checks.sh [TESTS_S [STEPS_S [KERNELS_S [TILES_S [LOSS_S [PROFILE_S]]]]]]
#   (defaults: 120 110 240 0 0 0)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$PWD/gpu-out}
PYTHON=${PYTHON:-python3}
TESTS_S=${1:-120}
STEPS_S=${2:-110}
KERNELS_S=${3:-240}
TILES_S=${4:-0}
LOSS_S=${5:-0}
PROFILE_S=${6:-0}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
status=0

stage() {  # stage NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, keep the first failure; 0 s: skip
    local name=$1 seconds=$2 rc
    shift 2
    [ "$seconds" -gt 0 ] || return 0
    echo "== $name (at most ${seconds}s): $*"
    timeout "$seconds" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "== $name: stopped after ${seconds}s"
    echo "== $name: exit $rc"
    [ "$status" -eq 0 ] && status=$rc
    return 0
}

if [ -z "${GENESYS_GPU_NO_INSTALL:-}" ]; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu_checks: no wheels in .whl/; run scripts/device_wheels.py here and carry .whl" >&2
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . \
        || { echo "gpu_checks: installing into /tmp/site failed (above)" >&2; exit 2; }
    export PYTHONPATH=/tmp/site
    # The benchmarks put the checkout first on sys.path, and its genesys_dsl lacks the two
    # subpackages that the install maps from other folders (see pyproject.toml): link them.
    ln -sfn ../grammar genesys_dsl/grammar && ln -sfn ../specs genesys_dsl/specs
fi

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'triton', triton.__version__, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} 2>&1 | tee "$OUT/machine.log"

stage tests "$TESTS_S" "$PYTHON" -m pytest -q -p no:cacheprovider \
    tests/test_triton_norms_convs.py tests/test_triton_mixers.py tests/test_triton_dispatch.py \
    tests/test_fused_loss.py
stage steps "$STEPS_S" "$PYTHON" benchmarks/bench_kernels.py --no-kernels
# The mixers first, their figures being the issue's goal (within 1.2x of fla), each in a
# process and a quarter of the time of its own: fla's autotuning of one cannot use up the
# others' time, and a crash in it (an illegal memory access poisons the CUDA context)
# cannot take their figures along.
for kernels in gla retention ssd "causal_conv rms_norm add_rms_norm head_rms_norm"; do
    # shellcheck disable=SC2086 # the last entry is several kernel names
    stage "kernels-${kernels%% *}" $((KERNELS_S / 4)) "$PYTHON" benchmarks/bench_kernels.py --no-steps --kernels $kernels
done
stage tiles "$TILES_S" "$PYTHON" benchmarks/sweep_conv_tiles.py
stage loss "$LOSS_S" bash -c "$PYTHON benchmarks/bench_loss.py --device cuda --batches 1 8 \
    && $PYTHON benchmarks/bench_loss.py --device cuda --no-step --batches 8 --chunks 1024 2048 4096 8192 16384"
stage profile "$PROFILE_S" "$PYTHON" benchmarks/profile_step.py --seeds gla retnet mamba2 transformer --batch 8
exit "$status"
