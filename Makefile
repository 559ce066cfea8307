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
RECIPE    ?=
DEMO_EXIT_CODES = 1 a step failed, 3 accuracy below the threshold, 130 interrupted
# deployment (make deploy / undeploy / approve / deploy-local; pipelines/deploy, docs/deployment.md)
# STAGE= is a deployment stage (staging|prod) everywhere: `deploy` points the stage's SageMaker
# endpoint at a version; the local twin keeps the stage as the MLflow alias of the same name, which
# `deploy-local` points and `serve STAGE=` serves.
STAGE       ?=
VERSION     ?=
PACKAGE_ARN ?=
ifdef STAGE
ifeq ($(wildcard deploy/$(STAGE).json),)
$(error STAGE=$(STAGE) is not a stage: use one of $(basename $(notdir $(wildcard deploy/*.json))) (each is deploy/<stage>.json))
endif
MODEL       ?= $(shell $(PY) -m pipelines.deploy.local_twin uri --stage $(STAGE))
endif
# images (make build / push / train-local)
VARIANT   ?= gpu
TAG       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
REGISTRY  ?=
AWS_REGION ?= $(or $(REGION),$(AWS_DEFAULT_REGION),us-east-1)

export PYTHONUNBUFFERED := 1

.PHONY: help install demo-data demo recipes test test-fast bench bench-real lint ci lock clean distclean \
        build push train-local test-containers pin-base check-gpu-libs definition upsert preflight serve predict ui gpu-target bench-gpu \
        deploy undeploy approve deploy-local sagemaker-local transform

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

demo: $(STAMP) ## Run prepare -> train -> evaluate -> register on this machine (DATA=, WORK=, THRESHOLD=, RECIPE=file, HP='k=v ...', INSTANCES=2)
	@$(PY) -m pipelines.local --work $(WORK) $(if $(DATA),--data $(DATA)) $(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(RECIPE),--recipe $(RECIPE)) $(if $(HP),--hp $(HP)) $(if $(INSTANCES),--instances $(INSTANCES)) \
	  || { code=$$?; echo "make demo: the pipeline exited $$code ($(DEMO_EXIT_CODES)); make itself exits 2 on any failure: scripts run $(PY) -m pipelines.local for the code" >&2; exit $$code; }

recipes: $(STAMP) ## Rewrite recipes/cpu.yaml and recipes/gpu.yaml from the presets in src/train/hyperparameters.py
	$(PY) -m pipelines.recipes

test: $(STAMP) ## Run the test suite (installs first if needed)
	$(PY) -m pytest -m "not containers" $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests that take seconds (no training runs)
	$(PY) -m pytest -m "not slow and not containers" $(PYTEST_ARGS)

# --- the pipeline as SageMaker runs it: the SDK's LocalPipelineSession in Docker (docs/local-pipeline.md) ---
INSTANCES ?= 1
# WORK=runs/demo is make demo's default; this target keeps its own unless WORK= is given.
SM_LOCAL_WORK = $(if $(filter file,$(origin WORK)),runs/sagemaker-local,$(WORK))

sagemaker-local: $(STAMP) ## Execute the SageMaker pipeline in the SDK's local mode with the cpu image TAG= (Docker + compose; DATA=, WORK=, THRESHOLD=, HP=, INSTANCES=)
	@echo ">> executing the SageMaker pipeline definition with the SDK's LocalPipelineSession in Docker, image $(call image,cpu,$(TAG))"
	$(PY) -m pipelines.sagemaker_local --work $(SM_LOCAL_WORK) --tag $(TAG) --instances $(INSTANCES) $(if $(DATA),--data $(DATA)) \
	  $(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(HP),--hp $(HP))

# --- serving: the model server of the images, here without Docker (src/serve, docs/serving.md) ---
MODEL  ?=
PORT   ?= 8080
# make serve listens on this machine only; the images listen on all interfaces (SageMaker needs it)
BIND   ?= 127.0.0.1
OUT    ?= $(WORK)/predictions.csv
IMAGES ?=
TOP_K  ?= 1
UI_PORT ?= 5000
# The server in the images knows model folders and tar.gz files only: a models:/ URI of the local
# registry (without MODEL=, WORK's newest registered version) is resolved here, on the host (a
# path is printed as is).
RESOLVE_MODEL = $(PY) -m pipelines.deploy.local_twin path --work $(WORK) $(if $(MODEL),--model '$(MODEL)')

serve: $(STAMP) ## Serve MODEL= (dir, model.tar.gz or models:/gtsrb-traffic-signs/<version|@alias>; default: WORK's newest registered version) on BIND=127.0.0.1 PORT=8080
	@echo ">> serving $(or $(MODEL),the newest version registered by $(WORK)) on http://$(BIND):$(PORT) (SageMaker hosting contract; BIND=0.0.0.0 to serve other machines; Ctrl-C stops)"
	model=$$($(RESOLVE_MODEL)) && exec $(PY) -m gtsrb.serve --model "$$model" --host $(BIND) --port $(PORT)

predict: $(STAMP) ## Predict IMAGES=<dir, files or labelled CSV> with MODEL= (default as serve) into OUT=WORK/predictions.csv (TOP_K=)
	@test -n "$(IMAGES)" || { echo "make predict: set IMAGES=<folder, image files or a labelled CSV>" >&2; exit 2; }
	model=$$($(RESOLVE_MODEL)) && $(PY) -m gtsrb.serve.predict $(IMAGES) --model "$$model" --out $(OUT) --top-k $(TOP_K)

ui: $(STAMP) ## Open MLflow's UI on the store of every run (MLFLOW_TRACKING_URI, else runs/mlflow.db beside WORK) on UI_PORT=5000
	$(PY) -m pipelines.local.ui --work $(WORK) --port $(UI_PORT)

bench: $(STAMP) ## Benchmarks as ratios against a reference measured in the same run
	$(PY) -m bench

bench-real: $(STAMP) ## Our pipeline vs a plain MXNet script on ../shared/data/gtsrb-dev (~20 min on 2 cores; not in bench or CI)
	@echo ">> bench-real: make demo's pipeline, then im2rec + ImageRecordIter + a bare CNN for the same seconds (bench/real_gtsrb.py)"
	$(PY) -m bench real_gtsrb

SHELL_SCRIPTS = .ci/run $(wildcard containers/*.sh containers/*/*.sh)

lint: $(STAMP) ## Lint Python (ruff), the Dockerfile (hadolint) and every shell script (shellcheck); fails on a finding
	@echo ">> ruff check (pyproject.toml [tool.ruff])"
	$(VENV)/bin/ruff check .
	@echo ">> hadolint containers/Dockerfile (containers/.hadolint.yaml)"
	$(VENV)/bin/hadolint --config containers/.hadolint.yaml containers/Dockerfile
	@echo ">> shellcheck $(SHELL_SCRIPTS)"
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)

# The one CI entry: .ci/run, .github/workflows/pipeline.yml and codebuild-buildspec.yml call it.
# A path that must run less narrows CI_TESTS and says why where it calls it.
CI_TESTS ?= test test-containers

ci: $(STAMP) ## The single CI entry: make lint, then each of CI_TESTS= (default: test test-containers)
	@for target in lint $(CI_TESTS); do \
	  echo ">> make $$target"; $(MAKE) --no-print-directory $$target || exit 1; \
	done

lock: ## Re-pin requirements/dev.txt from pyproject.toml (needs PyPI)
	rm -rf /tmp/gtsrb-lock && $(PYTHON) -m venv /tmp/gtsrb-lock
	/tmp/gtsrb-lock/bin/pip install --quiet -e '.[pipelines,dev]'
	{ echo "# Fully pinned development environment (make install). Regenerate: make lock"; \
	  /tmp/gtsrb-lock/bin/pip freeze --exclude-editable; } > requirements/dev.txt

clean: ## Remove runs/, caches and the demo data; keeps the venv (make distclean removes it too)
	rm -rf runs .pytest_cache data/demo

distclean: clean ## make clean, and remove the venv
	rm -rf $(VENV)

# --- images: containers/Dockerfile, one per VARIANT (gpu | cpu | "gpu cpu") --------------------
DOCKER       ?= docker
BAKE_WEIGHTS ?= 1
ZOO_DIR      ?=
BACKBONES    ?=
BASE_IMAGE   ?=
IMMUTABLE    ?=
LATEST       ?=
TRAIN_ROOT   ?= runs/train-local
# The weights are baked in a stage on the CPU wheel, so a GPU build with weights needs both.
WHEELHOUSES   = $(foreach v,$(sort $(VARIANT) $(if $(filter 1,$(BAKE_WEIGHTS)),cpu)),build/wheelhouse/$(v)/.stamp)
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

build: $(STAMP) $(WHEELHOUSES) ## Build VARIANT's image (gpu|cpu|"gpu cpu"), tags TAG (git SHA) + local latest; BAKE_WEIGHTS=0 skips weights, ZOO_DIR= bakes offline
	@rm -rf build/zoo && mkdir -p build/zoo $(if $(ZOO_DIR),&& cp $(ZOO_DIR)/*.zip $(ZOO_DIR)/*.params build/zoo/ 2>/dev/null; test -n "$$(ls build/zoo)" || { echo "make build: ZOO_DIR=$(ZOO_DIR) holds no .zip/.params zoo files" >&2; exit 1; })
	@for v in $(VARIANT); do \
	  echo ">> building $(call image,$$v,$(TAG)) (+ latest): linux/amd64, Docker media types, no provenance"; \
	  $(BUILD_CMD) -f containers/Dockerfile --build-arg VARIANT=$$v --build-arg BAKE_WEIGHTS=$(BAKE_WEIGHTS) \
	    --build-arg GIT_SHA=$(TAG) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	    $(if $(BACKBONES),--build-arg BACKBONES="$(BACKBONES)") \
	    -t $(call image,$$v,$(TAG)) -t $(call image,$$v,latest) . || exit 1; \
	done

push: $(STAMP) ## Push VARIANT's image (TAG; LATEST=1 also moves latest) to ECR (AWS_REGION; IMMUTABLE=1) or REGISTRY=host:port; same digest: skipped
	PY=$(PY) DOCKER=$(DOCKER) VARIANT="$(VARIANT)" TAG=$(TAG) REGISTRY=$(REGISTRY) AWS_REGION=$(AWS_REGION) \
	  IMMUTABLE=$(IMMUTABLE) LATEST=$(LATEST) containers/push.sh

train-local: $(STAMP) ## Train in the image like SageMaker (docker run --gpus all; VARIANT=cpu: no GPU) on WORK/prepare; HP=, TRAIN_ROOT=
	$(PY) containers/train_local.py --docker $(DOCKER) --image $(call image,$(firstword $(VARIANT)),latest) \
	  --root $(TRAIN_ROOT) --channel train=$(WORK)/prepare/train --channel validation=$(WORK)/prepare/validation \
	  --gpus $(if $(filter cpu,$(VARIANT)),none,all) --hp $(or $(HP),$(if $(filter cpu,$(VARIANT)),preset=cpu))

gpu-target: $(STAMP) ## On a GPU machine: prepare DATA=, train in the GPU image, evaluate; prints img/s, epoch/job time, test accuracy
	@test -n "$(DATA)" || { echo "make gpu-target: set DATA=<a real GTSRB download> (docs/gpu-runbook.md)" >&2; exit 1; }
	$(PY) containers/gpu_target.py --docker $(DOCKER) --image $(call image,gpu,latest) --data $(DATA) --work $(or $(GPU_WORK),runs/gpu-target)

BENCH_ENV ?=
bench-gpu: $(STAMP) ## On a GPU machine: the benchmarks in the GPU image, one GPU and 4 CPUs like ml.g5.xlarge (BENCH_ENV='K=V ...')
	@echo ">> make bench in the GPU image (bench/ mounted read-only; --gpus device=0 --cpuset-cpus 0-3)"
	$(PY) containers/bench_image.py --docker $(DOCKER) --image $(call image,gpu,latest) $(foreach e,$(BENCH_ENV),--env $(e))

pin-base: ## Pin the Dockerfile's dated base tag to the digest its registry serves now (needs Docker Hub)
	DOCKER=$(DOCKER) containers/pin-base.sh

check-gpu-libs: $(STAMP) build/wheelhouse/gpu/.stamp ## Check (no GPU needed) that the GPU wheels satisfy every NEEDED lib of libmxnet.so
	$(PY) containers/check_gpu_libs.py --wheelhouse build/wheelhouse/gpu

# CI cannot download zoo weights: both images are built with BAKE_WEIGHTS=0, and a test bakes a
# stand-in through the same code path. The GPU build is the slow part (several GB of wheels).
# Without an engine it starts a private one (containers/ci/engine.sh, root) and runs itself again
# inside it; in an engine set up already (DOCKER_HOST, REGISTRY and BASE_IMAGE set, as
# `source <engine dir>/env` sets them) it builds and tests there and leaves the engine running.
test-containers: $(STAMP) build/wheelhouse/cpu/.stamp build/wheelhouse/gpu/.stamp ## Build both images, run the steps, serve, docker stop and the GPU lib check in them, registry round trip (root: starts a Docker engine unless DOCKER_HOST+REGISTRY+BASE_IMAGE name one)
ifeq ($(and $(DOCKER_HOST),$(REGISTRY),$(BASE_IMAGE)),)
	containers/ci/engine.sh run -- $(MAKE) --no-print-directory test-containers
else
	$(MAKE) --no-print-directory build VARIANT="cpu gpu" BAKE_WEIGHTS=0
	@echo ">> dropping the build context's copy from the build cache (2.3 GB of GPU wheels; the layer cache stays)"
	$(DOCKER) builder prune --force --filter type=source.local
	@echo ">> container tests: steps + SIGTERM in the CPU image, the SDK's local-mode pipeline and transform, GPU image libraries, registry round trip, pin-base"
	GTSRB_TEST_IMAGE=$(call image,cpu,$(TAG)) GTSRB_TEST_GPU_IMAGE=$(call image,gpu,$(TAG)) \
	  $(PY) -m pytest -m containers tests/containers --durations=8 $(PYTEST_ARGS)
endif

# --- the SageMaker pipeline: make definition / upsert (pipelines/sagemaker/definition.py) ------------------
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
	$(PY) -m pipelines.sagemaker.get_pipeline_definition --kwargs '$(PIPELINE_KWARGS)' --file-name $(DEFINITION)

upsert: $(STAMP) ## Create/update the SageMaker pipeline, tagged (ROLE_ARN=, REGION=, BUCKET=, TAG=; START=1 WAIT_MINUTES=n RECIPE=file runs it)
	@test -n "$(ROLE_ARN)" || { echo "make upsert: set ROLE_ARN=arn:aws:iam::<account>:role/<SageMaker execution role>" >&2; exit 1; }
	@echo ">> upserting the SageMaker pipeline in $(AWS_REGION), images tagged $(TAG)$(if $(START), and starting it)"
	$(PY) -m pipelines.sagemaker.run_pipeline --role-arn '$(ROLE_ARN)' --kwargs '$(PIPELINE_KWARGS)' --tags '$(PIPELINE_TAGS)' \
	  $(if $(START),--start --wait-minutes $(WAIT_MINUTES) $(if $(RECIPE),--recipe $(RECIPE)))

transform: $(STAMP) ## Batch Transform: score INPUT=s3://.../ (images) or s3://.../x.rec into OUTPUT=s3://.../ with the newest Approved version (PACKAGE_ARN=, ROLE_ARN=, REGION=); LOCAL=1: INPUT=<folder or .rec> OUTPUT=<folder> MODEL= in the SDK's local mode, image TAG=
ifeq ($(LOCAL),1)
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "make transform LOCAL=1: set INPUT=<folder of images or x.rec> and OUTPUT=<folder> (MODEL= as for make serve)" >&2; exit 1; }
	@echo ">> batch transform in the SageMaker SDK's local mode (Docker + compose): $(INPUT) -> $(OUTPUT), image $(call image,cpu,$(TAG)), model $(or $(MODEL),the newest version registered by $(WORK))"
	$(PY) -m pipelines.sagemaker_local.transform --input '$(INPUT)' --output '$(OUTPUT)' $(if $(MODEL),--model '$(MODEL)') --work $(WORK) --tag $(TAG)
else
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" -a -n "$(ROLE_ARN)" || { echo "make transform: set INPUT=s3://..., OUTPUT=s3://... and ROLE_ARN=arn:aws:iam::<account>:role/<execution role> (or LOCAL=1 for this machine)" >&2; exit 1; }
	$(PY) -m pipelines.deploy.transform --input '$(INPUT)' --output '$(OUTPUT)' --role-arn '$(ROLE_ARN)' --region $(AWS_REGION) \
	  $(if $(PACKAGE_ARN),--model-package-arn '$(PACKAGE_ARN)') $(if $(WAIT_MINUTES),--wait-minutes $(WAIT_MINUTES))
endif

preflight: $(STAMP) ## Check the SageMaker quotas the pipeline (SPOT=, instance types) and both stages' endpoints need (ROLE_ARN=, REGION=)
	@echo ">> reading the SageMaker service quotas in $(AWS_REGION) that a pipeline run and the staging/prod endpoints need"
	$(PY) -m pipelines.sagemaker.preflight --kwargs '$(PIPELINE_KWARGS)' --stage staging --stage prod

# --- deployment: an Approved version becomes a tested endpoint (pipelines/deploy, docs/deployment.md) --
deploy: $(STAMP) ## Deploy the newest Approved package version to STAGE=staging|prod (deploy/<stage>.json; ROLE_ARN=, REGION=, PACKAGE_ARN=)
	@test -n "$(STAGE)" || { echo "make deploy: set STAGE=staging or STAGE=prod" >&2; exit 1; }
	@echo ">> deploying the newest Approved version$(if $(PACKAGE_ARN), ($(PACKAGE_ARN))) to stage $(STAGE) in $(AWS_REGION)"
	$(PY) -m pipelines.deploy --stage $(STAGE) --region $(AWS_REGION) --git-sha $(TAG) \
	  $(if $(ROLE_ARN),--role-arn '$(ROLE_ARN)') $(if $(PACKAGE_ARN),--model-package-arn '$(PACKAGE_ARN)') \
	  $(if $(GITHUB_OUTPUT),--github-output '$(GITHUB_OUTPUT)')

undeploy: $(STAMP) ## Remove STAGE='s endpoint, its endpoint configs and models (REGION=)
	@test -n "$(STAGE)" || { echo "make undeploy: set STAGE=staging or STAGE=prod" >&2; exit 1; }
	$(PY) -m pipelines.deploy --stage $(STAGE) --region $(AWS_REGION) --undeploy

approve: $(STAMP) ## Approve VERSION= in the local registry of WORK (MLflow tag approval_status=Approved)
	$(PY) -m pipelines.deploy.local_twin approve --work $(WORK) --version '$(VERSION)'

deploy-local: $(STAMP) ## Point the MLflow alias STAGE= at the newest Approved version and serve it (PORT=)
	@test -n "$(STAGE)" || { echo "make deploy-local: set STAGE=staging or STAGE=prod" >&2; exit 1; }
	$(PY) -m pipelines.deploy.local_twin promote --work $(WORK) --stage $(STAGE)
	$(MAKE) --no-print-directory serve STAGE=$(STAGE) WORK=$(WORK)
