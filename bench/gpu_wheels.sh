#!/usr/bin/env bash
# Fills a folder with the pure-Python wheels bench/gpu_check.sh installs on a GPU machine that has
# torch (CUDA), transformers, huggingface_hub, numpy, scipy, matplotlib, rich, typer and anyio but
# none of our other packages and no network. Versions are those of this machine's environment.
# PyAV and ndi-python are left out (large, binary): the GPU check needs neither.
#
#   bench/gpu_wheels.sh [DIR]        # default DIR: build/gpu-wheels (about 5 MB)
set -euo pipefail
dir=${1:-build/gpu-wheels}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"
pinned() {  # NAME -> NAME==VERSION installed here (NAME alone when it is not installed)
    local version
    version=$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null) \
        && echo "$1==$version" || echo "$1"
}
# diffusers and its pure-Python dependencies the GPU machine may lack; pytest for the GPU-marked tests
packages=(diffusers importlib_metadata zipp python-osc pytest pluggy iniconfig pytest-timeout)
specs=()
for name in "${packages[@]}"; do specs+=("$(pinned "$name")"); done
"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" "${specs[@]}"
du -sh "$dir"
ls "$dir"
