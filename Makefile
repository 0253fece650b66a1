# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export RECS_HOME ?= $(CURDIR)/var
export RECS_MOVIELENS_DIR ?= $(CURDIR)/../shared/data/ml-100k
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export BENTOML_DO_NOT_TRACK := True
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install system-deps demo run test lint bench clean

$(BIN)/recs-platform: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, pinned, so nothing pulls the CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/recs-platform

demo: install
	$(BIN)/recs-platform demo

run: install
	$(BIN)/recs-platform bootstrap && $(BIN)/recs-platform run

# Debian's Chromium for the browser tests (Playwright's own browser download is not used).
system-deps:
	@command -v chromium >/dev/null || (echo "installing Debian's chromium for the browser tests…" && apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install system-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/pipeline.py --home var/bench
	$(BIN)/python bench/serving_latency.py --home var/bench
	$(BIN)/python bench/ingestion_scale.py --sizes 1000000 10000000

clean:
	rm -rf var .pytest_cache dbt_project/target dbt_project/logs
