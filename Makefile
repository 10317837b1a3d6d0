# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files: reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

DEMO := .monitor/demo

# The demo starts from empty state each time so it always replays the whole story; a real
# deployment keeps its state (see README). The demo shows alerts as panels; the per-alert log
# lines (alert_raised, alert_delivered) appear with MONITOR_LOG_LEVEL=info.
run: $(VENV)/.installed  ## poll the bundled sample feeds once and print the alerts
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	MONITOR_LOG_LEVEL=$${MONITOR_LOG_LEVEL:-warning} $(BIN)/monitor run --once --state $(DEMO)/state.db --jsonl $(DEMO)/alerts.jsonl

test: $(VENV)/.installed-dev  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check monitor
	$(BIN)/mypy monitor

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/tagging.py
	$(BIN)/python bench/kafka_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
