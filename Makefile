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
        build push train-local gpu-target test-containers pin-base check-gpu-libs definition upsert

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

# --- images: containers/Dockerfile, one per VARIANT (gpu | cpu | "gpu cpu") --------------------
DOCKER       ?= docker
BAKE_WEIGHTS ?= 1
BASE_IMAGE   ?=
IMMUTABLE    ?=
TRAIN_ROOT   ?= runs/train-local
WHEELHOUSES   = $(foreach v,$(VARIANT),build/wheelhouse/$(v)/.stamp)
image         = $$($(PY) -m pipelines.images uri --variant $(1) --tag $(2))
# buildx where installed (--provenance=false: ECR/SageMaker reject attestation manifests), else the
# engine's built-in BuildKit (no attestations); both export Docker media types.
BUILD_CMD     = $(if $(shell $(DOCKER) buildx version 2>/dev/null),$(DOCKER) buildx build --provenance=false --sbom=false --load,DOCKER_BUILDKIT=1 $(DOCKER) build) --platform linux/amd64 --network host

.PHONY: wheelhouse
build/wheelhouse/%/.stamp: containers/requirements-%.txt | $(STAMP)
	@echo ">> wheelhouse for the $* image: build/wheelhouse/$* (pip wheel here; the image installs it offline)"
	rm -rf build/wheelhouse/$* && $(PY) -m pip wheel --quiet --no-deps -r $< -w build/wheelhouse/$*
	cp $< build/wheelhouse/$*/requirements.txt && touch $@

wheelhouse: $(WHEELHOUSES) ## Download/build the pinned wheels of VARIANT's image into build/wheelhouse/

build: $(STAMP) $(WHEELHOUSES) ## Build VARIANT's image (gpu|cpu|"gpu cpu"), tags TAG (git SHA) + latest; BAKE_WEIGHTS=0 skips weights
	@for v in $(VARIANT); do \
	  echo ">> building $(call image,$$v,$(TAG)) (+ latest): linux/amd64, Docker media types, no provenance"; \
	  $(BUILD_CMD) -f containers/Dockerfile --build-arg VARIANT=$$v --build-arg BAKE_WEIGHTS=$(BAKE_WEIGHTS) \
	    --build-arg GIT_SHA=$(TAG) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	    -t $(call image,$$v,$(TAG)) -t $(call image,$$v,latest) . || exit 1; \
	done

push: $(STAMP) ## Push VARIANT's image (TAG + latest) to ECR (AWS_REGION; IMMUTABLE=1) or REGISTRY=host:port
	PY=$(PY) DOCKER=$(DOCKER) VARIANT="$(VARIANT)" TAG=$(TAG) REGISTRY=$(REGISTRY) AWS_REGION=$(AWS_REGION) \
	  IMMUTABLE=$(IMMUTABLE) containers/push.sh

train-local: $(STAMP) ## Train in the image like SageMaker (docker run --gpus all; VARIANT=cpu: no GPU) on WORK/prepare; HP=, TRAIN_ROOT=
	$(PY) containers/train_local.py --docker $(DOCKER) --image $(call image,$(firstword $(VARIANT)),latest) \
	  --root $(TRAIN_ROOT) --channel train=$(WORK)/prepare/train --channel validation=$(WORK)/prepare/validation \
	  --gpus $(if $(filter cpu,$(VARIANT)),none,all) --hp $(or $(HP),$(if $(filter cpu,$(VARIANT)),preset=cpu))

gpu-target: $(STAMP) ## On a GPU machine: prepare DATA=, train in the GPU image, evaluate; prints img/s, epoch/job time, test accuracy
	@test -n "$(DATA)" || { echo "make gpu-target: set DATA=<a real GTSRB download> (docs/gpu-runbook.md)" >&2; exit 1; }
	$(PY) containers/gpu_target.py --docker $(DOCKER) --image $(call image,gpu,latest) --data $(DATA) --work $(or $(GPU_WORK),runs/gpu-target)

pin-base: ## Pin the Dockerfile's dated base tag to the digest its registry serves now (needs Docker Hub)
	DOCKER=$(DOCKER) containers/pin-base.sh

check-gpu-libs: $(STAMP) build/wheelhouse/gpu/.stamp ## Check (no GPU needed) that the GPU wheels satisfy every NEEDED lib of libmxnet.so
	$(PY) containers/check_gpu_libs.py --wheelhouse build/wheelhouse/gpu

test-containers: $(STAMP) ## Start a Docker engine, build the CPU image, run its steps, push/pull a local registry (root)
	containers/ci/engine.sh run -- $(MAKE) --no-print-directory container-tests

.PHONY: container-tests
container-tests: $(STAMP) build/wheelhouse/cpu/.stamp build/wheelhouse/gpu/.stamp
	$(MAKE) --no-print-directory build VARIANT=cpu BAKE_WEIGHTS=0
	@echo ">> container tests: steps in the image, registry round trip, pin-base, GPU library check"
	GTSRB_TEST_IMAGE=$(call image,cpu,$(TAG)) $(PY) -m pytest -m containers tests/containers --durations=5 $(PYTEST_ARGS)

# --- the SageMaker pipeline: make definition / upsert (pipelines/definition.py) ------------------
ROLE_ARN      ?=
BUCKET        ?=
PIPELINE_NAME ?=
SPOT          ?= 1
START         ?=
WAIT_MINUTES  ?= 0
DEFINITION    ?= build/pipeline-definition.json
comma         := ,
# `make definition` renders without a role too (a placeholder account); `make upsert` needs ROLE_ARN.
PIPELINE_ROLE  = $(or $(ROLE_ARN),arn:aws:iam::000000000000:role/SageMakerExecutionRole)
PIPELINE_KWARGS = {"region": "$(AWS_REGION)", "role": "$(PIPELINE_ROLE)", "image_tag": "$(TAG)", "use_spot": "$(if $(filter 1 true yes,$(SPOT)),true,false)"$(if $(BUCKET),$(comma) "default_bucket": "$(BUCKET)")$(if $(PIPELINE_NAME),$(comma) "pipeline_name": "$(PIPELINE_NAME)")$(if $(REGISTRY),$(comma) "image_registry": "$(REGISTRY)")}
PIPELINE_TAGS ?= [{"Key": "project", "Value": "gtsrb"}, {"Key": "git-sha", "Value": "$(TAG)"}]

definition: $(STAMP) ## Write the SageMaker pipeline JSON offline to DEFINITION= (REGION=, ROLE_ARN=, BUCKET=, TAG=, SPOT=0)
	@echo ">> rendering the SageMaker pipeline definition (no AWS call), images tagged $(TAG)"
	$(PY) -m pipelines.get_pipeline_definition --kwargs '$(PIPELINE_KWARGS)' --file-name $(DEFINITION)

upsert: $(STAMP) ## Create/update the SageMaker pipeline, tagged (ROLE_ARN=, REGION=, BUCKET=, TAG=; START=1 WAIT_MINUTES=n runs it)
	@test -n "$(ROLE_ARN)" || { echo "make upsert: set ROLE_ARN=arn:aws:iam::<account>:role/<SageMaker execution role>" >&2; exit 1; }
	@echo ">> upserting the SageMaker pipeline in $(AWS_REGION), images tagged $(TAG)$(if $(START), and starting it)"
	$(PY) -m pipelines.run_pipeline --role-arn '$(ROLE_ARN)' --kwargs '$(PIPELINE_KWARGS)' --tags '$(PIPELINE_TAGS)' \
	  $(if $(START),--start --wait-minutes $(WAIT_MINUTES))
