# binwrn: `make demo` and `make test` are all a fresh clone needs (uv is installed if missing).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PORT ?= 5000
STORE ?= mlflow.db

.PHONY: help install demo test test-fast lint ui clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## create .venv from uv.lock (Python 3.11, torch, Lightning, Hydra, MLflow)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
	  python3 -m pip install --quiet --user uv || \
	  python3 -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen

demo: install  ## train fp32 and 1-bit WRN-10-1 on the embedded digits, then show where the runs are
	$(RUN) binwrn-run -m experiment=demo model.bits=32,1

test: install  ## the whole test suite (CPU, under 15 minutes)
	$(RUN) pytest -q

test-fast: install  ## unit tests only, no end-to-end subprocess runs
	$(RUN) pytest -q -m "not slow"

lint: install  ## ruff over the package and tests
	$(RUN) ruff check binwrn tests

ui: install  ## MLflow UI on 127.0.0.1:$(PORT) over the runs' store (STORE=mlflow.db)
	@echo "Open http://127.0.0.1:$(PORT)/#/experiments/1/runs?workflowType=machine_learning"
	$(RUN) mlflow server --backend-store-uri sqlite:///$(abspath $(STORE)) \
	  --default-artifact-root $(abspath mlartifacts) --host 127.0.0.1 --port $(PORT)

clean:  ## remove run outputs (keeps mlflow.db and its artifacts)
	rm -rf outputs multirun .pytest_cache
