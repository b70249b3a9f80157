# Roost's commands. `make run` and `make test` are the two set-up commands on a fresh machine.
PYTHON ?= python3
# CPU build here (a local file on these machines); GPU users: make run TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
DVC_VENV := .venv-dvc
BIN := $(CURDIR)/$(VENV)/bin
DVC := $(CURDIR)/$(DVC_VENV)/bin/dvc

# One repo-local Dagster instance for make run, make ui and every DVC stage, so that runs
# made by `dvc repro` show in the UI. The project venv comes first on PATH so that DVC's
# stages call the project's dagster, not anything of DVC's own environment.
export DAGSTER_HOME := $(CURDIR)/.dagster
export PATH := $(BIN):$(PATH)
# Every materialization outside `dvc repro` (the UI, schedule, sensor) commits its stage with this DVC.
export ROOST_DVC := $(DVC)

.PHONY: install run repro test lint format ui bench clean-data ablations tune browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip check
	touch $@

# dvc pins antlr4-python3-runtime 4.9.* and dagster needs 4.13: dvc gets its own environment.
$(DVC_VENV)/.installed:
	$(PYTHON) -m venv $(DVC_VENV)
	$(DVC_VENV)/bin/python -m pip install -q --upgrade pip
	$(DVC_VENV)/bin/python -m pip install -q 'dvc>=3.50,<4'
	touch $@

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

install: $(VENV)/.installed $(DVC_VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

run: install
	$(DVC) repro

repro: run

# Debian tools the tests use as independent oracles: headless Chromium (the UI test) and
# exiftool (the privacy tests); CI (root) installs them here.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v exiftool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver libimage-exiftool-perl >/dev/null; \
	  else echo "the UI and privacy tests need Debian's chromium, chromium-driver and libimage-exiftool-perl: sudo apt-get install chromium chromium-driver libimage-exiftool-perl"; fi; }

test: $(VENV)/.installed $(DVC_VENV)/.installed browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# PIGEON's ablations as DVC experiments (after `make run`); the table lands in data/ablations/.
ablations: install
	ROOST_DVC=$(DVC) $(BIN)/python -m ml.eval.ablations

# A default chosen on val alone (ml/eval/tune.py): make tune PARAM=geocell_model.epochs VALUES="12 20" [SEEDS=0,1,2]
SEEDS ?= 0,1,2
tune: install
	ROOST_DVC=$(DVC) $(BIN)/python -m ml.eval.tune $(PARAM) $(VALUES) --seeds $(SEEDS)

lint: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: install
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: $(VENV)/.installed
	for b in benchmarks/[a-z]*.py; do $(BIN)/python -m benchmarks.$$(basename $$b .py) || exit 1; done
