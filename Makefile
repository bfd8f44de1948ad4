# fsctl — the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO   ?= demo-out

.PHONY: venv demo lint test test-fast bench sysdeps clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	sh .ci/sysdeps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m compileall -q fsctl fs_scripts
	touch $(STAMP)

venv: $(STAMP)

## demo: provision a demo tenant in an embedded SQLite database and render its configuration
demo: $(STAMP)
	$(BIN)/python -m compileall -q fsctl fs_scripts
	sh tools/demo.sh $(DEMO)

## sysdeps: install the system packages the real-component tests use (Debian, as root)
sysdeps:
	sh .ci/sysdeps.sh tests

## lint: ruff (lint and format check), and the import contracts of setup.cfg (imports only point down the layers)
lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/lint-imports --no-cache

## test: lint, then the whole suite, real PostgreSQL and OpenSSH included
test: lint sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider

## test-fast: lint, then every test that starts no real server (marker `servers` deselected, counted)
test-fast: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not servers"

## bench: the speed targets of the issues, printed as figures
bench: $(STAMP)
	$(BIN)/python -m compileall -q fsctl fs_scripts
	$(BIN)/python -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
