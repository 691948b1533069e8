#!/usr/bin/env bash
# One device call that does everything a GPU session should: the CUDA checks (tests_gpu), then the GPU
# benchmark suite in the time that is left, all within TOTAL_S seconds (default 570, under the device tool's
# 600-second call limit). Logs and results land in $OUT (the device tool's output folder) when it is set.
#
#   bash benchmarks/gpu_session.sh            # on the GPU machine, from anywhere in the checkout
#
# The device tool's call:  run(command="bash benchmarks/gpu_session.sh", timeout_s=600)
# Then copy gpu-<date>.{json,md} from the returned files into docs/results/ and read tests_gpu.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
TOTAL_S=${TOTAL_S:-570}
TESTS_S=${TESTS_S:-240}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
DEST=${OUT:-${TMPDIR:-/tmp}/inception-resnet-gpu-session}
mkdir -p "$DEST"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS

timeout -k 10 "$TESTS_S" "$PY" -m pytest -q -p no:cacheprovider tests_gpu 2>&1 | tee "$DEST/tests_gpu.log"
tests_status=${PIPESTATUS[0]}
echo "tests_gpu: exit $tests_status after $(( SECONDS - start )) s" | tee -a "$DEST/tests_gpu.log"

left=$(( TOTAL_S - (SECONDS - start) ))
if [ "$left" -gt 120 ]; then
  HARD_TIMEOUT_S=$(( left - 10 )) BUDGET_S=$(( left - 80 )) PYTHON="$PY" bash benchmarks/gpu_suite.sh
  suite_status=$?
else
  echo "no time left for the benchmark suite ($left s)"; suite_status=124
fi
echo "gpu_session.sh: tests exit $tests_status, suite exit $suite_status, $(( SECONDS - start )) s"
exit $(( tests_status != 0 ? tests_status : suite_status ))
