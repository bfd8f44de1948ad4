# fsctl — the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO   ?= demo-out

.PHONY: venv demo test test-fast bench sysdeps clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	sh .ci/sysdeps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## demo: provision a demo tenant in an embedded SQLite database and render its configuration
demo: $(STAMP)
	sh tools/demo.sh $(DEMO)

## sysdeps: install the system packages the real-component tests use (Debian, as root)
sysdeps:
	sh .ci/sysdeps.sh tests

## test: the whole suite, real PostgreSQL and OpenSSH included
test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider

## bench: the speed targets of the issues, printed as figures
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
