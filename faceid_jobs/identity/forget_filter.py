"""What a merge leaves out while a forget is pending: the person's faces (I/O: reads the journal and gallery).

A forget purges the record files it lists, then merges. A `process` running
meanwhile stores chunks the forget never read; its merge would index the
person's faces from them. So every merge (`index/merge.py`) drops, from the
records it indexes, the faces of each pending forget's person (told as the
forget tells them: best enrolled identity at the forget's threshold, with the
person's embeddings from the intent, so even once the name has left the
gallery), and lists the journal again before publishing: a forget that
started meanwhile makes it merge again.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from faceid_jobs.identity.intent import ForgetIntent, load_intents, pending_intents
from faceid_jobs.identity.labels import label_table
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.storage.base import Store
from faceid_jobs.workspace import Workspace

__all__ = ["TableFilter", "forget_filter", "intent_matrix", "new_forgets", "person_faces", "without_faces"]

# A record table without the faces a pending forget removes.
TableFilter = Callable[[pa.Table], pa.Table]


def intent_matrix(ws: Workspace, intent: ForgetIntent) -> GalleryMatrix | None:
    """The gallery of the intent's embedder with the person as the forget saw them; None if unknown.

    The forget purges with it too, so what a merge leaves out and what the
    forget deletes are the same faces.
    """
    from faceid_jobs.identity.gallery import load_gallery

    gallery = load_gallery(ws)
    others = [(n, gallery.identities[n].embeddings) for n in gallery.names
              if n != intent.name and gallery.identities[n].ref.embedder_id == intent.embedder_id]
    vectors = intent.vectors()
    if len(vectors):
        return GalleryMatrix.from_identities([*others, (intent.name, vectors)])
    if intent.name in gallery.names:  # an intent without embeddings: the gallery still has them
        return gallery.matrix(intent.embedder_id)
    return None


def person_faces(table: pa.Table, matrix: GalleryMatrix, name: str, threshold: float) -> set[str]:
    """Face ids of `table` labelled `name` (face or track) against `matrix` at `threshold`."""
    labels = label_table(table, matrix, threshold)  # only the labelled rows
    named = pc.fill_null(pc.or_kleene(pc.equal(labels.column("identity"), name),
                                      pc.equal(labels.column("track_identity"), name)), False)
    return set(labels.filter(named).column("face_id").to_pylist())


def without_faces(table: pa.Table, face_ids: set[str]) -> pa.Table:
    """`table` without the rows of `face_ids`."""
    return table.filter(pc.invert(pc.is_in(table.column("face_id"), pa.array(sorted(face_ids), pa.string()))))


def forget_filter(ws: Workspace) -> tuple[frozenset[str], TableFilter | None]:
    """(journal keys seen, a function dropping their persons' faces from a record table, or None when none)."""
    intents = [i for i in load_intents(ws) if i.purge_appearances]
    seen = frozenset(i.key for i in intents)
    checks = [(i, m) for i in intents if (m := intent_matrix(ws, i)) is not None]
    if not checks:
        return seen, None

    def drop(table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        embedders = set(table.column("embedder_id").unique().to_pylist())
        doomed: set[str] = set()
        for intent, matrix in checks:
            if embedders != {intent.embedder_id}:
                continue
            doomed |= person_faces(table, matrix, intent.name, intent.threshold)
        return without_faces(table, doomed) if doomed else table

    return seen, drop


def new_forgets(store: Store, seen: frozenset[str]) -> bool:
    """Whether a forget started since `forget_filter` listed the journal."""
    return bool(set(pending_intents(store)) - seen)
