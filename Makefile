# Two entry points a newcomer needs: `make demo` (install everything, compose a draft) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := fluidsynth libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont libsndfile1 musescore3 chromium

.PHONY: setup system-deps venv demo test lint bench corpus train evaluate pack-demo clean

setup: system-deps venv

# Debian packages: FluidSynth and GM sound fonts for audio, MuseScore 3 and Chromium for the
# export and audition-page tests. Skipped when not root (install them yourself then).
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi; \
	else echo "not root: install $(APT_PACKAGES) with your package manager"; fi

venv: $(BIN)/musedraft

# torch first and pinned: the CPU wheel on disk; a looser request would pull a CUDA build.
$(BIN)/musedraft: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/musedraft

demo: setup
	$(BIN)/musedraft compose --scene daily --bars 16 --loop --seed 7 --out demo --force

test: setup
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks

bench: venv
	$(BIN)/python benchmarks/run_all.py

corpus: venv
	$(BIN)/musedraft corpus build

train: venv
	$(BIN)/musedraft train

evaluate: venv
	$(BIN)/musedraft evaluate
	$(BIN)/musedraft evaluate --metrics --out docs/evaluation.md --force

pack-demo: venv
	$(BIN)/musedraft pack examples/vn_bgm_pack/scenes.toml --out bgm --force

clean:
	rm -rf demo bgm .pytest_cache .ruff_cache
