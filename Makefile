# The two commands a new user runs: `make demo` and `make test`. Both set everything up first, if needed:
# the Python virtual environment, the npm packages (the Solidity compiler, OpenZeppelin Contracts, anvil),
# the compiler's registration with py-solc-x/Ape, and anvil on the environment's PATH.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
SOLC_VERSION := 0.8.28
SOLCX_DIR := $(or $(SOLCX_BINARY_PATH),$(HOME)/.solcx)
ARCH := $(subst x86_64,amd64,$(subst aarch64,arm64,$(shell uname -m)))
ANVIL_BIN := node_modules/@foundry-rs/anvil-linux-$(ARCH)/bin/anvil
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: setup compile test test-contracts demo bench lint clean

setup: $(VENV)/.installed node_modules/.installed $(SOLCX_DIR)/solc-v$(SOLC_VERSION) $(VENV)/bin/anvil

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev,ray]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
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

# The whole suite: the contract tests on both Ape providers (in-process eth-tester, then anvil); the
# chain-versus-model property tests on anvil, whose block times are exact; everything else in-process.
test: setup
	$(BIN)/ape test tests --ignore=tests/properties --network ethereum:local:test $(PYTEST_ARGS)
	$(BIN)/ape test tests/contracts tests/properties --network ethereum:local:foundry $(PYTEST_ARGS)

demo: setup
	$(BIN)/bme demo

bench: setup
	$(BIN)/bme bench gas --json

lint: setup
	$(BIN)/ruff check offchain tests scripts
	$(BIN)/ruff format --check offchain tests scripts
	$(BIN)/mypy offchain/bme

clean:
	rm -rf .build contracts/.cache $(VENV) node_modules
