import numpy as np
import pyarrow as pa
import pytest

from faceid_jobs.errors import IntegrityError
from faceid_jobs.records import (
    SCHEMA_VERSION,
    ChunkContext,
    face_id,
    faces_to_table,
    parquet_to_table,
    record_schema,
    table_to_parquet,
)
from faceid_jobs.types import Faces

CTX = ChunkContext("v.mp4", "s1-abc", 3, 25.0, "det", "emb", "live", "an1")


def faces(frames, dim=8):
    n = len(frames)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return Faces(
        xyxy=rng.uniform(0, 100, (n, 4)).astype(np.float32),
        score=np.full(n, 0.9, np.float32),
        kps=rng.uniform(0, 100, (n, 5, 2)).astype(np.float32),
        frame_idx=np.asarray(frames, np.int64),
        embedding=emb,
        liveness=np.full(n, 0.7, np.float32),
    )


def test_round_trip_through_parquet():
    f = faces([10, 10, 11])
    table = faces_to_table(f, CTX)
    back = parquet_to_table(table_to_parquet(table), "x")
    assert back.schema.equals(record_schema(8))
    assert back.schema.metadata[b"faceid.schema_version"] == b"2"
    assert back.num_rows == 3
    np.testing.assert_allclose(np.stack(back.column("embedding").to_numpy(zero_copy_only=False)), f.embedding)
    assert back.column("timestamp_s").to_pylist() == [0.4, 0.4, 0.44]
    assert back.column("liveness").to_pylist() == pytest.approx([0.7] * 3)
    assert back.column("track_id").null_count == 3


def test_face_ids_are_deterministic_and_per_frame_ordinal():
    ids = faces_to_table(faces([10, 10, 11]), CTX).column("face_id").to_pylist()
    assert ids == [face_id("s1-abc", 10, 0), face_id("s1-abc", 10, 1), face_id("s1-abc", 11, 0)]
    assert len(set(ids)) == 3
    assert ids == faces_to_table(faces([10, 10, 11]), CTX).column("face_id").to_pylist()


def test_empty_chunk_is_a_valid_file():
    table = faces_to_table(Faces.empty(8), CTX)
    assert parquet_to_table(table_to_parquet(table), "x").num_rows == 0


def test_unknown_version_and_garbage_are_refused():
    table = faces_to_table(faces([1]), CTX)
    meta = dict(table.schema.metadata)
    meta[b"faceid.schema_version"] = str(SCHEMA_VERSION + 1).encode()
    with pytest.raises(IntegrityError, match="version"):
        parquet_to_table(table_to_parquet(table.replace_schema_metadata(meta)), "future.parquet")
    with pytest.raises(IntegrityError, match="damaged"):
        parquet_to_table(b"PAR1 not really", "junk.parquet")
    plain = pa.table({"a": [1]})
    import io

    import pyarrow.parquet as pq
    sink = io.BytesIO()
    pq.write_table(plain, sink)
    with pytest.raises(IntegrityError, match="not a faceid-jobs"):
        parquet_to_table(sink.getvalue(), "other.parquet")
