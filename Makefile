# Two commands do all the set-up:  `make run` (the main job) and `make test` (the whole suite).
# Both bootstrap a project-local virtual environment (.venv) once and reuse it afterwards.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup run test lint clean help
help:
	@echo "make run   [ARGS='machine=local bench.ranks=4']  set up, then run the mpi4py-import benchmark"
	@echo "make test  [PYTEST_ARGS='-k e2e']                 set up, then ruff, mypy and the whole pytest suite"
	@echo "make setup                                        only set up (.venv + Debian packages)"

setup: $(STAMP)

$(STAMP): pyproject.toml cluster/host-packages.sh
	bash cluster/host-packages.sh
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) run.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf outputs multirun runinfo .pytest_cache .mypy_cache .ruff_cache
