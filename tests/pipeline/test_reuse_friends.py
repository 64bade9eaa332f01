"""Embedding reuse on real footage: 4 s of the Friends clip at every frame, reuse on vs off.

The section (frames 330–429) holds the end of shot 3 (Phoebe, Ross) and the
start of shot 4 (Rachel, Joey); at the cut (400 → 401) a new face appears
where an old one was (box IoU 0.68, so it "continues" it), and must be
embedded itself (its crop's thumbnail correlates ~0.1 with the old one's,
its box is ~15% smaller). Without the look gate, talking faces in this
section reuse embeddings down to cosine 0.4 of their own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faceid_jobs.images import read_photo
from faceid_jobs.pipeline.chunk import ChunkJob, analyse_chunk
from faceid_jobs.records import ChunkContext, faces_to_table
from faceid_jobs.search.appearances import index_rows
from faceid_jobs.search.query import make_query, search_index
from faceid_jobs.video import Chunk
from tests.friends import shot_of
from tests.memory_index import MemoryIndex

pytestmark = [pytest.mark.models, pytest.mark.slow]

FPS = 23.976
FIRST, STOP, CUT = 330, 430, 401
PEOPLE = ("Phoebe", "Ross", "Rachel", "Joey")
MATCH = 0.4


class _CountingEmbedder:
    """The real embedder, counting the crops it is given."""

    def __init__(self, embedder) -> None:
        self.inner, self.dim, self.faces = embedder, embedder.dim, 0

    def embed(self, crops, **kwargs):
        self.faces += len(crops)
        return self.inner.embed(crops, **kwargs)


@pytest.fixture(scope="module")
def runs(friends_clip, models, cpu_settings):
    job = ChunkJob(str(friends_clip), str(friends_clip), "test", FPS, 632, Chunk(0, FIRST, STOP), False, "test")
    out = {}
    for reuse in (0.0, 0.5):
        counting = _CountingEmbedder(models.embedder)
        settings = cpu_settings.replace(sample_fps=0.0, reuse_embedding_s=reuse)
        faces = analyse_chunk(job, dataclasses.replace(models, embedder=counting), settings).faces
        out[reuse] = (faces, counting.faces)
    return out


@pytest.fixture(scope="module")
def queries(models, portraits):
    return {p: make_query(read_photo(portraits[p]), p, models) for p in PEOPLE}


def test_detections_identical_and_most_faces_reuse(runs):
    (off, embedded_off), (on, embedded_on) = runs[0.0], runs[0.5]
    for field in ("xyxy", "score", "kps", "frame_idx", "quality"):
        assert np.array_equal(getattr(on, field), getattr(off, field)), field
    assert len(on) > 150 and embedded_off == len(off)
    assert embedded_on / len(on) < 0.5, f"{embedded_on} of {len(on)} faces embedded"


def test_reused_embeddings_agree_with_fresh_ones(runs):
    (off, _), (on, _) = runs[0.0], runs[0.5]
    cos = np.einsum("ij,ij->i", on.embedding, off.embedding)
    assert cos.min() >= 0.8 and np.median(cos) >= 0.95, (cos.min(), np.median(cos))
    assert np.abs(on.liveness - off.liveness).max() < 0.35
    # Right after the cut every face is new: embedded itself, nothing carried over.
    assert (cos[on.frame_idx == CUT] > 0.999).all()


def test_tracks_unchanged(runs):
    (off, _), (on, _) = runs[0.0], runs[0.5]

    def partition(faces):
        return sorted(tuple(np.flatnonzero(faces.track_id == t)) for t in np.unique(faces.track_id))

    assert partition(on) == partition(off)


def test_recall_kept(runs, models, queries):
    names = list(queries)
    q = np.stack([queries[p].embedding for p in names])
    found = {}
    for reuse, (faces, _) in runs.items():
        shots = np.array([shot_of(int(f)) for f in faces.frame_idx])
        sims = faces.embedding @ q.T
        best = {(p, s): float(sims[shots == s, i].max()) for i, p in enumerate(names) for s in (3, 4)}
        ctx = ChunkContext("v", "test", 0, FPS, models.ids["detector"], models.ids["embedder"],
                           models.liveness_id, "test")
        vectors, meta = index_rows(faces_to_table(faces, ctx), "track", 3)
        index = MemoryIndex(vectors, meta, embedder_id=models.ids["embedder"])
        hits = {}
        for p in names:
            result = search_index(queries[p], index, top_k=100, threshold=MATCH)
            hits[p] = {shot_of(f) for h in result.hits
                       for f in range(round(h.start_s * FPS), round(h.end_s * FPS) + 1)}
        found[reuse] = (best, hits)
    (best_off, hits_off), (best_on, hits_on) = found[0.0], found[0.5]
    assert hits_on == hits_off
    assert hits_off == {"Phoebe": {3}, "Ross": {3}, "Rachel": {4}, "Joey": {4}}
    for key, sim in best_off.items():
        assert best_on[key] == pytest.approx(sim, abs=0.05), key
        assert (best_on[key] >= MATCH) == (sim >= MATCH), key
