# The two commands of the README:
#   make run   install and run the service on its embedded default (SQLite, dry-run, example rules)
#   make test  install what tests need and run the whole suite with lint, types and layer checks
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 9095

.PHONY: run test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

run: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/remediator serve --insecure-no-auth --dry-run --listen 127.0.0.1:$(PORT) \
	  --rules-dir rules --state-file remediator.db --allow-namespaces '*'

lint: install
	$(BIN)/ruff check remediator tests bench
	$(BIN)/ruff format --check remediator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/remediator check rules

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info remediator.db*
