# A new user runs only `make demo` and `make test`; both create .venv when it is missing.
# tasks.py does the work (the same script Windows runs as `py tasks.py demo|test`): it picks the
# torch build for this machine (CUDA where nvidia-smi sees a GPU, else the pinned CPU wheel) and
# reinstalls only when pyproject.toml is newer than .venv/.installed.
PYTHON ?= python3
# e.g. make test TORCH=torch==2.5.1 (or cpu, cuda, installed): overrides tasks.py's choice.
TORCH  ?=
RUN    := $(if $(TORCH),RDSTREAM_TORCH="$(TORCH)") $(PYTHON) tasks.py

.PHONY: demo test bench clean

# make demo CHECKPOINT=/path/to/rollingdepth-v1-0 uses those weights (else: env, hub cache, tiny test model).
demo:
	$(RUN) demo $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

test:
	$(RUN) test

bench:
	$(RUN) bench

clean:
	rm -rf .venv build *.egg-info demo_output
