# Diffusion Lens: `make app` sets up and runs the app; `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: app test test-fast setup setup-dev browser lint format bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The pinned requirements first, then this project (the `app` and `model` packages, and the diffusion-lens-*
# commands of pyproject.toml) in editable mode: no dependencies of its own, and built with the setuptools that
# requirements.txt installed, so that it needs no network.
INSTALL_PROJECT := $(BIN)/pip install -q --no-deps --no-build-isolation -e .

$(VENV)/.app-installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	$(INSTALL_PROJECT)
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	$(INSTALL_PROJECT)
	touch $@ $(VENV)/.app-installed

setup: $(VENV)/.app-installed
setup-dev: $(VENV)/.dev-installed

browser:
	bash scripts/install_chromium.sh

app: setup
	$(BIN)/python -m app.launch --server.port $(PORT)  # warms up before the first visitor (app/server/warm_start.py)

# pytest exits 5 when it collects no tests: a test run that ran nothing is a failure here.
test: setup-dev browser haproxy
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The inner loop: every test except the ones marked slow (over ~3 s each) and the browser tests.
test-fast: setup-dev
	@$(BIN)/python -m pytest -m "not slow and not e2e"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: setup-dev
	$(BIN)/ruff check app model tests bench
	$(BIN)/ruff format --check app model tests bench

format: setup-dev
	$(BIN)/ruff format app model tests bench

# Several replicas behind a sticky proxy (README: "More than one server process").
REPLICAS     ?= 3
CLUSTER_PORT ?= 8600

.PHONY: haproxy cluster cluster-down

haproxy:
	bash scripts/install_haproxy.sh

# REPLICAS app replicas on loopback ports behind Debian's haproxy on CLUSTER_PORT; returns once all are healthy.
cluster: setup haproxy
	REPLICAS=$(REPLICAS) CLUSTER_PORT=$(CLUSTER_PORT) bash scripts/cluster.sh up

# Stops, by PID, every process `make cluster` started (.cluster/replicas.pid, .cluster/haproxy.pid).
cluster-down:
	bash scripts/cluster.sh down
