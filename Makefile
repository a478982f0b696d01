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
# users bring their own CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/posttrain demo

test: $(STAMP)
	$(BIN)/pytest -q

# The slow tests include Ray workers and the trackio / W&B trackers: install those extras.
test-all: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,ray,trackio,wandb]'
	$(BIN)/pytest -q -m ""

bench: $(STAMP)
	@mkdir -p benchmarks/results
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
