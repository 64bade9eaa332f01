#!/usr/bin/env bash
# GPU check in one go, on a fresh machine with an NVIDIA GPU and this checkout:
# installs what it needs into a venv, then runs bench/gpu_check.py (providers,
# ms per stage, video s/s at every frame and at 4 fps, agreement with the CPU path).
#
#   bash bench/gpu_check.sh [--weights DIR] [--video FILE] [--devices cuda,tensorrt] [--json OUT]
#
# Environment: GPU_VENV (default .venv-gpu; reused when present), PYTHON (python3),
# WHEELS (a folder of wheels for an offline machine: pip installs from it alone),
# CHECK_BUDGET_S (seconds for the Python part, default 330: with installing, the
# whole check stays under 8 minutes; variants that do not fit are skipped, not cut).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
PYTHON=${PYTHON:-python3}
VENV=${GPU_VENV:-.venv-gpu}
BUDGET=${CHECK_BUDGET_S:-330}

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
    echo "nvidia-smi not found: no NVIDIA driver here (the check will report CUDA as unusable)" >&2
fi

# onnxruntime-gpu's own extras pull the CUDA runtime and cuDNN wheels it was built
# against (1.31: CUDA 13, cuDNN 9; cuBLAS is not in the extras, so it is named);
# onnxruntime preloads them from site-packages (runtime._preload_pip_cuda_libraries). TensorRT's wheel is optional: without it
# the tensorrt variant reports that it cannot load and the check goes on.
pip_args=(--quiet --disable-pip-version-check)
if [ -n "${WHEELS:-}" ]; then pip_args+=(--no-index --find-links "$WHEELS"); fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c "import onnxruntime, cv2, scipy, onnx" 2>/dev/null || \
    "$VENV/bin/python" -m pip install "${pip_args[@]}" \
        "onnxruntime-gpu[cuda,cudnn]>=1.20" "nvidia-cublas>=13,<14" \
        "numpy>=1.26" "opencv-python-headless>=4.9" "scipy>=1.11" "onnx>=1.16"
# The TensorRT provider of onnxruntime-gpu 1.31 links libnvinfer.so.10 (TensorRT 10, not 11).
"$VENV/bin/python" -m pip install "${pip_args[@]}" "tensorrt-cu13>=10.13,<11" 2>/dev/null || \
    echo "(TensorRT wheel not installed: the tensorrt variant will be skipped)"
# The TensorRT wheel's libraries are not on the loader's path; onnxruntime's TensorRT
# provider looks for libnvinfer.so.10 there.
trt_libs=$("$VENV/bin/python" -c "import os, tensorrt_libs; print(os.path.dirname(tensorrt_libs.__file__))" \
    2>/dev/null || true)
if [ -n "$trt_libs" ]; then export LD_LIBRARY_PATH="$trt_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
echo "set-up took $(( $(date +%s) - started )) s"

# The library is used from the checkout (no install: the check needs none of the
# CLI's or Prefect's dependencies).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    timeout $(( BUDGET + 120 )) "$VENV/bin/python" bench/gpu_check.py --budget "$BUDGET" "$@"
echo "gpu check took $(( $(date +%s) - started )) s"
