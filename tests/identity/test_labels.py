"""Labels per gallery version, relabel from stored embeddings, and find (no models, synthetic store)."""

from __future__ import annotations

import numpy as np
import pytest

from faceid_jobs.identity.gallery import UnknownIdentityError, enroll, remove
from faceid_jobs.identity.labels import (
    LABELS_PREFIX,
    find_identity,
    label_key,
    label_table,
    label_versions,
    read_labels,
    relabel,
)
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.records import parquet_to_table
from tests.synthetic_store import EMBEDDER, add_video, faces_of, people, photo

NAMES = ("Ross", "Rachel", "Joey")


@pytest.fixture()
def store(make_workspace):
    """Video "v1": chunk 0 = Ross (track 1, 5 faces) then Rachel (track 2, 3 faces); chunk 1 = Joey (track
    3, 4 faces) then Ross again (track 4, 2 faces) and a stranger (track 5, matching nobody). Video "v2": Ross alone."""
    rng = np.random.default_rng(0)
    p = people((*NAMES, "Stranger"), seed=3)
    ws = make_workspace()
    v1 = add_video(ws, "v1", [
        [(v, 1) for v in faces_of(p["Ross"], 5, rng)] + [(v, 2) for v in faces_of(p["Rachel"], 3, rng)],
        [(v, 3) for v in faces_of(p["Joey"], 4, rng)] + [(v, 4) for v in faces_of(p["Ross"], 2, rng)]
        + [(p["Stranger"], 5)],
    ])
    v2 = add_video(ws, "v2", [[(v, 7) for v in faces_of(p["Ross"], 3, rng)]])
    return ws, p, v1 + v2


def _enroll(ws, p, *names):
    return enroll(ws, {n: [(photo(n), p[n])] for n in names}, EMBEDDER)


def test_label_table_labels_faces_and_their_tracks():
    emb = np.eye(4, dtype=np.float32)
    matrix = GalleryMatrix.from_identities([("a", emb[:1]), ("b", emb[1:2])])
    import pyarrow as pa

    faces = np.array([[0.9, 0.1, 0, 0], [0.2, 0.1, 0.9, 0], [0.1, 0.95, 0, 0], [0, 0, 0, 1]], np.float32)
    records = pa.table({
        "face_id": ["f0", "f1", "f2", "f3"], "frame_index": [0, 1, 2, 3], "timestamp_s": [0.0, 0.1, 0.2, 0.3],
        "track_id": [1, 1, 2, None], "bbox": pa.array([[0, 0, 1, 1]] * 4, pa.list_(pa.float32(), 4)),
        "embedding": pa.array(faces.tolist(), pa.list_(pa.float32(), 4)),
    })
    table = label_table(records, matrix, 0.5, meta={"faceid.gallery_version": "7"})
    # f1 is unlabelled but its track is a's; f3 matches nobody and has no track: left out.
    assert table.column("face_id").to_pylist() == ["f0", "f1", "f2"]
    assert table.column("identity").to_pylist() == ["a", None, "b"]
    assert table.column("track_identity").to_pylist() == ["a", "a", "b"]
    assert table.column("identity_similarity").to_pylist()[0] == pytest.approx(0.9)
    assert table.schema.metadata[b"faceid.gallery_version"] == b"7"


def test_relabel_is_incremental_and_follows_the_gallery(store):
    ws, p, keys = store
    assert relabel(ws, EMBEDDER, 0.5).gallery_version == 0  # nothing enrolled: nothing written
    assert not list(ws.store.list(LABELS_PREFIX))
    _enroll(ws, p, "Ross", "Rachel")
    first = relabel(ws, EMBEDDER, 0.5)
    assert (first.gallery_version, first.files, first.files_skipped, first.faces) == (1, 3, 0, 18)
    assert first.labelled_faces == 5 + 3 + 2 + 3 and first.faces_per_second > 0
    again = relabel(ws, EMBEDDER, 0.5)
    assert (again.files, again.files_skipped) == (0, 3)
    assert relabel(ws, EMBEDDER, 0.5, only_missing=False).files == 3
    # Label files are encrypted, name their gallery version, hold only labelled rows.
    raw = ws.store.get(label_key(1, keys[1]))
    assert raw[-4:] == b"PARE" and b"Ross" not in raw
    table = read_labels(ws, label_key(1, keys[1]))
    assert table.column("identity").to_pylist() == ["Ross", "Ross"]  # Joey is not enrolled yet
    _enroll(ws, p, "Joey")
    third = relabel(ws, EMBEDDER, 0.5)
    assert (third.gallery_version, third.files, third.label_versions_deleted) == (2, 3, 1)
    assert label_versions(ws) == [2]
    assert read_labels(ws, label_key(2, keys[1])).column("identity").to_pylist() == ["Joey"] * 4 + ["Ross"] * 2


def test_find_merges_tracks_into_appearances(store):
    ws, p, _ = store
    _enroll(ws, p, *NAMES)
    relabel(ws, EMBEDDER, 0.5)
    result = find_identity(ws, "Ross", gap_s=0.15)
    spans = [(a.video, a.start_s, a.end_s, a.faces) for a in result.appearances]
    # v1: frames 0-4 (track 1) and 12-13 (track 4, in the next chunk); v2: frames 0-2.
    assert spans == [("/videos/v1.mp4", 0.0, 0.4, 5), ("/videos/v1.mp4", 1.2, 1.3, 2), ("/videos/v2.mp4", 0.0, 0.2, 3)]
    best = result.appearances[0]
    assert 0.8 < best.similarity <= 1.0 and best.start_s <= best.timestamp_s <= best.end_s
    assert result.to_json()["labels"] == {"files": 3, "stale_files": 0, "unlabelled_files": 0}
    # A larger gap joins the two appearances in v1.
    assert len(find_identity(ws, "Ross", gap_s=1.0).appearances) == 2
    assert find_identity(ws, "Joey").appearances[0].faces == 4


def test_find_after_a_gallery_change_uses_older_labels_until_relabel(store):
    ws, p, _ = store
    _enroll(ws, p, "Ross", "Rachel")
    relabel(ws, EMBEDDER, 0.5)
    _enroll(ws, p, "Joey")
    stale = find_identity(ws, "Ross", gap_s=0.15)
    assert stale.stale_files == 3 and len(stale.appearances) == 3
    assert find_identity(ws, "Joey").appearances == ()  # not labelled until relabel
    relabel(ws, EMBEDDER, 0.5)
    assert len(find_identity(ws, "Joey").appearances) == 1
    remove(ws, ["Ross"])
    with pytest.raises(UnknownIdentityError):
        find_identity(ws, "Ross")


def test_relabel_reads_only_records(store):
    ws, p, keys = store
    _enroll(ws, p, *NAMES)
    result = relabel(ws, EMBEDDER, 0.5)
    assert result.files == 3
    records = parquet_to_table(ws.store.get(keys[0]), keys[0], cipher=ws.cipher)
    assert records.column("identity").null_count == records.num_rows  # records are never rewritten


def test_processing_labels_its_new_records(store):
    from faceid_jobs.config import Settings
    from faceid_jobs.pipeline.steps import label

    ws, p, keys = store
    label(Settings(identity_threshold=0.5), EMBEDDER, ws=ws)  # no gallery: nothing to do
    assert label_versions(ws) == []
    _enroll(ws, p, *NAMES)
    label(Settings(identity_threshold=0.5), EMBEDDER, ws=ws)
    assert label_versions(ws) == [1] and len(list(ws.store.list(LABELS_PREFIX))) == len(keys)
