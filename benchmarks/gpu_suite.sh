#!/usr/bin/env bash
# The GPU benchmark suite in one call: our networks against timm's on one GPU (written for an H200), bf16,
# channels_last, torch.compile; compiled inference at batch 256 (inception_v4, inception_resnet_v2), training
# at batch 128 (inception_v4), eager rows and a CUDA-graph row. Finishes in under 10 minutes, compilation
# included: the suite has a time budget (BUDGET_S, default 450 s) and skips what would not fit, and the results
# files are rewritten after every stage.
#
#   benchmarks/gpu_suite.sh              # on the GPU machine, from the repository root (or anywhere)
#   benchmarks/gpu_suite.sh --dry-run    # the same code paths on the CPU, tiny, about two minutes
#   benchmarks/gpu_suite.sh --extended   # also inductor freezing, max-autotune, batch 8 (needs BUDGET_S=1500)
#
# Writes gpu-<date>.json, gpu-<date>.md and gpu_suite.log into $OUT when it is set (the device machine's output
# folder) and the two results files into docs/results/ of the checkout (a dry run: into /tmp, named dry-run-gpu). Needs torch and timm (uses .venv/bin/python when present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
RESULTS=$ROOT/docs/results
NAME="gpu-$(date -u +%Y-%m-%d)"
for arg in "$@"; do
  if [ "$arg" = "--dry-run" ]; then NAME="dry-run-gpu"; RESULTS="${TMPDIR:-/tmp}/inception-resnet-dry-run"; fi
done
DEST=${OUT:-$RESULTS}
mkdir -p "$DEST" "$RESULTS"
LOG="$DEST/gpu_suite.log"
{
  echo "# gpu_suite.sh $* ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
    --format=csv || echo "no nvidia-smi"
  "$PY" -c "import sys, torch, timm; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'timm', timm.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
} 2>&1 | tee "$LOG"
timeout "${HARD_TIMEOUT_S:-570}" "$PY" "$ROOT/benchmarks/bench_models.py" --suite gpu --budget-s "${BUDGET_S:-450}" \
  --out "$DEST" --name "$NAME" "$@" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
if [ "$DEST" != "$RESULTS" ]; then
  cp "$DEST/$NAME.json" "$DEST/$NAME.md" "$RESULTS/" 2>/dev/null || true
fi
echo "gpu_suite.sh: exit $status; results in $DEST/$NAME.{json,md}" | tee -a "$LOG"
exit "$status"
