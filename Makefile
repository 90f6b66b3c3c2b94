# bandit-engine developer commands. `make run` and `make test` are all a new
# user needs: both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 50051
HTTP_PORT ?= 8080
STATE  ?= .bandit-state
BENCH_JSON ?= bench-results.json
export BENCH_JSON

SOAK_MINUTES ?= 30
CHAOS_SECONDS ?= 120

.PHONY: run test test-fast bench lint typecheck proto clean venv data soak chaos

venv: $(VENV)/.installed

# the engine and its runtime dependencies: all `make run` needs
$(VENV)/.base-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# plus the test, lint and client tools (pytest, grpcurl, the local broker...)
$(VENV)/.installed: $(VENV)/.base-installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# plus the peers and pyspark (the ope section's Spark figure; Java 17 on PATH)
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,spark]'
	touch $@

## run: serve on 127.0.0.1:$(PORT) with embedded defaults (state in $(STATE)/),
## the dashboard on http://127.0.0.1:$(HTTP_PORT)/ (HTTP_PORT=0: off)
run: $(VENV)/.base-installed
	$(BIN)/bandit-engine serve --host 127.0.0.1 --port $(PORT) --state-dir $(STATE) \
		--http-port $(HTTP_PORT)

## test: the whole suite (services tests skip with a reason unless CI=true)
test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

## bench: benchmarks against peers; figures to stdout and $(BENCH_JSON)
bench: $(VENV)/.bench-installed
	PYTHONPATH=tests $(BIN)/python -m harness.bench --out $(BENCH_JSON)

## soak: Recommend + Feedback at half the measured maximum for $(SOAK_MINUTES) minutes, then 3x overload
soak: venv
	PYTHONPATH=tests $(BIN)/python -m harness.soak --minutes $(SOAK_MINUTES) --overload 3 --out soak-results.json

## chaos: fault campaign (servers and learner SIGKILLed, MySQL links killed, bad rewards) under load
chaos: venv
	PYTHONPATH=tests $(BIN)/python -m harness.chaos --seconds $(CHAOS_SECONDS) --out chaos-results.json

## data: the Open Bandit Dataset sample into data/obd (pip download of obp, unpacked)
data: venv
	$(BIN)/python -m simulators.obd fetch data/

lint: venv
	$(BIN)/ruff check bandit_engine simulators tests
	$(BIN)/mypy bandit_engine simulators tests

proto: venv
	$(BIN)/python -m bandit_engine._codegen

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
