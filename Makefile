# binwrn: `make demo` and `make test` are all a fresh clone needs (uv is installed if missing).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PORT ?= 5000
# uvicorn workers of `make ui`: MLflow's default, 4, crash-looped on a loaded 2-core machine
WORKERS ?= 1
STORE ?= mlflow.db
SWEEP ?= p1_fig6_ablation
yes = $(filter 1 true yes,$(1))
SWEEP_FLAGS = $(if $(call yes,$(SMOKE)),--smoke) $(if $(call yes,$(FORCE)),--force) \
  $(if $(JOBS),--jobs $(JOBS)) $(if $(LAUNCHER),--launcher $(LAUNCHER))

.PHONY: help install demo test test-server test-fast lint ui server clean sweep sweep-ablations report bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## create .venv from uv.lock (Python 3.11, torch, Lightning, Hydra, MLflow)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
	  python3 -m pip install --quiet --user uv || \
	  python3 -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen

demo: install  ## train fp32 and 1-bit WRN-10-1 on the embedded digits, then show where the runs are
	$(RUN) binwrn-run -m experiment=demo model.bits=32,1

sweep: install  ## run sweeps/$(SWEEP).yaml; SMOKE=1 shrinks it, FORCE=1 reruns, JOBS=n, ARGS=overrides
	$(RUN) binwrn-sweep $(SWEEP) $(SWEEP_FLAGS) $(ARGS)

sweep-ablations:  ## paper 1 Fig. 6: {fp32, 1-bit} x {SGDR, step} x {BN learned, fixed} (SMOKE=1 ok)
	$(MAKE) sweep SWEEP=p1_fig6_ablation

report: install  ## tables and figures of the newest run of sweep $(SWEEP) (binwrn-report)
	$(RUN) binwrn-report --sweep $(SWEEP)

bench: install  ## binwrn vs plain PyTorch, 1-bit vs fp32 step times (QUICK=1: a CPU subset) -> docs/benchmarks.md
	$(RUN) binwrn-bench $(if $(call yes,$(QUICK)),--quick) $(ARGS)

test: install  ## the whole test suite (CPU, under 15 minutes), two workers (pytest-xdist)
	$(RUN) pytest -q -n 2

test-server: install  ## the shared-server test: real PostgreSQL + mlflow server + a parallel sweep (~2 min)
	$(RUN) pytest -q -m server

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
