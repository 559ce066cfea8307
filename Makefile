# The user interface of the project: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# local pipeline (make demo)
WORK      ?= runs/demo
DATA      ?=
THRESHOLD ?=
HP        ?=
# images (make build / push / train-local)
VARIANT   ?= gpu
TAG       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
REGISTRY  ?=
AWS_REGION ?= $(or $(REGION),$(AWS_DEFAULT_REGION),us-east-1)

export PYTHONUNBUFFERED := 1

.PHONY: help install demo-data demo test test-fast bench lint lock clean \
        build push train-local test-containers pin-base check-gpu-libs definition upsert

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements/dev.txt
	@echo ">> creating $(VENV) with the pinned stack (requirements/dev.txt)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(STAMP) ## Create .venv with everything the demo and the tests need (fast when done)

demo-data: $(STAMP) ## Write the synthetic GTSRB-like demo set (DEMO_DATA=dir, SEED=, TRACKS=)
	$(PY) -m gtsrb.demo_data --output $(or $(DEMO_DATA),data/demo) $(if $(SEED),--seed $(SEED)) $(if $(TRACKS),--tracks-per-class $(TRACKS))

demo: $(STAMP) ## Run prepare -> train -> evaluate -> register on this machine (DATA=, WORK=, THRESHOLD=, HP='k=v ...')
	$(PY) -m pipelines.local --work $(WORK) $(if $(DATA),--data $(DATA)) $(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(HP),--hp $(HP))

test: $(STAMP) ## Run the test suite (installs first if needed)
	$(PY) -m pytest -m "not containers" $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests that take seconds (no training runs)
	$(PY) -m pytest -m "not slow and not containers" $(PYTEST_ARGS)

bench: $(STAMP) ## Benchmarks as ratios against a reference measured in the same run
	$(PY) -m bench

lock: ## Re-pin requirements/dev.txt from pyproject.toml (needs PyPI)
	rm -rf /tmp/gtsrb-lock && $(PYTHON) -m venv /tmp/gtsrb-lock
	/tmp/gtsrb-lock/bin/pip install --quiet -e '.[pipelines,dev]'
	{ echo "# Fully pinned development environment (make install). Regenerate: make lock"; \
	  /tmp/gtsrb-lock/bin/pip freeze --exclude-editable; } > requirements/dev.txt

clean: ## Remove runs/, caches and the venv
	rm -rf runs .pytest_cache $(VENV) data/demo
