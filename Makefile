# The README's commands. Only Python 3.11+ and make are needed; everything else goes in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The URL clients reach and the tokens' issuer (`iss`): follows HOST and PORT unless set.
CRM_PUBLIC_URL ?= http://$(HOST):$(PORT)
# Sample test-mode contacts for the demo tenant: make run DEMO_CONTACTS=50
DEMO_CONTACTS ?= 0

.PHONY: run test lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
		|| { echo "crm needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes; the package itself is installed editable.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/crm db upgrade
	$(BIN)/crm tenants demo --base-url http://$(HOST):$(PORT) --with-contacts $(DEMO_CONTACTS)
	CRM_PUBLIC_URL=$(CRM_PUBLIC_URL) $(BIN)/crm serve --host $(HOST) --port $(PORT)

# Extra pytest arguments, e.g. make test PYTEST_ARGS=-n0 to run serially (no worker processes).
PYTEST_ARGS ?=

test: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

bench: $(VENV)/.installed-test
	@echo "See bench/README.md for the benchmarks and how to run each."

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
