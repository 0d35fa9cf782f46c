#!/usr/bin/env bash
# The Triton kernels' GPU checks in one run (docs/kernels.md, "On a lent GPU machine"),
# in four stages, each with its own time limit so that a hung or slow stage still leaves
# the others' logs (the four fit one 10-minute device command):
#   check          bench_kernels.py --check: compiled kernels and fla against torch, small
#   tests          the kernel tests with CUDA: compiled kernels, bfloat16 tolerances
#   bench_kernels  the figures: kernels against torch and fla, training steps per backend
#   profile        profile_step.py: a training step's time by primitive, torch backend
# Logs go to $OUT (default ./gpu-out); the exit status is the first failing stage's.
#
# On a machine with no package index, run `.venv/bin/python scripts/device_wheels.py`
# here first and carry .whl/: this script installs those wheels and the project itself
# into /tmp/site. Where the project is installed already, set GENESYS_GPU_NO_INSTALL=1
# (and PYTHON=.venv/bin/python, say).
#
#   bash scripts/gpu_checks.sh [CHECK_S [TESTS_S [BENCH_S [PROFILE_S]]]]   # 45 150 270 90
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$PWD/gpu-out}
PYTHON=${PYTHON:-python3}
CHECK_S=${1:-45}
TESTS_S=${2:-150}
BENCH_S=${3:-270}
PROFILE_S=${4:-90}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
status=0

stage() {  # stage NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, keep the first failure
    local name=$1 seconds=$2 rc
    shift 2
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
fi

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'triton', triton.__version__, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} 2>&1 | tee "$OUT/machine.log"

stage check "$CHECK_S" "$PYTHON" benchmarks/bench_kernels.py --check
stage tests "$TESTS_S" "$PYTHON" -m pytest -q -p no:cacheprovider \
    tests/test_triton_norms_convs.py tests/test_triton_mixers.py tests/test_triton_dispatch.py
stage bench_kernels "$BENCH_S" "$PYTHON" benchmarks/bench_kernels.py
stage profile "$PROFILE_S" "$PYTHON" benchmarks/profile_step.py --seeds gla retnet mamba2 transformer --batch 8
exit "$status"
