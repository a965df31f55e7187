# binwrn: `make demo` and `make test` are all a fresh clone needs (uv is installed if missing).
SHELL := /bin/bash
# Work with or without .venv activated: its python3 has neither pip nor uv, so look for
# python3 on PATH without .venv/bin; uv is on PATH, or where `pip install --user uv` put it
# (~/.local/bin, often not on PATH), or a module of that python3.
PYTHON3 := $(shell PATH="$$(printf %s "$$PATH" | tr : '\n' | grep -vxF '$(CURDIR)/.venv/bin' | \
  paste -sd: -)" command -v python3 || echo python3)
UV := $(shell command -v uv 2>/dev/null || ls $(HOME)/.local/bin/uv 2>/dev/null || \
  echo "$(PYTHON3) -m uv")
RUN := $(UV) run --frozen
PORT ?= 5000
# uvicorn workers of `make ui`: MLflow's default, 4, crash-looped on a loaded 2-core machine
WORKERS ?= 1
STORE ?= mlflow.db
SWEEP ?= p1_fig6_ablation
# make test-compat: the Python to test on (3.12, the GPU image's: its versions; 3.13: newest)
PY ?= 3.12
yes = $(filter 1 true yes,$(1))
SWEEP_FLAGS = $(if $(call yes,$(SMOKE)),--smoke) $(if $(call yes,$(FORCE)),--force) \
  $(if $(JOBS),--jobs $(JOBS)) $(if $(LAUNCHER),--launcher $(LAUNCHER))

.PHONY: help install demo test test-server test-fast lint ui server clean sweep sweep-ablations report bench \
  gpu-check gpu-bundle test-compat

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on these machines), Python
# never caches what it compiles, so every process start compiled its ~5,000 modules from
# source again: 11.7 s of a 23 s smoke run (docs/benchmarks.md).
install:  ## create .venv from uv.lock (Python 3.11, torch, Lightning, Hydra, MLflow)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON3) -m pip install --quiet --user uv || \
	  $(PYTHON3) -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --frozen --quiet --compile-bytecode

demo: install  ## train fp32 and 1-bit WRN-10-1 on the embedded digits, then show where the runs are
	$(RUN) binwrn-run -m experiment=demo model.bits=32,1

sweep: install  ## run sweeps/$(SWEEP).yaml; SMOKE=1 shrinks it, FORCE=1 reruns, JOBS=n, ARGS=overrides
	$(RUN) binwrn-sweep $(SWEEP) $(SWEEP_FLAGS) $(ARGS)

sweep-ablations:  ## paper 1 Fig. 6: {fp32, 1-bit} x {SGDR, step} x {BN learned, fixed} (SMOKE=1 ok)
	$(MAKE) sweep SWEEP=p1_fig6_ablation

report: install  ## tables and figures of the newest run of sweep $(SWEEP) (binwrn-report)
	$(RUN) binwrn-report --sweep $(SWEEP)

bench: install  ## step times and a whole 1-epoch run, binwrn vs plain PyTorch in alternating rounds, with their spread (QUICK=1: a CPU subset, ~12 min; STARTUP=1: first step only) -> docs/benchmarks.md
	$(RUN) binwrn-bench $(if $(call yes,$(QUICK)),--quick) $(if $(call yes,$(STARTUP)),--startup-only) $(ARGS)

gpu-check: install  ## the GPU path proven on one GPU in < 8 min -> docs/gpu-check.md (CPU=1: shrunk, on the CPU)
	$(RUN) binwrn-gpucheck $(if $(call yes,$(CPU)),--cpu) $(ARGS)

gpu-bundle: install  ## wheels the GPU image lacks + CIFAR-10, for a GPU machine without an index (IMAGE=list, PART_MIB=64, REHEARSE=1: stage + check --cpu here, ARGS=--beside-mib 0)
	$(RUN) --with pip python -m binwrn.gpucheck.bundle $(if $(TAR),--tar $(TAR)) \
	  $(if $(IMAGE),--image $(IMAGE)) $(if $(PART_MIB),--part-mib $(PART_MIB)) \
	  $(if $(call yes,$(REHEARSE)),--rehearse) $(ARGS)

test: install  ## the whole test suite (CPU, about 15 minutes on 2 cores), two workers (pytest-xdist)
	$(RUN) pytest -q -n 2

test-server: install  ## the shared-server test: real PostgreSQL + mlflow server + a parallel sweep (~2.5 min)
	$(RUN) pytest -q -m server

# Needs no .venv: the stdlib script builds .venv-compat-$(PY) with uv and runs both there.
test-compat:  ## the non-slow suite + binwrn-gpucheck --cpu on PY=3.12 with the GPU image's versions (PY=3.13: newest)
	@$(UV) --version >/dev/null 2>&1 || $(MAKE) --no-print-directory install
	UV="$(UV)" $(PYTHON3) -m binwrn.gpucheck.compat --python $(PY) $(if $(IMAGE),--image $(IMAGE))

test-fast: install  ## unit tests only, no end-to-end subprocess runs
	$(RUN) pytest -q -m "not slow"

lint: install  ## ruff over the package and tests
	$(RUN) ruff check binwrn tests

ui: install  ## MLflow UI on 127.0.0.1:$(PORT) over the runs' store (STORE=mlflow.db, WORKERS=1)
	@$(RUN) python -m binwrn.tracking.ui_link $(abspath $(STORE)) $(PORT)
	$(RUN) mlflow server --backend-store-uri sqlite:///$(abspath $(STORE)) \
	  --default-artifact-root $(abspath mlartifacts) --host 127.0.0.1 --port $(PORT) \
	  --workers $(WORKERS)

server: install  ## shared tracking server: MLflow on PostgreSQL, 127.0.0.1:$(PORT) (data in server-data/)
	$(RUN) binwrn-server --port $(PORT)

clean:  ## remove run outputs (keeps mlflow.db and its artifacts)
	rm -rf outputs multirun reports .pytest_cache
