# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test test-all bench lint install

install: $(STAMP)

# torch==2.13.0 is the CPU build on local disk; pyproject leaves torch unpinned so that
# users bring their own CUDA build. bubblewrap jails model-written code (posttrain.sandbox);
# it needs root and apt-get to install, and without it that code runs in the subprocess
# fallback, which is not a jail. Debian's chromium is the browser Playwright drives in the
# EurekAgent monitor's browser test (no Playwright browser download; without chromium the test
# is skipped). Installs byte-compile: where PYTHONDONTWRITEBYTECODE is set (as
# on this machine and in CI), a module left uncompiled is compiled again by every import.
$(STAMP): pyproject.toml
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null; }; }; } \
	  || echo "NOTE: bubblewrap (bwrap) is not installed and cannot be installed here (needs root and apt-get): model-written code will run in the subprocess fallback, which is not a jail. Install it with: sudo apt-get install bubblewrap"
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } \
	  || echo "NOTE: chromium is not installed and cannot be installed here (needs root and apt-get): the EurekAgent monitor's browser test will be skipped. Install it with: sudo apt-get install chromium"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/posttrain demo

# Two workers (one torch thread each, see tests/conftest.py), a test file per worker at a
# time so module fixtures are built once.
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_WORKERS)

# The slow tests include Ray workers, the trackio / W&B trackers and schemathesis: install those extras.
test-all: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,ray,trackio,wandb,schema,alfworld]'
	$(BIN)/pytest -q -m "" $(PYTEST_WORKERS)

bench: $(STAMP)
	@mkdir -p benchmarks/results
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
