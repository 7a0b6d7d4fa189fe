# A new user runs only `make demo` and `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Pinned: the CPU wheel of this version is available offline on our build machines.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# make demo CHECKPOINT=/path/to/rollingdepth-v1-0 uses those weights (else: env, hub cache, tiny test model).
demo: $(STAMP)
	$(BIN)/python -m stream.cli.demo $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m bench.offline
	$(BIN)/python -m bench.coalign
	$(BIN)/python -m bench.io
	$(BIN)/python -m bench.stream
	$(BIN)/python -m bench.live_cost
	$(BIN)/python -m bench.monitor

clean:
	rm -rf $(VENV) build *.egg-info demo_output
