"""Precision: int8 (static QDQ) and fp16 copies, how they are found, and how close they stay to fp32.

The int8 copies are made once per session on a few frames of the Friends clip
(calibration on 6 frames, checked on 12 others) to keep the suite short; the
full acceptance run is `weights/compare.py` (figures in README, Configuration).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceid_jobs.config import Settings, load_settings
from faceid_jobs.errors import ExitCode, ModelError
from faceid_jobs.models import load_models
from faceid_jobs.models.agreement import DetectionAgreement, box_iou, match_boxes
from faceid_jobs.models.align import align_faces
from faceid_jobs.models.precision import default_precision_dir, derived_path, resolve_precision
from tests.cli.runner import run

pytestmark = pytest.mark.models


def test_derived_name_carries_the_source_id(tmp_path: Path):
    path = derived_path(tmp_path / "w" / "det_500m.onnx", "5e4447f50245", "int8", tmp_path / "c")
    assert path == tmp_path / "c" / "det_500m.5e4447f50245.int8.onnx"
    with pytest.raises(ValueError):
        derived_path("x.onnx", "0" * 12, "fp32", tmp_path)


def test_default_precision_dir_follows_xdg_cache(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_precision_dir() == tmp_path / "faceid-jobs" / "models"


def test_precision_setting():
    assert Settings().precision == "fp32"
    assert load_settings(environ={"FACEID_JOBS_PRECISION": "int8"}).precision == "int8"
    with pytest.raises(Exception, match="precision must be"):
        Settings(precision="int4")


def test_missing_copy_names_the_command(weights_dir: Path, tmp_path: Path):
    source = weights_dir / "det_500m.onnx"
    assert resolve_precision(source, "fp32", tmp_path) == source
    with pytest.raises(ModelError, match=r"no int8 copy of det_500m.onnx .*weights/quantize.py"):
        resolve_precision(source, "int8", tmp_path)


@pytest.fixture(scope="session")
def int8_dir(tmp_path_factory, weights_dir: Path, friends_clip: Path) -> Path:
    """int8 copies of all four models, calibrated on 6 frames (about 20 s on 2 cores)."""
    pytest.importorskip("onnx")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "weights"))
    try:
        import quantize
    finally:
        sys.path.pop(0)
    out = tmp_path_factory.mktemp("int8")
    env_weights = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_weights.items():
            mp.setenv(k, v)
        assert quantize.main(["--video", str(friends_clip), "--frames", "6", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def int8_models(cpu_settings, int8_dir: Path):
    return load_models(cpu_settings.replace(precision="int8", precision_dir=str(int8_dir)))


@pytest.fixture(scope="session")
def check_frames(friends_clip: Path):
    from faceid_jobs.models.convert import read_frames

    return read_frames(friends_clip, 12, offset=0.25)  # not the calibration frames (offset 0.5)


def test_int8_copies_are_quantized_and_change_the_analysis_id(models, int8_models, int8_dir, cpu_settings):
    import onnx

    assert sorted(p.name for p in int8_dir.glob("*.onnx")) == sorted(
        f"{f.path.stem}.{f.id}.int8.onnx" for f in models.files.values())
    graph = onnx.load(str(int8_models.files["embedder"].path)).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    assert set(int8_models.ids.values()).isdisjoint(models.ids.values())
    assert cpu_settings.analysis_fingerprint(int8_models.ids) != cpu_settings.analysis_fingerprint(models.ids)


def test_int8_agreement_on_sample_frames(models, int8_models, check_frames):
    """What int8 keeps on unseen frames. It does NOT meet the issue's acceptance
    bars (boxes within 1 px for 99 %, cosine ≥ 0.98; README has the full run), so
    fp32 stays the default; this guards the level it reaches."""
    det = DetectionAgreement()
    cosines, live = [], []
    for frame in check_frames:
        ref, cand = models.detector.detect(frame), int8_models.detector.detect(frame)
        pairs = det.add(ref.xyxy, cand.xyxy)
        if not pairs:
            continue
        ri = [i for i, _ in pairs]
        crops = align_faces(frame, ref.kps[ri])
        cosines.append(np.sum(models.embedder.embed(crops) * int8_models.embedder.embed(crops), axis=1))
        boxes = ref.xyxy[ri]
        live.append(np.abs(models.liveness.score(frame, boxes) - int8_models.liveness.score(frame, boxes)))
    s = det.summary()
    assert s["reference_faces"] >= 10
    assert abs(s["count_change"]) <= 0.05 and s["matched"] >= 0.95 * s["reference_faces"]
    assert s["box_err_p50"] <= 2.0
    cos = np.concatenate(cosines)
    assert cos.mean() >= 0.95 and cos.min() >= 0.85
    assert np.concatenate(live).mean() <= 0.05


def test_int8_search_and_verification_pick_the_same_person(models, int8_models, portraits, media_dir):
    from faceid_jobs.images import read_photo
    from faceid_jobs.photo import face_of

    def identify(m, image):
        gallery = {name: face_of(read_photo(p), p.name, m, liveness=False, quality=False)[1]
                   for name, p in portraits.items()}
        names = sorted(gallery)
        faces = m.detector.detect(image)
        emb = m.embedder.embed(align_faces(image, faces.kps))
        return [names[int(np.argmax([gallery[n] @ e for n in names]))] for e in emb], faces.xyxy

    for photo in ("obama_and_biden.jpg", "kit_with_rose.jpg"):
        image = read_photo(media_dir / "people" / "test" / photo)
        a, a_boxes = identify(models, image)
        b, b_boxes = identify(int8_models, image)
        assert len(match_boxes(a_boxes, b_boxes)) == len(a) == len(b)
    # the portraits of the six friends match themselves with both precisions
    for name, path in portraits.items():
        image = read_photo(path)
        assert identify(models, image)[0][:1] == identify(int8_models, image)[0][:1]
        assert name in identify(int8_models, image)[0]


def test_cli_with_int8_setting(weights_dir: Path, int8_dir: Path, tmp_path: Path):
    env = {"FACEID_JOBS_WEIGHTS_DIR": str(weights_dir), "FACEID_JOBS_DEVICE": "cpu",
           "FACEID_JOBS_STORE": str(tmp_path / "store"),
           "FACEID_JOBS_PRECISION": "int8", "FACEID_JOBS_PRECISION_DIR": str(int8_dir)}
    done = run(["doctor", "--json"], env_extra=env)
    assert done.returncode == 0, done.stderr
    files = {m["role"]: Path(m["file"]) for m in json.loads(done.stdout)["models"]}
    assert all(f.parent == int8_dir and f.name.endswith(".int8.onnx") for f in files.values())
    # no copies made: one line naming the missing file and the command, exit code MODEL
    env["FACEID_JOBS_PRECISION_DIR"] = str(tmp_path / "empty")
    missing = run(["doctor", "--json"], env_extra=env)
    assert missing.returncode == ExitCode.MODEL
    assert any("no int8 copy of det_500m.onnx" in p for p in json.loads(missing.stdout)["problems"])
    assert "Traceback" not in missing.stderr


def test_fp16_copy_runs_on_cpu_and_agrees(weights_dir: Path, tmp_path: Path, models, check_frames):
    pytest.importorskip("onnx")
    from faceid_jobs.models.convert import convert_fp16
    from faceid_jobs.models.router import load_model

    det16 = load_model(convert_fp16(weights_dir / "det_500m.onnx", tmp_path / "det16.onnx"), device="cpu",
                       expect="detector", fit=True)
    emb16 = load_model(convert_fp16(weights_dir / "w600k_mbf_int8w.onnx", tmp_path / "emb16.onnx"), device="cpu",
                       expect="embedder")
    frame = max(check_frames, key=lambda f: len(models.detector.detect(f)))
    ref, half = models.detector.detect(frame), det16.detect(frame)
    pairs = match_boxes(ref.xyxy, half.xyxy)
    assert len(pairs) == len(ref) == len(half) > 0
    assert all(box_iou(ref.xyxy[i], half.xyxy[j])[0, 0] > 0.95 for i, j in pairs)
    crops = align_faces(frame, ref.kps)
    assert np.sum(models.embedder.embed(crops) * emb16.embed(crops), axis=1).min() >= 0.99
