# LatentSky: `make run` serves the app, `make test` runs the suite. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 5006
HOST   ?= 127.0.0.1
TORCH_CPU := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: run test install prepare lint bench clean-data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Pinned CPU torch first where none is present (a bare `torch` would pull a CUDA build).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --disable-pip-version-check -q $(TORCH_CPU)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

prepare: $(STAMP)
	$(PY) -m backend prepare --survey demo

# The job worker runs beside the web server and stops with it; it trains the emulator, which
# `prepare --defer emulator` leaves to it so that the app is served sooner.
run: $(STAMP)
	$(PY) -m backend prepare --survey demo --defer emulator
	$(PY) -m backend worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/panel serve app/main.py --address $(HOST) --port $(PORT) \
		--allow-websocket-origin=$(HOST):$(PORT) --allow-websocket-origin=localhost:$(PORT) \
		--num-threads 4 --plugins app.routes --static-dirs assets=assets

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) bench/run_all.py
