# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export RECS_HOME ?= $(CURDIR)/var
export RECS_MOVIELENS_DIR ?= $(CURDIR)/../shared/data/ml-100k
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export BENTOML_DO_NOT_TRACK := True
export PATH := $(CURDIR)/$(BIN):$(PATH)

# pipefail: an install piped through the counter below still fails when pip fails.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

# pip's per-package lines folded into a counter (redrawn on a terminal, a line per 25 packages
# elsewhere), so a long install shows life without a flood; pip's errors pass through.
PIP_PROGRESS = awk -v tty=$$tty '\
	/^(ERROR|error:)/ { print; next } \
	/^(Collecting|Requirement already satisfied)/ { n++; name = ($$1 == "Collecting") ? $$2 : $$4; \
		if (tty) printf "\r      %3d packages  %-50.50s", n, name; \
		else if (n % 25 == 0) printf "      %3d packages (%s)\n", n, name; fflush() } \
	/^Installing collected packages/ { if (tty) printf "\r%70s\r", ""; \
		printf "      installing %d new packages...\n", NF - 3; fflush() } \
	END { if (tty) printf "\r%70s\r", ""; printf "      %d packages in place\n", n }'

.PHONY: install system-deps demo run test lint bench clean

$(BIN)/recs-platform: pyproject.toml
	@echo "==> Installing recs-platform into $(VENV): about 5 minutes on a fresh machine, once"
	@test -x $(BIN)/python || { echo "--> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "--> pip (seconds)"
	@$(BIN)/pip install --quiet --upgrade pip
	@# The CPU build of torch first, pinned, so nothing pulls the CUDA wheels.
	@echo "--> PyTorch 2.13.0, CPU build (about 200 MB; a minute or two)"
	@tty=0; [ -t 1 ] && tty=1; $(BIN)/pip install torch==2.13.0 2>&1 | $(PIP_PROGRESS)
	@echo "--> Dagster, dbt, BentoML, pandera, scikit-learn and ~170 dependencies (about 3 minutes)"
	@tty=0; [ -t 1 ] && tty=1; $(BIN)/pip install -e '.[dev]' 2>&1 | $(PIP_PROGRESS)
	@touch $@
	@echo "==> Installed: $(BIN)/recs-platform"

install: $(BIN)/recs-platform

demo: install
	@echo "==> recs-platform demo: lands MovieLens-100K, runs the whole graph (a few minutes, with progress),"
	@echo "    then starts the Dagster UI and the API and prints their URLs"
	$(BIN)/recs-platform demo

run: install
	$(BIN)/recs-platform bootstrap && $(BIN)/recs-platform run

# Debian's Chromium for the browser tests (Playwright's own browser download is not used), and
# Debian's PostgreSQL server for the instance and second-dbt-target tests (tests/postgres_server.py
# starts its own on a loopback port; Debian keeps initdb and pg_ctl in /usr/lib/postgresql/*/bin).
system-deps:
	@command -v chromium >/dev/null || (echo "installing Debian's chromium for the browser tests…" && apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (echo "installing Debian's postgresql for the PostgreSQL tests…" && apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)

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
