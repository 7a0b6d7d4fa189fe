#!/usr/bin/env bash
# The first run on a GPU machine: one script, under 6 minutes, no network.
#
#   bench/gpu_check.sh OUT_DIR [WHEEL_DIR]
#
# Needs python3 with a CUDA build of torch (and transformers, huggingface_hub, numpy, scipy,
# matplotlib, rich, typer, anyio). Our other pure-Python dependencies are installed from WHEEL_DIR
# (default build/gpu-wheels, filled on a machine with network by bench/gpu_wheels.sh), never
# downloaded; PyAV is not needed. Steps, each under its own time limit (60 + 75 + 210 s at most, plus
# 10 s grace each), so the whole fits 6 minutes:
#   1. install from WHEEL_DIR (skipped when already importable)                          -> pip.log
#   2. the GPU-marked tests: transfers counted under torch.cuda.set_sync_debug_mode("error"),
#      the GPU benchmark's measurement on the tiny model                                   -> tests.log
#   3. python -m bench.live_cost --device cuda --skip-cpu --compile: the full-size random model,
#      fp16, 384 px eager + --compile and 512 px eager, 16:9 and 4:3, both decoders, lookahead 0
#      and 2, and channels_last against contiguous (bench.gpu_timing)                      -> live_cost.json / .log
#   4. gpu_check.json: the machine, each step's exit code and seconds, the headline figures.
# Run from the repository root. Exit code: 0 when every step passed.
set -u
out=${1:?usage: bench/gpu_check.sh OUT_DIR [WHEEL_DIR]}
wheels=${2:-build/gpu-wheels}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error HF_HUB_OFFLINE=1
steps_file="$out/steps.txt"
: > "$steps_file"

step() {  # NAME LIMIT_S LOG COMMAND... : run with a time limit, record "NAME rc seconds"
    local name=$1 limit=$2 log=$3
    shift 3
    local start=$SECONDS
    echo "[gpu_check] $name (limit ${limit}s)" >&2
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    echo "$name $rc $((SECONDS - start))" >> "$steps_file"
    echo "[gpu_check] $name: exit $rc after $((SECONDS - start))s" >&2
}

# the install runs in a child bash (timeout runs programs, not functions)
install_cmd='"$py" -c "import diffusers, pythonosc, pytest" 2>/dev/null && { echo already installed; exit 0; }
"$py" -m pip install --no-index --find-links "$wheels" diffusers python-osc pytest pytest-timeout \
    || "$py" -m pip install --no-index --no-deps "$wheels"/*.whl'
export py wheels
step install 60 "$out/pip.log" bash -c "$install_cmd"
step tests 75 "$out/tests.log" "$py" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu_paths.py \
    -k "cuda or gpu_timing or pooling or right_rows or packed" -rs
bench_start=$SECONDS
echo "[gpu_check] live_cost (limit 210s)" >&2
timeout --kill-after=10 210 "$py" -m bench.live_cost --device cuda --skip-cpu --compile --channels-last \
    --gpu-res 384 512 --gpu-rounds 10 > "$out/live_cost.json" 2> "$out/live_cost.log"
echo "live_cost $? $((SECONDS - bench_start))" >> "$steps_file"

"$py" - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
summary = {"steps": {}}
for line in open(os.path.join(out, "steps.txt")):
    name, rc, seconds = line.split()
    summary["steps"][name] = {"exit": int(rc), "seconds": int(seconds)}
try:
    import torch
    summary["torch"] = torch.__version__
    summary["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as err:  # the summary is written whatever failed
    summary["torch_error"] = str(err)
configs = {}
try:
    configs = json.load(open(os.path.join(out, "live_cost.json")))["gpu"]["configs"]
except Exception:  # a run cut short: take the per-config lines of the log
    for line in open(os.path.join(out, "live_cost.log")):
        if "{" in line and ": " in line:
            name = line.split("] ", 1)[-1].split(":", 1)[0]
            configs[name] = json.loads(line[line.index("{"):])
goals = {"384px/16:9/full/lookahead_2/compile": 30, "384px/16:9/tiny/lookahead_2/compile": 80}
summary["headline"] = {name: {k: configs[name].get(k) for k in ("throughput_fps", "latency_ms", "gpu_ms_sum", "peak_gpu_mib")}
                       for name in configs if name.startswith("384px/16:9/") and "lookahead_2" in name}
summary["goals_fps"] = {name: {"goal": goal, "measured": configs.get(name, {}).get("throughput_fps"),
                               "met": configs.get(name, {}).get("throughput_fps", 0) >= goal} for name, goal in goals.items()}
json.dump(summary, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
awk '$2 != 0 {failed = 1} END {exit failed}' "$steps_file"
