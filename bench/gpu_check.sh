#!/usr/bin/env bash
# The first run on a GPU machine: one script, under 9 minutes, no network, nothing over the image.
#
#   bench/gpu_check.sh OUT_DIR [WHEEL_DIR]      # WHEEL_DIR default: build/gpu-wheels
#   bench/gpu_check.sh --dry-run [WHEEL_DIR]    # each step, its limit and what it would install; runs nothing
#
# Needs python3 (PYTHON=...) with a CUDA build of torch, transformers, huggingface_hub, safetensors,
# accelerate, numpy, scipy, matplotlib, rich, typer, anyio and pytest: the GPU image. What it lacks
# (diffusers, python-osc, requests and its own requirements) comes from WHEEL_DIR, filled beforehand
# by bench/gpu_wheels.sh on a machine with network: `pip install --no-deps --no-index --target
# build/gpu-site`, a separate folder put first on PYTHONPATH, never the image's site-packages; what
# is already importable is not installed (a rerun installs nothing).
# Before any step: no NVIDIA GPU -> one line, exit 1; a wheel folder that is missing, empty or holds
# wheels for another Python -> one line naming what is missing, exit 2.
# Each step runs under its own time limit and writes its JSON as soon as it has a figure; a step cut
# short leaves what it had, and gpu_check.json reports each figure it lacks as "not measured" with why.
# Exit code: 0 when every step passed.
set -u
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # the caller's relative paths

dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
if [ "$dry" = 0 ] && [ $# -lt 1 ]; then
    echo "usage: bench/gpu_check.sh OUT_DIR [WHEEL_DIR] | bench/gpu_check.sh --dry-run [WHEEL_DIR]" >&2
    exit 2
fi
if [ "$dry" = 1 ]; then out=""; named=${1:-}
else out=$(absolute "$1"); named=${2:-}; fi
implicit=""  # a folder not named is needed only when something is missing
[ -z "$named" ] && implicit=--implicit
wheels=$(absolute "${named:-build/gpu-wheels}")
[ -n "$named" ] || wheels=build/gpu-wheels  # the default is the checkout's
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-python3}
site=${RDSTREAM_GPU_SITE:-build/gpu-site}
case $site in /*) ;; *) site=$PWD/$site ;; esac
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# name | limit (s) | what it does; the limits add up to 505 s (plus 3 s grace each): the whole under 9 minutes
STEPS=(
    "install|15|the wheels below into ${site#"$PWD"/} (pip --no-deps --no-index --target), nothing when all is importable -> install.log"
    "machine|15|GPU, torch, CUDA and cuDNN versions, fp16/bf16 matmul TFLOP/s -> machine.json"
    "tests|85|CUDA tests (tests/stream/test_rolling_depth_steps_cuda.py, the CUDA ones of tests/stream/test_rolling_depth_steps.py): compiled == eager (cudagraphs, inductor), no sync in the steady state (1 and 4 streams), the CUDA-graph output copy -> tests.log, tests.json"
    "eager|105|eager figures, 384 px 16:9 fp16 lookahead 2, every --speed rung, both decoders -> eager.json"
    "compiled|225|compiled figures (steady-state shapes only) of lite and standard, TORCH_LOGS=recompiles -> compiled.json, compiled.log"
    "rig|40|4 streams on one model against one stream alone, 384 px (bench.rig --sections gpu) -> rig.json"
    "summary|20|FLOP counts, TFLOP/s and share of peak, not-measured reasons -> gpu_check.json, table.md"
)

if [ "$dry" = 1 ]; then
    installs=$("$py" -m bench.gpu_install plan "$wheels" "$site" $implicit) || exit $?
    echo "bench/gpu_check.sh OUT_DIR $wheels: steps in order, each under its time limit:"
    for spec in "${STEPS[@]}"; do
        IFS='|' read -r name limit what <<< "$spec"
        printf '  %-9s %4ss  %s\n' "$name" "$limit" "$what"
    done
    echo "install: $installs"
    exit 0
fi

# before any step: a GPU, then the wheels (each one line and its exit code)
has_gpu() {
    { command -v nvidia-smi > /dev/null 2>&1 && timeout 20 nvidia-smi -L 2>/dev/null | grep -q "^GPU "; } \
        || compgen -G "/proc/driver/nvidia/gpus/*" > /dev/null
}
if ! has_gpu; then
    echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): this check measures CUDA; run it on the GPU machine" >&2
    exit 1
fi
"$py" -m bench.gpu_install plan "$wheels" "$site" $implicit > /dev/null || exit $?

mkdir -p "$out"
: > "$out/steps.txt"
step() {  # NAME LIMIT LOG COMMAND...: run with a time limit, record "NAME EXIT SECONDS LIMIT"
    local name=$1 limit=$2 log=$3
    shift 3
    local start=$SECONDS
    echo "[gpu_check] $(date -u +%H:%M:%S) $name (limit ${limit}s)" >&2
    timeout --kill-after=3 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    echo "$name $rc $((SECONDS - start)) $limit" >> "$out/steps.txt"
    echo "[gpu_check] $name: exit $rc after $((SECONDS - start))s" >&2
}
limit() { local spec; for spec in "${STEPS[@]}"; do [ "${spec%%|*}" = "$1" ] && { IFS='|' read -r _ l _ <<< "$spec"; echo "$l"; }; done; }

step install "$(limit install)" "$out/install.log" "$py" -m bench.gpu_install install "$wheels" "$site" $implicit
step machine "$(limit machine)" "$out/machine.log" "$py" -m bench.gpu_check machine "$out"
step tests "$(limit tests)" "$out/tests.log" "$py" -m pytest -v -p no:cacheprovider -o addopts="" -rs \
    tests/stream/test_rolling_depth_steps_cuda.py tests/stream/test_rolling_depth_steps.py tests/pipeline/test_compiled.py -k "cuda or graphs or packed or copy_back"
step eager "$(limit eager)" "$out/eager.log" "$py" -m bench.gpu_check eager "$out"
TORCH_LOGS=recompiles step compiled "$(limit compiled)" "$out/compiled.log" "$py" -m bench.gpu_check compiled "$out"
step rig "$(limit rig)" "$out/rig.log" bash -c '"$0" -m bench.rig --sections gpu --streams 4 --frames 40 --width 640 --height 360 > "$1"' "$py" "$out/rig.json"
step summary "$(limit summary)" "$out/summary.log" "$py" -m bench.gpu_check summary "$out"
cat "$out/table.md" 2>/dev/null
awk '$2 != 0 {failed = 1} END {exit failed}' "$out/steps.txt"
