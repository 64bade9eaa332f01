"""Routing by graph signature, and `load_models` on the real weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from faceid_jobs.errors import ModelError
from faceid_jobs.models import ArcFace, LivenessFusion, MiniFASNet, ModelSet, load_model, load_models
from faceid_jobs.models import router as router_module
from faceid_jobs.models.router import classify
from faceid_jobs.models.scrfd import SCRFD


@dataclass
class _Arg:
    name: str
    shape: list


@dataclass
class FakeGraph:
    inputs: list
    outputs: list

    def get_inputs(self):
        return [_Arg(f"i{k}", s) for k, s in enumerate(self.inputs)]

    def get_outputs(self):
        return [_Arg(f"o{k}", s) for k, s in enumerate(self.outputs)]

    def get_providers(self):
        return ["CPUExecutionProvider"]


SCRFD_OUTS = [
    [12800, 1],
    [3200, 1],
    [800, 1],
    [12800, 4],
    [3200, 4],
    [800, 4],
    [12800, 10],
    [3200, 10],
    [800, 10],
]


@pytest.mark.parametrize(
    ("inputs", "outputs", "kind"),
    [
        ([[1, 3, "?", "?"]], SCRFD_OUTS, "detector"),
        ([[1, 3, 640, 640]], [[1, *s] for s in SCRFD_OUTS], "detector"),
        ([["None", 3, 112, 112]], [[1, 512]], "embedder"),
        ([[1, 3, 112, 112]], [[1, 128]], "embedder"),
        ([["batch", 3, 80, 80]], [["batch", 3]], "liveness"),
        ([["batch", 3, 80, 80]], [["batch", 2]], None),  # not 3 classes
        ([[1, 3, 192, 192]], [[1, 212]], None),  # a landmark model
        ([[1, 3, 112, 112], [1, 512]], [[1, 512]], None),  # two inputs
        ([[1, 1, 112, 112]], [[1, 512]], None),  # grey input
        ([[1, 3, "?", "?"]], SCRFD_OUTS[:3] + SCRFD_OUTS[3:6] + [[100, 2]] * 3, None),
    ],
)
def test_classify(inputs, outputs, kind):
    assert classify(FakeGraph(inputs, outputs)) == kind


def test_unplaceable_graph_names_the_file(monkeypatch, tmp_path: Path):
    graph = FakeGraph([[1, 3, 192, 192]], [[1, 212]])
    monkeypatch.setattr(router_module, "create_session", lambda *a, **k: graph)
    with pytest.raises(ModelError, match=r"2d106det\.onnx: not a face"):
        load_model(tmp_path / "2d106det.onnx")


@pytest.mark.models
@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("det_500m.onnx", SCRFD),
        ("scrfd_2.5g_bnkps.onnx", SCRFD),
        ("w600k_mbf_int8w.onnx", ArcFace),
        ("mobilefacenet_128d.onnx", ArcFace),
        ("minifasnet_v2_2.7_80x80.onnx", MiniFASNet),
        ("minifasnet_v1se_4.0_80x80.onnx", MiniFASNet),
    ],
)
def test_load_model_routes_real_files(weights_dir: Path, name, cls):
    model = load_model(weights_dir / name, device="cpu")
    assert type(model) is cls


@pytest.mark.models
def test_wrong_role_is_an_error(weights_dir: Path):
    with pytest.raises(ModelError, match=r"w600k_mbf_int8w\.onnx: graph kind is embedder, expected detector"):
        load_model(weights_dir / "w600k_mbf_int8w.onnx", device="cpu", expect="detector")


@pytest.mark.models
def test_load_models(models: ModelSet, cpu_settings):
    assert isinstance(models.detector, SCRFD)
    assert isinstance(models.embedder, ArcFace)
    assert isinstance(models.liveness, LivenessFusion)
    assert models.detector.det_size == cpu_settings.det_size
    assert models.detector.min_face_px == cpu_settings.min_face_px
    assert set(models.ids) == {"detector", "embedder", "liveness0", "liveness1"}
    assert all(len(v) == 12 and int(v, 16) >= 0 for v in models.ids.values())
    assert models.ids["detector"] == "5e4447f50245"
    assert models.providers == ["CPUExecutionProvider"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        models.detector = None  # type: ignore[misc]


@pytest.mark.models
def test_liveness_can_be_disabled(cpu_settings):
    models = load_models(cpu_settings.replace(liveness=()))
    assert models.liveness is None
    assert set(models.ids) == {"detector", "embedder"}


HINT = "(set FACEID_JOBS_WEIGHTS_DIR or run `make weights`)"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "det_500m.onnx not found in {dir} " + HINT),
        ({"detector": ("a.onnx", "b.onnx")}, "none of a.onnx, b.onnx found in {dir} " + HINT),
        ({"detector": ()}, "no detector model file configured"),
    ],
)
def test_missing_file_message(tmp_path: Path, changes, message):
    from faceid_jobs.config import Settings

    settings = Settings(weights_dir=str(tmp_path), device="cpu").replace(**changes)
    with pytest.raises(ModelError) as info:
        load_models(settings)
    assert str(info.value) == message.format(dir=tmp_path)


@pytest.mark.models
def test_first_existing_candidate_is_used(cpu_settings):
    settings = cpu_settings.replace(
        detector=("missing_det.onnx", "scrfd_2.5g_bnkps.onnx"),
        embedder=("mobilefacenet_128d.onnx",),
        liveness=(),
    )
    models = load_models(settings)
    assert models.files["detector"].path.name == "scrfd_2.5g_bnkps.onnx"
    assert models.embedder.dim == 128
