# The README's commands. `make setup` is the shared, idempotent first half of both.
# Everything is installed by the project itself and cached by version under ~/.cache/ferrocanary.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE := $(or $(FERROCANARY_CACHE),$(HOME)/.cache/ferrocanary)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# The slow tests mostly wait on canaries' clocks, not on the CPU: two workers, each with its own
# sandbox, each module on one worker, the longest first (tests/conftest.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

.PHONY: setup venv toolchain workload lint typecheck imports rust unit unit-fast integration test demo bench clean

setup: venv toolchain workload

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PIP_CACHE_DIR=$(CACHE)/pip $(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

# Go builds of the control plane, kwok, helm, etcd; Prometheus from Debian. Cached by version.
toolchain: venv
	$(VENV)/bin/ferrocanary local build

# The reference workload's Rust extension (maturin), installed into the venv.
workload: venv
	@if [ -x workloads/build.sh ]; then workloads/build.sh $(PY); fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check operator tests dashboards charts workloads/textscore

# After the workload: textscore's types come with its Rust build.
typecheck: venv workload
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tests/fakes tests/support
	$(VENV)/bin/mypy --explicit-package-bases dashboards/*.py charts/sync.py
	$(VENV)/bin/mypy --strict workloads/textscore/textscore

imports: venv
	cd operator && ../$(VENV)/bin/lint-imports ../.importlinter
	$(VENV)/bin/lint-imports tests/.importlinter

# The workload's Rust crates: tests, clippy with warnings as errors, formatting.
rust:
	CARGO_TARGET_DIR=$(CACHE)/cargo-target cargo test --workspace --quiet
	CARGO_TARGET_DIR=$(CACHE)/cargo-target cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo fmt --all --check

unit: venv
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

# The unit tests that need nothing the toolchain builds: under a minute. The statistical simulations
# (marked slow: thousands of simulated canaries each) run with the integration tests.
unit-fast: venv workload
	$(PY) -m pytest -m "not integration and not toolchain and not slow" $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# The cheap checks first, so a typo or a failing unit test shows in seconds, not after the toolchain
# build (minutes when cold); then the builds and every test that needs them. Each test runs once:
# unit-fast takes "not integration and not toolchain and not slow", the last run the rest.
test: lint imports typecheck unit-fast
	@$(MAKE) --no-print-directory setup rust
	$(PY) -m pytest -m "integration or toolchain or slow" $(PARALLEL) --durations=40 $(PYTEST_ARGS)

# A full canary of the reference workload on the local sandbox; ends with a verdict and a report.
demo: setup
	$(VENV)/bin/ferrocanary demo --quick

bench: setup
	$(VENV)/bin/ferrocanary bench judge --quick --json

clean:
	-$(VENV)/bin/ferrocanary local down
	rm -rf $(VENV)
