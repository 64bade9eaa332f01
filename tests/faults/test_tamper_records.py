"""Someone with write access to the store but no key forges, moves and rewrites record and label files.

Each test edits a real store (made by the CLI) with pyarrow, json and os only,
as the attacker would, then runs the CLI as a user does: the command refuses
(exit 4, one line naming the object, no traceback) and the forged or moved
data never shows in an answer.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.runner import run
from tests.faults.conftest import assert_refused, cli_json

pytestmark = [pytest.mark.faults, pytest.mark.models]

FAKE_FP = "s1-" + "cd" * 16


def record_files(store: Path) -> list[Path]:
    return sorted((store / "records").rglob("chunk-*.parquet"))


def plain_record(fingerprint: str, analysis_id: str, embedding: np.ndarray, nullable_ids: bool = False) -> bytes:
    """A plain Parquet record file of one face with the chosen embedding (the attacker's own schema)."""
    n, dim = 1, embedding.shape[0]
    fields = [("face_id", pa.string()), ("video_uri", pa.string()), ("video_fingerprint", pa.string()),
              ("chunk_index", pa.int32()), ("frame_index", pa.int64()), ("timestamp_s", pa.float64()),
              ("bbox", pa.list_(pa.float32(), 4)), ("landmarks", pa.list_(pa.float32(), 10)),
              ("det_score", pa.float32()), ("embedding", pa.list_(pa.float32(), dim)),
              ("detector_id", pa.string()), ("embedder_id", pa.string()), ("liveness_id", pa.string()),
              ("analysis_id", pa.string()), ("liveness", pa.float32()), ("quality", pa.float32()),
              ("track_id", pa.int64()), ("identity", pa.string())]
    optional = {"liveness_id", "liveness", "quality", "track_id", "identity"}
    schema = pa.schema([pa.field(name, typ, nullable=nullable_ids or name in optional) for name, typ in fields],
                       metadata={b"faceid.schema_version": b"2", b"faceid.embedding_dim": str(dim).encode()})
    values = {"face_id": ["f" * 32], "video_uri": ["/forged.mp4"], "video_fingerprint": [fingerprint],
              "chunk_index": [0], "frame_index": [0], "timestamp_s": [0.0], "bbox": [[0, 0, 100, 100]],
              "landmarks": [[0.0] * 10], "det_score": [0.99], "embedding": [embedding.tolist()],
              "detector_id": ["det"], "embedder_id": ["13ec84867678"], "liveness_id": [None],
              "analysis_id": [analysis_id], "liveness": [1.0], "quality": [1.0], "track_id": [1], "identity": [None]}
    table = pa.Table.from_pydict(values, schema=schema)
    assert table.num_rows == n
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture()
def ross_embedding(models, portraits) -> np.ndarray:
    """The attacker's own embedding of Ross's portrait (the model is public)."""
    import cv2

    from faceid_jobs.photo import face_of

    _, embedding = face_of(cv2.imread(str(portraits["Ross"])), "Ross.png", models)
    return np.asarray(embedding, np.float32)


def forge_entry(store: Path, fingerprint: str) -> Path:
    """A catalog entry for an invented video: a real entry's envelope, fields edited, MAC kept."""
    real = json.loads(next((store / "videos").glob("*.json")).read_bytes())
    body = real["body"] | {"fingerprint": fingerprint, "uri": "/forged.mp4", "chunks": 1}
    target = store / "videos" / f"{fingerprint}.json"
    target.write_text(json.dumps(real | {"body": body}))
    return target


@pytest.mark.parametrize("nullable_ids", [False, True], ids=["exact-schema", "other-nullability"])
def test_plain_record_with_invented_video_is_refused(built, ross_embedding, nullable_ids):
    store = built.store
    before = cli_json(["search", built.root / "faces" / "Ross.png"], built.env)
    analysis_id = record_files(store)[0].parent.parent.name
    forged = store / "records" / "v1" / analysis_id / FAKE_FP / "chunk-000000.parquet"
    forged.parent.mkdir(parents=True)
    forged.write_bytes(plain_record(FAKE_FP, analysis_id, ross_embedding, nullable_ids))
    forge_entry(store, FAKE_FP)
    assert_refused(run(["index", "build"], built.env), f"videos/{FAKE_FP}.json")
    # With the entry gone the record is not current, but a plain file in place of a real chunk is refused too.
    (store / "videos" / f"{FAKE_FP}.json").unlink()
    victim = record_files(store)[0]
    victim.write_bytes(plain_record(victim.parent.name, analysis_id, ross_embedding, nullable_ids))
    verified = run(["index", "verify"], built.env)  # lists every problem, one line each
    assert verified.returncode == 4 and "Traceback" not in verified.stderr
    assert f"{victim.name}: record file is not encrypted" in verified.stderr
    assert f"{victim.name}: record file differs from the one indexed" in verified.stderr
    assert_refused(run(["export", "--plaintext", built.root / "out"], built.env), victim.name)
    # Search answers from the authenticated index: exactly what it said before, the forgery never shown.
    after = run(["search", built.root / "faces" / "Ross.png", "--json"], built.env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["hits"] == before["hits"]
    assert "forged" not in after.stdout


def test_record_moved_under_another_video_is_refused(built):
    store = built.store
    files = record_files(store)
    ross_fp = next(p.parent.name for p in files if p.parent.name != files[-1].parent.name)
    source = next(p for p in files if p.parent.name == ross_fp)
    # Under an invented fingerprint with a catalog entry copied from the real one ...
    moved = source.parent.parent / FAKE_FP / source.name
    moved.parent.mkdir()
    shutil.copy(source, moved)
    forge_entry(store, FAKE_FP)
    assert_refused(run(["index", "build"], built.env), f"videos/{FAKE_FP}.json")
    (store / "videos" / f"{FAKE_FP}.json").unlink()
    # ... and as a new chunk of the other, real video (its catalog entry is genuine).
    other = next(p for p in files if p.parent.name != ross_fp)
    shutil.copy(source, other.parent / "chunk-000009.parquet")
    result = run(["index", "build"], built.env)
    assert_refused(result, "chunk-000009.parquet")
    assert "moved or copied" in result.stderr


def test_label_file_moved_to_a_video_without_the_person_is_refused(built):
    before = cli_json(["find", "Ross"], built.env)
    labels = sorted((built.store / "labels").rglob("chunk-*.parquet"))
    videos = {p.parent.name for p in labels}
    assert len(videos) == 2
    # Ross's label files are the bigger ones (his faces are labelled); Rachel's cut has none of his.
    assert {Path(a["video"]).name for a in before["appearances"]} == {"ross.mp4"}
    biggest = max(labels, key=lambda p: p.stat().st_size)
    target = next(p for p in labels if p.parent.name != biggest.parent.name)
    shutil.copy(biggest, target)
    result = run(["find", "Ross"], built.env)
    assert_refused(result, target.name)
    assert "rachel.mp4" not in result.stdout
