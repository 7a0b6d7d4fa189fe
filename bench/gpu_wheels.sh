#!/usr/bin/env bash
# Fills a folder with the wheels bench/gpu_check.sh installs on a GPU machine that has no network:
# exactly what its image (torch, transformers, huggingface_hub, safetensors, accelerate, numpy, scipy,
# matplotlib, rich, typer, anyio, pytest) lacks for the check: diffusers, python-osc and their
# requirements the image's packages do not bring (`python -m bench.gpu_install carried`), pure-Python
# wheels only, at the versions installed here, for this Python's version (diffusers 0.42 needs 3.11+;
# run it with the GPU machine's Python version: PYTHON=python3.12 bench/gpu_wheels.sh).
#
#   bench/gpu_wheels.sh [DIR]        # default DIR: build/gpu-wheels (6 wheels, about 7 MB)
set -euo pipefail
dir=${1:-build/gpu-wheels}
default_py=python3
[ -x .venv/bin/python ] && default_py=.venv/bin/python
py=${PYTHON:-$default_py}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$dir"
mapfile -t specs < <("$py" -m bench.gpu_install carried | grep .)
[ "${#specs[@]}" -gt 0 ] || { echo "gpu_wheels: $py lists nothing to carry (is diffusers installed here?)" >&2; exit 2; }
"$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform any --implementation py --abi none --dest "$dir" "${specs[@]}"
# the same check gpu_check.sh makes before its first step (nothing is installed here)
"$py" -m bench.gpu_install plan "$dir" build/gpu-site > /dev/null
du -sh "$dir"
ls "$dir"
