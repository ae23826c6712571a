# hggt_basicsr developer tasks. `make setup` builds .venv reproducibly; `make test` / `make demo` call it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Packages basicsr declares but never imports; installed only so that `pip check` stays quiet.
BASICSR_META := addict future yapf requests
# test-only: the API tests use FastAPI's TestClient (httpx); the browser tests drive Debian's chromium with Playwright
TEST_DEPS := 'pytest>=7' 'ruff>=0.5' 'httpx>=0.27' 'playwright>=1.40'
DEPS_HASH := $(shell cat requirements.txt setup.py Makefile | sha256sum | cut -c1-16)
DEPS_STAMP := $(VENV)/.hggt-deps-$(DEPS_HASH)

.PHONY: setup test test-fast lint format demo bench clean-venv

setup: $(DEPS_STAMP)
	@# editable install of this checkout (re-done when the venv points at another clone)
	@test -x $(BIN)/hggt && $(BIN)/python -I -c "import importlib.util as u, os, sys; \
	s = u.find_spec('hggt_basicsr'); sys.exit(0 if s and os.path.dirname(os.path.dirname(s.origin)) == \
	os.path.realpath('$(CURDIR)') else 1)" 2>/dev/null || $(BIN)/pip install -q --no-build-isolation --no-deps -e .

$(DEPS_STAMP):
	@echo "== creating $(VENV) (torch, basicsr 1.4.2, requirements); this takes a few minutes the first time"
	rm -f $(VENV)/.hggt-deps-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip 'setuptools>=77' wheel
	$(BIN)/pip install -q $(TORCH_PINS)
	@# basicsr 1.4.2 is an sdist whose setup_requires pulls a full CUDA torch into an isolated build env: build it here
	$(BIN)/pip install -q --no-build-isolation --no-deps basicsr==1.4.2
	@# everything else without basicsr's declared deps (opencv-python and tb-nightly would clash with ours)
	grep -v -e '^basicsr' -e '^#' requirements.txt > $(VENV)/requirements-nobasicsr.txt
	$(BIN)/pip install -q $(TORCH_PINS) -r $(VENV)/requirements-nobasicsr.txt $(BASICSR_META) $(TEST_DEPS)
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .

format: setup
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/python -m pytest -q tests

test-fast: setup
	$(BIN)/python -m pytest -q -m 'not slow' tests

demo: setup
	$(BIN)/hggt demo

bench: setup
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
