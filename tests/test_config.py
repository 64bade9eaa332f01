import tomllib
from pathlib import Path

import pytest

from faceid_jobs.config import Settings, load_settings
from faceid_jobs.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_default_profile_matches_builtin_defaults():
    data = tomllib.loads((REPO / "configs" / "default.toml").read_text())
    assert load_settings(REPO / "configs" / "default.toml", environ={}) == Settings()
    assert set(data) == set(Settings.__dataclass_fields__)


def test_gpu_profile_loads():
    s = load_settings(REPO / "configs" / "gpu.toml", environ={})
    assert s.device == "cuda" and s.embed_batch == 128


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"FACEID_JOBS_STORE": "/tmp/x"}, "store", "/tmp/x"),
        ({"FACEID_JOBS_SAMPLE_FPS": "2.5"}, "sample_fps", 2.5),
        ({"FACEID_JOBS_DET_SIZE": "320"}, "det_size", 320),
        ({"FACEID_JOBS_LIVENESS": "a.onnx, b.onnx"}, "liveness", ("a.onnx", "b.onnx")),
        ({"FACEID_JOBS_LIVENESS": ""}, "liveness", Settings().liveness),
        ({"FACEID_JOBS_EMBEDDER": "mobilefacenet_128d.onnx"}, "embedder", ("mobilefacenet_128d.onnx",)),
        ({"FACEID_JOBS_DEVICE": "cpu"}, "device", "cpu"),
    ],
)
def test_env_overrides(env, field, expected):
    assert getattr(load_settings(environ=env), field) == expected


def test_precedence_file_env_flags(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('top_k = 5\nthreshold = 0.5\nsample_fps = 1\n')
    s = load_settings(cfg, {"threshold": 0.6, "top_k": None}, environ={"FACEID_JOBS_TOP_K": "7"})
    assert (s.top_k, s.threshold, s.sample_fps) == (7, 0.6, 1.0)


def test_config_from_env_var(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("top_k = 3\n")
    assert load_settings(environ={"FACEID_JOBS_CONFIG": str(cfg)}).top_k == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "unknown setting"),
        ("det_size = 100\n", "multiple of 32"),
        ("device = 'gpu'\n", "device must be"),
        ("top_k = 'many'\n", "must be int"),
        ("sample_fps = -1\n", "sample_fps"),
        ("reuse_embedding_s = -0.5\n", "reuse_embedding_s"),
        ("not toml [", "invalid TOML"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, environ={})


def test_bad_env_value_names_variable():
    with pytest.raises(ConfigError, match="FACEID_JOBS_TOP_K"):
        load_settings(environ={"FACEID_JOBS_TOP_K": "ten"})


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_settings("/nonexistent/x.toml", environ={})


def test_analysis_fingerprint_tracks_only_result_changing_settings():
    ids = {"detector": "a", "embedder": "b"}
    base = Settings().analysis_fingerprint(ids)
    assert Settings(store="/elsewhere", threads=1, embed_batch=8).analysis_fingerprint(ids) == base
    assert Settings(sample_fps=2).analysis_fingerprint(ids) != base
    assert Settings().analysis_fingerprint({"detector": "a", "embedder": "c"}) != base


def test_reuse_enters_the_fingerprint_only_when_on():
    ids = {"detector": "a", "embedder": "b"}
    on = {Settings(reuse_embedding_s=s).analysis_fingerprint(ids) for s in (0.5, 1.0)}
    off = Settings(reuse_embedding_s=0, det_shape="square").analysis_fingerprint(ids)
    assert len(on) == 2 and off not in on
    # Off (and with the square detector input), the rows are those of a run without reuse: the id
    # is the one from before either setting existed.
    assert off == "073eca43b015378d"


def test_det_shape_enters_the_fingerprint_and_is_checked():
    ids = {"detector": "a", "embedder": "b"}
    assert Settings(det_shape="fit").analysis_fingerprint(ids) != Settings(det_shape="square").analysis_fingerprint(ids)
    with pytest.raises(ConfigError, match="det_shape"):
        Settings(det_shape="round")
