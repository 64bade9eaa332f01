# faceid-jobs: set-up, tests, benchmarks. Every target works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_WEIGHTS ?= $(abspath ../shared/weights)
SOURCE ?= ../shared/media/friends/in_video.mp4

.PHONY: setup venv install weights weights-int8 weights-fp16 test test-fast lint bench bench-quick bench-deps demo clean

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

# InsightFace (the peer `make bench` compares with) without its dependencies: they would
# pull the CPU onnxruntime and opencv-python over onnxruntime-gpu / opencv-python-headless.
INSIGHTFACE ?= insightface==2.1
bench-deps: venv ## InsightFace + the few pure-python modules FaceAnalysis imports; checks nothing was overwritten
	@$(PY) -c "from insightface.app import FaceAnalysis" >/dev/null 2>&1 || { \
		$(PY) -m pip install --quiet --no-deps '$(INSIGHTFACE)' && \
		$(PY) -m pip install --quiet onnx tqdm scikit-image requests; }
	@$(PY) bench/check_deps.py

bench: bench-deps ## throughput and latency figures -> bench/results/ (BENCH_ARGS="--quick" etc.)
	$(PY) bench/run.py $(BENCH_ARGS)

bench-quick: bench-deps ## the same figures with fewer runs and shorter inputs (about 6 minutes)
	$(PY) bench/run.py --quick $(BENCH_ARGS)

demo: ## the main job on the embedded defaults: process the test clip, then search a portrait
	$(VENV)/bin/faceid-jobs process $(SOURCE)
	$(VENV)/bin/faceid-jobs search ../shared/media/friends/faces/Ross.png --top-k 10

clean:
	rm -rf $(VENV) build dist *.egg-info faceid-data .pytest_cache .ruff_cache
