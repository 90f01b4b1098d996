# Two commands for a new user: `make demo` and `make test`. Both create .venv when missing and
# install the project (with its test extras) into it; a later run reinstalls only when
# pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.introspect-installed
PYTEST_ARGS ?=

.PHONY: demo test lint install browser showcase bench quality clean

demo: install
	$(BIN)/introspect demo --force

test: install browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (configured in pyproject.toml): lint and formatting, line length 120.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# Quantus (a test-only reference for the scorecard) without its opencv-python: grad-cam's headless cv2 serves it.
	$(BIN)/python -m pip install --quiet --no-deps 'quantus>=0.5'
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian's package). Without root or a package
# registry the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will be skipped"; \
	  else echo "chromium is missing and cannot be installed here: browser tests will be skipped"; fi; }

# The showcase: every homework network trained quickly, analyzed, compared (gallery/site/).
showcase: install
	INTROSPECT_DATA=$${INTROSPECT_DATA:-../shared/datasets} $(BIN)/python gallery/build.py

# Side-by-side benchmark ratios (benchmarks/README.md); TorchLens comes with the bench extra.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks --threads 1

# The quality bars of the trainers' networks at their defaults (trainers/RESULTS.md); about 12 minutes.
quality: install
	INTROSPECT_DATA=$${INTROSPECT_DATA:-../shared/datasets} $(BIN)/python -m scripts.quality

clean:
	rm -rf $(VENV) introspect-demo .pytest_cache
