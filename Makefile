# faceid-jobs: set-up, tests, benchmarks. Every target works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_WEIGHTS ?= $(abspath ../shared/weights)
SOURCE ?= ../shared/media/friends/in_video.mp4

.PHONY: setup venv install weights weights-int8 weights-fp16 test test-fast lint bench bench-quick bench-venvs demo clean

setup: install weights ## venv in .venv, editable install with dev tools, model weights
	@$(VENV)/bin/faceid-jobs doctor

venv: $(PY)
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: venv
	$(PY) -m pip install --quiet -e '.[dev]'

weights: ## link ../shared/weights when present, else download the official files
	@if [ -d "$(SHARED_WEIGHTS)" ]; then \
		ln -sfn "$(SHARED_WEIGHTS)" weights/files && echo "weights/files -> $(SHARED_WEIGHTS)"; \
	else \
		$(PYTHON) weights/download.py --dest weights/files; \
	fi

weights-int8: ## int8 (static QDQ) copies of the models, calibrated on the test clip -> ~/.cache/faceid-jobs/models
	$(PY) weights/quantize.py --video $(SOURCE)

weights-fp16: ## fp16 copies of the models (GPU) -> ~/.cache/faceid-jobs/models
	$(PY) weights/fp16.py

test: ## the whole suite (real models and media from ../shared)
	$(PY) -m pytest -q

test-fast: ## unit tests only (no real models)
	$(PY) -m pytest -q -m "not models and not slow"

lint:
	$(VENV)/bin/ruff check faceid_jobs cli flows tests bench

# The peers run in their own venvs (bench/.venvs/, made on first use from the pinned
# bench/peers/*/requirements.txt), so they never share a process or a package with faceid-jobs.
# InsightFace goes in with --no-deps: its metadata asks for the GUI opencv-python.
BENCH_VENVS := bench/.venvs
$(BENCH_VENVS)/naive/bin/python: bench/peers/naive/requirements.txt
	rm -rf $(BENCH_VENVS)/naive && $(PYTHON) -m venv $(BENCH_VENVS)/naive
	$(BENCH_VENVS)/naive/bin/pip install --quiet -r bench/peers/naive/requirements.txt
$(BENCH_VENVS)/insightface/bin/python: bench/peers/insightface/requirements.txt bench/peers/insightface/requirements-nodeps.txt
	rm -rf $(BENCH_VENVS)/insightface && $(PYTHON) -m venv $(BENCH_VENVS)/insightface
	$(BENCH_VENVS)/insightface/bin/pip install --quiet -r bench/peers/insightface/requirements.txt
	$(BENCH_VENVS)/insightface/bin/pip install --quiet --no-deps -r bench/peers/insightface/requirements-nodeps.txt
bench-venvs: venv $(BENCH_VENVS)/naive/bin/python $(BENCH_VENVS)/insightface/bin/python ## the peers' own venvs

bench: bench-venvs ## every figure, whole commands -> bench/results/ (BENCH_ARGS="--sections footage" etc.)
	$(PY) bench/run.py $(BENCH_ARGS)

bench-quick: bench-venvs ## footage + memory on the clip, 1 run: a few minutes
	$(PY) bench/run.py --quick $(BENCH_ARGS)

demo: ## the main job on the embedded defaults: process the test clip, then search a portrait
	$(VENV)/bin/faceid-jobs process $(SOURCE)
	$(VENV)/bin/faceid-jobs search ../shared/media/friends/faces/Ross.png --top-k 10

clean:
	rm -rf faceid-data
	@# This client remembers the newest index version of each store it read (rollback check):
	@# forget the demo store's, or the next `make demo` is refused as a rollback.
	-test ! -x $(VENV)/bin/faceid-jobs || $(VENV)/bin/faceid-jobs index trust --store faceid-data
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
