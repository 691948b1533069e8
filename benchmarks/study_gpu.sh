#!/usr/bin/env bash
# The residual study on one GPU (the `gpu` preset: v3 vs IR-v1 and v4 vs IR-v2, each also against itself
# without shortcuts, at full width, 149x149 Fashion-MNIST, 3 seeds), in one call that ends within BUDGET_S
# seconds (default 540); the residual-scaling experiment (the paper's regime: hours) in calls of its own, each
# continuing where the last stopped.
#
#   bash benchmarks/study_gpu.sh prepare        # on a machine with the data: copy Fashion-MNIST into .data/
#   bash benchmarks/study_gpu.sh run [DIR]      # on the GPU machine: reports in DIR (default docs/results/study-gpu)
#   bash benchmarks/study_gpu.sh scaling [DIR]  # the scaling study for BUDGET_S seconds; repeat until it is done
#   bash benchmarks/study_gpu.sh smoke [DIR]    # anywhere, CPU too: compare and scaling at a tiny size
#
# `prepare` copies the four Fashion-MNIST files (Debian's dataset-fashion-mnist, or the cache) into
# .data/FashionMNIST/raw/ and lists /.data/ in .git/info/exclude: a machine without network access then reads
# them through INCEPTION_RESNET_DATA (pass `.data` in the device tool's `carry`). `run` works without the
# package installed (PYTHONPATH=src) and needs torch, torchvision, numpy, pillow, tqdm and matplotlib.
# Nothing is lost when the budget runs out: the study starts no new run after its time limit, a run
# interrupted by the budget checkpoints, and the same command later continues where it stopped.
# When $OUT is set (the device tool), DIR is also packed, without checkpoints, into $OUT/study-gpu.tar.gz.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE=${1:-run}
RESULTS=${2:-docs/results/study-gpu}
BUDGET_S=${BUDGET_S:-540}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .data/FashionMNIST/raw ]; then export INCEPTION_RESNET_DATA="$PWD/.data"; fi

prepare() {
    local src=/usr/share/datasets/fashion-mnist
    [ -f "$src/train-images-idx3-ubyte.gz" ] || src="${INCEPTION_RESNET_DATA:-$HOME/.cache/inception_resnet}/FashionMNIST/raw"
    mkdir -p .data/FashionMNIST/raw
    cp "$src"/*-ubyte* .data/FashionMNIST/raw/
    grep -qx '/.data/' .git/info/exclude 2>/dev/null || echo '/.data/' >> .git/info/exclude
    ls -l .data/FashionMNIST/raw
}

environment() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "command: bash benchmarks/study_gpu.sh $MODE $RESULTS (BUDGET_S=$BUDGET_S)"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
        "$PYTHON" -c 'import sys, torch, torchvision; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda); print("torchvision", torchvision.__version__)'
        git rev-parse HEAD 2>/dev/null | sed 's/^/commit /' || true
    } > "$RESULTS/environment.txt"
    cat "$RESULTS/environment.txt"
}

# study SECTION SECONDS_FOR_IT [--set ...]: runs with a start-no-new-run limit, a hard stop (SIGINT, which
# checkpoints) shortly after, and a report rebuilt from the finished runs whatever happened.
study() {
    local section=$1 seconds=$2; shift 2
    local limit=$(( seconds > 60 ? seconds - 60 : 1 ))
    timeout -s INT -k 30 "$seconds" "$PYTHON" -m inception_resnet study "$section" --preset gpu \
        --out "$RESULTS/$section" --time-limit "$limit" --quiet "$@" || echo "study $section stopped: exit $?"
    "$PYTHON" -m inception_resnet study "$section" --preset gpu --out "$RESULTS/$section" --report-only "$@" \
        || echo "no $section report: exit $?"
}

COMPARE_ARGS=()
SCALING_ARGS=()

run() {
    local start=$SECONDS
    mkdir -p "$RESULTS"
    environment
    if [ "${WITH_SCALING:-0}" = 1 ]; then
        study compare $(( BUDGET_S * 62 / 100 )) "${COMPARE_ARGS[@]}"
        local left=$(( BUDGET_S - (SECONDS - start) - 15 ))
        if [ "$left" -gt 30 ]; then study scaling "$left" "${SCALING_ARGS[@]}"; else echo "no time left for scaling"; fi
    else
        study compare $(( BUDGET_S - 15 )) "${COMPARE_ARGS[@]}"
        echo "the scaling study takes hours: bash $0 scaling $RESULTS (repeat until its report lists no run not run)"
    fi
    echo "study took $(( SECONDS - start )) s"
    pack
}

scaling_only() {
    local start=$SECONDS
    mkdir -p "$RESULTS"
    environment
    study scaling $(( BUDGET_S - 15 )) "${SCALING_ARGS[@]}"
    echo "scaling took $(( SECONDS - start )) s"
    pack
}

pack() {
    if [ -n "${OUT:-}" ]; then
        tar czf "$OUT/study-gpu.tar.gz" --exclude=checkpoints --exclude=tensorboard -C "$RESULTS" .
        ls -l "$OUT"
    fi
}

case "$MODE" in
    prepare) prepare ;;
    run) run ;;
    scaling) scaling_only ;;
    smoke)
        # the gpu preset's code path at a toy size (seconds per run on a CPU): one seed, 64 images, 75x75,
        # width 0.25, Inception-ResNet-v2 with one block per stage; scaling with two scales, no width check
        tiny=(--seeds 0 --set max_train_images=64 --set max_val_images=32 --set epochs=1 --set batch_size=16
              --set input_size=75 --set model_options.width_multiplier=0.25 --set precision=fp32 --set num_workers=0 --set threads=1)
        COMPARE_ARGS=("${tiny[@]}" --set validate_every_steps=2 --set bn_recompute_images=16 --set 'models={
            "inception_resnet_v1_no_shortcut": {"model": "inception_resnet_v1", "model_options": {"shortcut": false}},
            "inception_resnet_v2": {"model_options": {"blocks": [1, 1, 1]}},
            "inception_resnet_v2_no_shortcut": {"model": "inception_resnet_v2",
                                                "model_options": {"blocks": [1, 1, 1], "shortcut": false}}}')
        SCALING_ARGS=("${tiny[@]}" --set 'scales=[1.0, 0.1]' --set 'lrs=[0.045, 0.18]' --set min_filters=0
                      --set 'model_options.blocks=[1, 1, 1]' --set parallel=1 --set log_every_steps=1)
        WITH_SCALING=1 run ;;
    *) echo "usage: $0 prepare | run [DIR] | scaling [DIR] | smoke [DIR]" >&2; exit 2 ;;
esac
