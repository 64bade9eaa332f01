"""The GPU code paths as far as a CPU machine runs them: IO binding with
OrtValue buffers (on the CPU device), TensorRT provider options, gpu.toml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceid_jobs.config import load_settings
from faceid_jobs.models import runtime
from faceid_jobs.models.align import align_faces
from faceid_jobs.models.router import _trt_shapes, load_model
from faceid_jobs.models.runtime import CPU, TENSORRT, SessionRunner, binding_device, choose_providers

REPO = Path(__file__).resolve().parents[2]


def test_tensorrt_options(monkeypatch, tmp_path: Path):
    """Engine cache, fp16 and the optimisation profile reach the TensorRT provider."""
    monkeypatch.setattr(runtime, "cuda_status", lambda: (True, "ok"))
    monkeypatch.setattr(runtime, "_tensorrt_status", lambda: (True, "ok"))
    shapes = ("x:1x3x112x112", "x:64x3x112x112", "x:64x3x112x112")
    providers = choose_providers("tensorrt", trt_cache_dir=tmp_path / "engines", trt_fp16=True, trt_shapes=shapes)
    name, options = providers[0]
    assert name == TENSORRT and providers[1:] == [runtime.CUDA, CPU]
    assert options["trt_engine_cache_path"] == str(tmp_path / "engines") and (tmp_path / "engines").is_dir()
    assert options["trt_fp16_enable"] is True
    assert options["trt_profile_max_shapes"] == "x:64x3x112x112"


def test_gpu_profile():
    s = load_settings(REPO / "configs" / "gpu.toml", environ={})
    assert s.device == "cuda" and s.io_binding and s.embed_batch >= 64 and s.liveness_batch >= 64


def test_binding_device_only_on_gpu_providers():
    class Fake:
        def __init__(self, providers):
            self.providers = providers

        def get_providers(self):
            return self.providers

    assert binding_device(Fake([CPU])) is None
    assert binding_device(Fake([runtime.CUDA, CPU])) == "cuda"
    assert binding_device(Fake([TENSORRT, runtime.CUDA, CPU])) == "cuda"
    assert binding_device(Fake([runtime.CUDA, CPU]), enabled=False) is None


@pytest.mark.models
def test_trt_profiles_from_graphs(weights_dir: Path):
    emb = _trt_shapes(weights_dir / "w600k_mbf_int8w.onnx", 128, 640)
    assert emb == ("input.1:1x3x112x112", "input.1:128x3x112x112", "input.1:128x3x112x112")
    det = _trt_shapes(weights_dir / "det_500m.onnx", 1, 640)
    assert det == ("input.1:1x3x32x32", "input.1:1x3x384x640", "input.1:1x3x640x640")


@pytest.mark.models
def test_io_binding_gives_the_same_results(weights_dir: Path, models, friends_clip: Path):
    """Every wrapper through IO binding (CPU OrtValues; CUDA ones on a GPU) equals plain runs,
    across input shapes and batch sizes (the per-shape buffer cache, its eviction)."""
    from faceid_jobs.models.convert import read_frames

    det = load_model(weights_dir / "det_500m.onnx", device="cpu", expect="detector", fit=True)
    det._runner = SessionRunner(det.session, "cpu")
    emb = load_model(weights_dir / "w600k_mbf_int8w.onnx", device="cpu", expect="embedder")
    emb._runner = SessionRunner(emb.session, "cpu")
    frames = read_frames(friends_clip, 4)
    photo = np.ascontiguousarray(frames[0][:300, :500])  # another input shape for the detector
    for image in [*frames, photo, frames[0]]:
        a, b = models.detector.detect(image), det.detect(image)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.score, b.score, atol=1e-5)
    faces = models.detector.detect(frames[1])
    crops = align_faces(frames[1], faces.kps)
    crops = np.concatenate([crops] * (1 + 13 // max(len(crops), 1)))
    for batch in (1, 2, 3, 5, 8, 13):  # more shapes than the runner keeps
        np.testing.assert_allclose(emb.embed(crops, batch_size=batch), models.embedder.embed(crops), atol=1e-4)
    live = models.liveness.models[0]
    bound = load_model(weights_dir / "minifasnet_v2_2.7_80x80.onnx", device="cpu", expect="liveness")
    bound._runner = SessionRunner(bound.session, "cpu")
    c = live.crops(frames[1], faces.xyxy)
    np.testing.assert_allclose(bound.probabilities_of_crops(c, 3), live.probabilities_of_crops(c, 8), atol=1e-5)


def test_runner_refuses_unknown_device():
    with pytest.raises(ValueError, match="io_binding device"):
        SessionRunner(object(), "tpu")


@pytest.mark.slow
@pytest.mark.models
def test_gpu_check_dry_run_on_cpu(weights_dir: Path, friends_clip: Path, tmp_path: Path):
    """bench/gpu_check.py end to end on CPU (`--devices cpu`): what a GPU machine runs,
    on a 2-s clip; every variant reports stages, rates and agreement with the CPU path."""
    import json
    import subprocess
    import sys

    from tests.cli.runner import cut_clip

    clip = cut_clip(friends_clip, tmp_path / "clip.mp4", 2.0, start_frame=280)
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--weights", str(weights_dir),
                           "--video", str(clip), "--devices", "cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert set(report["variants"]) == {"cpu fp32 (dry run)", "cpu fp16 (dry run)"}
    same = report["variants"]["cpu fp32 (dry run)"]
    assert same["agreement_with_cpu"]["cosine_min"] == 1.0 and same["agreement_with_cpu"]["matched"] > 0
    half = report["variants"]["cpu fp16 (dry run)"]["agreement_with_cpu"]
    assert half["cosine_min"] >= 0.99 and half["faces"] == half["faces_cpu"]
    assert all(v["video_s_per_s_4fps"] > 0 and v["detect_ms_per_frame"] > 0 for v in report["variants"].values())
    assert "CUDA usable: False" in done.stdout
