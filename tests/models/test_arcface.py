"""ArcFace: preprocessing tables, graph-derived settings on fakes, embeddings on real weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import ModelError
from faceid_jobs.models.align import align_faces
from faceid_jobs.models.arcface import ArcFace, infer_style, preprocess
from faceid_jobs.models.runtime import create_session
from faceid_jobs.models.scrfd import SCRFD


@pytest.mark.parametrize(
    ("bgr", "style", "rgb"),
    [
        ((0, 0, 0), "arcface", (-1.0, -1.0, -1.0)),
        ((255, 127.5, 0), "arcface", (-1.0, 0.0, 1.0)),  # RGB order after the swap
        ((255, 255, 255), "mobilefacenet", ((1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225)),
        ((0, 0, 0), "mobilefacenet", (-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225)),
    ],
)
def test_preprocess(bgr, style, rgb):
    crop = np.zeros((1, 4, 4, 3), np.float32)
    crop[:] = bgr
    crop = np.round(crop).astype(np.uint8) if style == "mobilefacenet" else crop
    blob = preprocess(np.asarray(crop), style)
    assert blob.shape == (1, 3, 4, 4)
    assert blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 2, 2], rgb, atol=1e-5)


@pytest.mark.parametrize(("dim", "style"), [(512, "arcface"), (128, "mobilefacenet"), (256, "arcface")])
def test_infer_style(dim, style):
    assert infer_style(dim) == style


@dataclass
class _Arg:
    name: str
    shape: list


class FakeEmbedder:
    """A 'graph' whose embedding is the mean of each input channel, tiled to D."""

    def __init__(self, batch, dim):
        self.batch, self.dim, self.calls = batch, dim, []

    def get_inputs(self):
        return [_Arg("x", [self.batch, 3, 112, 112])]

    def get_outputs(self):
        return [_Arg("y", [1, self.dim])]

    def run(self, names, feeds):
        x = feeds["x"]
        if isinstance(self.batch, int):
            assert len(x) == self.batch
        self.calls.append(len(x))
        means = x.mean(axis=(2, 3))
        return [np.tile(means, (1, self.dim // 3 + 1))[:, : self.dim]]


@pytest.mark.parametrize(
    ("batch", "dim", "batched", "style", "flip"),
    [
        ("None", 512, True, "arcface", False),
        (None, 512, True, "arcface", False),
        (1, 128, False, "mobilefacenet", True),
    ],
)
def test_settings_come_from_the_graph(batch, dim, batched, style, flip):
    emb = ArcFace(FakeEmbedder(batch, dim))
    assert (emb.dim, emb.batched, emb.style, emb.flip) == (dim, batched, style, flip)
    assert emb.input_size == (112, 112)


@pytest.mark.parametrize(
    ("batch", "n", "batch_size", "calls"), [("N", 5, 2, [2, 2, 1]), (1, 3, 64, [1, 1, 1])]
)
def test_batching(batch, n, batch_size, calls):
    session = FakeEmbedder(batch, 512)
    emb = ArcFace(session, style="arcface", flip=False)
    out = emb.embed(np.zeros((n, 112, 112, 3), np.uint8) + 10, batch_size=batch_size)
    assert out.shape == (n, 512)
    assert session.calls == calls
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_empty_and_bad_input():
    emb = ArcFace(FakeEmbedder("N", 512))
    assert emb.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 512)
    with pytest.raises(ValueError, match="112"):
        emb.embed(np.zeros((2, 64, 64, 3), np.uint8))


def test_two_outputs_is_not_an_embedder():
    class Session(FakeEmbedder):
        def get_outputs(self):
            return [_Arg("a", [1, 512]), _Arg("b", [1, 512])]

    with pytest.raises(ModelError, match="one output"):
        ArcFace(Session("N", 512))


# ---------------------------------------------------------------------------
# Real weights


@pytest.fixture(scope="module")
def people_crops(weights_dir: Path, media_dir: Path) -> dict[str, np.ndarray]:
    det = SCRFD(create_session(weights_dir / "det_500m.onnx", "cpu"))
    folder = media_dir / "people" / "train"
    crops = {}
    for key, rel in [
        ("biden", "biden/biden.jpg"),
        ("biden2", "biden/biden2.jpg"),
        ("obama", "obama/obama.jpg"),
        ("obama2", "obama/obama2.jpg"),
        ("alex", "alex_lacamoire/img1.jpg"),
    ]:
        image = cv2.imread(str(folder / rel))
        faces = det.detect(image, max_faces=1)
        assert len(faces) == 1, rel
        crops[key] = align_faces(image, faces.kps)[0]
    return crops


@pytest.fixture(scope="module", params=[("w600k_mbf_int8w.onnx", 512), ("mobilefacenet_128d.onnx", 128)])
def embedder(request, weights_dir: Path) -> tuple[ArcFace, int]:
    name, dim = request.param
    return ArcFace(create_session(weights_dir / name, "cpu")), dim


@pytest.mark.models
def test_dim_and_unit_norm(embedder, people_crops):
    emb, dim = embedder
    assert emb.dim == dim
    out = emb.embed(np.stack(list(people_crops.values())))
    assert out.shape == (5, dim)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


@pytest.mark.models
def test_batch_equals_single_calls(embedder, people_crops):
    emb, _ = embedder
    crops = np.stack(list(people_crops.values()))
    batch = emb.embed(crops)
    singles = np.concatenate([emb.embed(c[None]) for c in crops])
    np.testing.assert_allclose(batch, singles, atol=1e-4)


@pytest.mark.models
def test_same_person_is_closer(embedder, people_crops):
    emb, _ = embedder
    e = {k: v for k, v in zip(people_crops, emb.embed(np.stack(list(people_crops.values()))), strict=True)}
    assert float(e["biden"] @ e["biden2"]) > 0.35
    assert float(e["obama"] @ e["obama2"]) > 0.35
    for a, b in [("biden", "obama"), ("biden2", "obama2"), ("biden", "alex"), ("obama", "alex")]:
        assert float(e[a] @ e[b]) < 0.3, (a, b)
