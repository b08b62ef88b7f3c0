# The commands a new user runs: `make demo`, `make up`, `make test` and `make check`. Each sets everything up
# first, if needed: the Python virtual environment, the embedded model's runtime (llama-cpp-python, built for a
# portable CPU baseline, never for this machine's native instruction set), the npm packages (the Solidity
# compiler, OpenZeppelin Contracts, anvil), the compiler's registration with py-solc-x/Ape, and anvil on PATH.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
SOLC_VERSION := 0.8.28
SOLCX_DIR := $(or $(SOLCX_BINARY_PATH),$(HOME)/.solcx)
ARCH := $(subst x86_64,amd64,$(subst aarch64,arm64,$(shell uname -m)))
ANVIL_BIN := node_modules/@foundry-rs/anvil-linux-$(ARCH)/bin/anvil
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: setup model-runtime compile test check lint audit demo up bench clean

setup: model-runtime $(VENV)/.installed node_modules/.installed $(SOLCX_DIR)/solc-v$(SOLC_VERSION) $(VENV)/bin/anvil

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

# Built once per flag set and kept in a cache keyed by those flags (pip's own wheel cache is not used). The
# script runs every time, before the other packages (which would otherwise build it natively), and returns at once
# when the installed build is the one this CPU should have.
model-runtime: | $(VENV)/bin/python
	tools/install-model-runtime.sh $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | model-runtime
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev,ray]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x and ape-solidity look for `solc-v<version>` in their folder; the wrapper answers like native solc.
$(SOLCX_DIR)/solc-v$(SOLC_VERSION): node_modules/.installed tools/solc-wrapper.js FORCE
	mkdir -p $(SOLCX_DIR)
	ln -sfn $(CURDIR)/tools/solc-wrapper.js $@

# ape-foundry finds anvil only on PATH: the npm package ships the real binary.
$(VENV)/bin/anvil: node_modules/.installed $(VENV)/.installed
	ln -sfn $(CURDIR)/$(ANVIL_BIN) $@

FORCE:

compile: setup
	$(BIN)/ape compile

# The whole suite on anvil, with the 15 slowest tests listed at the end; then the contract tests marked
# `inprocess` again on Ape's in-process provider (py-evm, the EVM of `bme scenario run --chain inprocess`).
test: setup
	$(BIN)/ape test tests --network ethereum:local:foundry --durations=15 $(PYTEST_ARGS)
	$(BIN)/ape test tests/contracts --network ethereum:local:test -m inprocess $(PYTEST_ARGS)

# Lint, format, types and every test that needs no chain process and no model: under a minute.
check: setup
	$(BIN)/ruff check offchain tests scripts tools
	$(BIN)/ruff format --check offchain tests scripts tools
	$(BIN)/mypy offchain/bme tools/slither_audit.py
	$(BIN)/pytest -p no:ape_test -m pure -q tests

lint: check

# Slither on contracts/ with the project's compiler set-up; writes out/slither.json and fails on any High or
# Medium result that has no inline suppression with a reason (see tools/slither_audit.py).
audit: setup
	$(BIN)/python tools/slither_audit.py --out out/slither.json

demo: setup
	$(BIN)/bme demo

# A local protocol to use by hand: anvil, the contracts, funded wallets, a node, a relayer and a price feeder.
up: setup
	$(BIN)/bme stack up

bench: setup
	$(BIN)/bme bench gas --json

clean:
	rm -rf .build contracts/.cache $(VENV) node_modules
