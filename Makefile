# 求学圆梦助手 — `make run` starts the bot on embedded defaults, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test check lint eval bench clean

install: $(STAMP)

# torch first, pinned: a CPU wheel lies on this machine's disk (anything else pulls a CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# Builds the index on first run, then talks: Telegram if TELEGRAM_BOT_TOKEN is set, else this terminal.
run: install
	$(BIN)/qiuxue ingest --if-missing
	@if [ -n "$$TELEGRAM_BOT_TOKEN" ]; then $(BIN)/qiuxue serve --telegram; else $(BIN)/qiuxue chat; fi

lint: install
	$(BIN)/ruff check bot common ingest tests bench

# Two workers (one per core), a test file per worker at a time: each worker indexes the knowledge base once.
test: install lint
	NO_PROXY=127.0.0.1,localhost $(BIN)/python -m pytest -n 2 --dist loadfile

# The inner loop: lint and every test not marked slow (no killed processes, no second index build).
check: install lint
	NO_PROXY=127.0.0.1,localhost $(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

eval: install
	$(BIN)/qiuxue eval --calibrate

bench: install
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/telegram_bench.py

clean:
	rm -rf data .pytest_cache
