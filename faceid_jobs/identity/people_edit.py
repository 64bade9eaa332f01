"""People as the user sees them (listing, one person) and the user's edits: name, merge, ignore (I/O via a Store).

A person's numbers come from its nodes (tracks): faces, appearances (the
tracks, joined per video within `appearance_gap_s` by
`search.appearances.merge_appearances`), videos, first and last seen (the
earliest and latest appearance: videos in the order discovery first saw
them, those of one run by path, then by time in the video), and the best
face (highest quality). An appearance's similarity is the cosine of its
track summary to the person's mean.

`name_person` enrolls the person's best faces (one per track, quality and
liveness gates as for photos) as a gallery identity with
`identity.gallery.enroll`; `merge_people` and `ignore_person` are stored in
the people version and kept across rebuilds (`identity/discover.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceid_jobs.errors import ConfigError, EnrollmentError, UnknownPersonError
from faceid_jobs.identity.people import PeopleState, load_state, update_state
from faceid_jobs.photo import PhotoFace
from faceid_jobs.search.appearances import merge_appearances
from faceid_jobs.storage.catalog import list_entries
from faceid_jobs.workspace import Workspace

__all__ = ["EnrollCandidate", "ignore_person", "merge_people", "name_person", "people_view", "person_view"]


def _uris(ws: Workspace) -> dict[str, str]:
    return {e.fingerprint: e.uri for e in list_entries(ws.store, ws.keys)}


def _person_json(pid: str, state: PeopleState, rows: np.ndarray, cols: dict[str, list], uris: dict[str, str],
                 gap_s: float) -> dict[str, Any]:
    meta = state.people.get(pid)
    vec = state.vectors[rows].astype(np.float32)
    mean = vec.mean(0)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)
    sims = vec @ mean
    fps = [cols["fingerprint"][i] for i in rows]
    spans = merge_appearances(fps, [cols["track_id"][i] for i in rows], [cols["start_s"][i] for i in rows],
                              [cols["end_s"][i] for i in rows], sims.tolist(), gap_s=gap_s)
    apps = []
    for s in spans:
        i = rows[s.row]
        video = uris.get(cols["fingerprint"][i], cols["fingerprint"][i])
        apps.append({"video": video,
                     "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                     "timestamp_s": round(cols["timestamp_s"][i], 3), "frame": cols["frame_index"][i],
                     "bbox": [round(float(v), 1) for v in cols["bbox"][i]], "face_id": cols["face_id"][i],
                     "similarity": round(min(1.0, float(sims[s.row])), 4),
                     "_order": (cols["added_version"][i], video)})
    apps.sort(key=lambda a: (a["_order"], a["start_s"]))
    best = rows[int(np.argmax([-1.0 if cols["quality"][i] is None else cols["quality"][i] for i in rows]))]
    for a in apps:
        del a["_order"]

    def seen(a: dict[str, Any]) -> dict[str, Any]:
        return {"video": a["video"], "timestamp_s": a["start_s"]}

    return {
        "id": pid, "name": meta.name if meta else None,
        "faces": int(sum(cols["faces"][i] for i in rows)), "tracks": len(rows), "appearances_count": len(apps),
        "videos": len(set(fps)), "first_seen": seen(apps[0]), "last_seen": seen(apps[-1]),
        "best": {"video": uris.get(cols["fingerprint"][best], cols["fingerprint"][best]),
                 "timestamp_s": round(cols["timestamp_s"][best], 3), "frame": cols["frame_index"][best],
                 "bbox": [round(float(v), 1) for v in cols["bbox"][best]], "face_id": cols["face_id"][best],
                 "quality": cols["quality"][best]},
        "appearances": apps,
    }


def _groups(state: PeopleState) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Person id (ascending) → its node rows (ascending), and the node columns as lists."""
    cols = {c: state.nodes.column(c).to_pylist() for c in state.nodes.column_names}
    persons = np.asarray(cols.get("person", []), dtype=str)
    # One sort, not one scan of every node per person (16.8k people × 235k nodes at 1M faces).
    ids, inverse, counts = np.unique(persons, return_inverse=True, return_counts=True)
    rows = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1]) if len(ids) else []
    return dict(zip(ids.tolist(), rows, strict=True)), cols


def people_view(ws: Workspace, *, min_faces: int = 3, limit: int | None = None, gap_s: float = 1.0,
                state: PeopleState | None = None) -> dict[str, Any]:
    """The people of the newest version, most faces first (ignored ones left out): the `people --json` body."""
    state = state or load_state(ws)
    groups, cols = _groups(state)
    uris = _uris(ws)
    listed = []
    for pid, rows in groups.items():
        faces = int(sum(cols["faces"][i] for i in rows))
        meta = state.people.get(pid)
        if faces >= min_faces and not (meta and meta.ignored):
            listed.append((faces, pid, rows))
    listed.sort(key=lambda t: (-t[0], t[1]))
    people = [_person_json(pid, state, rows, cols, uris, gap_s) for _, pid, rows in listed[:limit]]
    return {"people": people, "version": state.version,
            "clustering": {**state.params, "faces": int(sum(cols.get("faces", []))), "nodes": state.nodes.num_rows,
                           "people": len(groups), "listed": len(listed), "ignored": sum(
                               1 for m in state.people.values() if m.ignored), "created_at": state.created_at}}


def person_view(ws: Workspace, pid: str, *, gap_s: float = 1.0, state: PeopleState | None = None) -> dict[str, Any]:
    """One person (merged ids lead to the person they were merged into).

    Raises:
        UnknownPersonError: no such id.
    """
    state = state or load_state(ws)
    resolved = state.resolve(pid.strip().upper())
    groups, cols = _groups(state)
    if resolved not in groups:
        raise UnknownPersonError(f"{pid}: no such person (see `faceid-jobs people`)")
    out = _person_json(resolved, state, groups[resolved], cols, _uris(ws), gap_s)
    out["ignored"] = bool(state.people.get(resolved) and state.people[resolved].ignored)
    return out


def _known(state: PeopleState, pid: str) -> str:
    resolved = state.resolve(pid.strip().upper())
    state.get(resolved)
    return resolved


def merge_people(ws: Workspace, ids: list[str]) -> str:
    """Merge people into the oldest (smallest) id; returns it. Names: the kept one's, else the first given.

    Raises:
        UnknownPersonError: an id does not exist.
        ConfigError: fewer than two different people, or two different names.
    """
    out: list[str] = []

    def change(state: PeopleState) -> None:
        wanted = sorted({_known(state, p) for p in ids})
        if len(wanted) < 2:
            raise ConfigError("people merge needs at least two different people")
        names = {state.people[p].name for p in wanted} - {None}
        if len(names) > 1:
            raise ConfigError(f"cannot merge people named differently ({', '.join(sorted(names))})")
        keep, rest = wanted[0], wanted[1:]
        person = pc.if_else(pc.is_in(state.nodes.column("person"), pa.array(rest)), keep, state.nodes.column("person"))
        state.nodes = state.nodes.set_column(state.nodes.schema.get_field_index("person"), "person", person)
        state.people[keep].merged = True
        state.people[keep].name = state.people[keep].name or next(iter(names), None)
        for p in rest:
            state.merged_into[p] = keep
            state.people.pop(p, None)
        out.append(keep)

    update_state(ws, "merge", change)
    return out[-1]


def ignore_person(ws: Workspace, pid: str, ignored: bool = True) -> str:
    """Leave a person (a crowd, a poster) out of the listing; kept across rebuilds."""
    out: list[str] = []

    def change(state: PeopleState) -> None:
        p = _known(state, pid)
        state.people[p].ignored = ignored
        out.append(p)

    update_state(ws, "ignore", change)
    return out[-1]


@dataclass(frozen=True)
class EnrollCandidate:
    """A stored face offered for enrollment and why it was refused (None: accepted)."""

    face: PhotoFace
    embedding: np.ndarray
    problem: str | None


def _candidates(ws: Workspace, state: PeopleState, rows: np.ndarray, cols: dict[str, list], count: int,
                min_quality: float, live_threshold: float | None) -> list[EnrollCandidate]:
    from faceid_jobs.records.parquet import parquet_to_table

    order = sorted(rows.tolist(), key=lambda i: -(cols["quality"][i] or -1.0))[:count]
    uris = _uris(ws)
    out = []
    for i in order:
        key = cols["source"][i]
        table = parquet_to_table(ws.store.get(key), key, ["face_id", "embedding"], cipher=ws.cipher)
        hit = table.filter(pc.equal(table.column("face_id"), cols["face_id"][i]))
        emb = np.asarray(hit.column("embedding")[0].as_py(), np.float32)
        video = PurePosixPath(uris.get(cols["fingerprint"][i], cols["fingerprint"][i])).name
        face = PhotoFace(photo=f"{video}@frame{cols['frame_index'][i]}", bbox=tuple(cols["bbox"][i]),
                         det_score=0.0, quality=round(float(cols["quality"][i] or 0.0), 4),
                         liveness=None if cols["liveness"][i] is None else round(float(cols["liveness"][i]), 4),
                         faces_in_photo=1)
        problem = None
        if live_threshold is not None and (face.liveness is None or face.liveness < live_threshold):
            problem = "liveness not measured" if face.liveness is None else f"liveness {face.liveness:.2f}"
        elif face.quality < min_quality:
            problem = f"quality {face.quality:.2f}"
        out.append(EnrollCandidate(face, emb, problem))
    return out


def name_person(ws: Workspace, pid: str, name: str, embedder_id: str, *, faces: int = 8, min_faces: int = 3,
                min_quality: float = 0.5, live_threshold: float | None = 0.5, merge_into: bool = False,
                on_change: Any = None) -> tuple[Any, list[EnrollCandidate]]:
    """Enroll the person's best faces as identity `name` and name the person; (GalleryChange, candidates).

    Raises:
        UnknownPersonError: no such id.
        EnrollmentError: fewer than `min_faces` faces pass the gates (the reasons in the message).
        ConfigError: `name` is enrolled already (unless `merge_into`) or names another person.
    """
    from faceid_jobs.identity.gallery import check_name, enroll, load_gallery_version

    name = check_name(name)
    state = load_state(ws)
    resolved = _known(state, pid)
    other = state.by_name(name)
    if other is not None and other != resolved and not merge_into:
        raise ConfigError(f"{name}: already the name of {other}; `people merge {other} {resolved}` first")
    enrolled = load_gallery_version(ws)
    if enrolled is not None and name in enrolled.identities and not merge_into:
        raise ConfigError(f"{name}: already enrolled; add --merge-into to add {resolved}'s faces to it")
    groups, cols = _groups(state)
    cands = _candidates(ws, state, groups[resolved], cols, faces, min_quality, live_threshold)
    good = [c for c in cands if c.problem is None]
    if len(good) < min_faces:
        why = "; ".join(sorted({c.problem for c in cands if c.problem})) or "too few faces"
        raise EnrollmentError(f"{resolved}: only {len(good)} of its {len(cands)} best faces pass the gates, "
                              f"{min_faces} needed ({why})")
    change = enroll(ws, {name: [(c.face, c.embedding) for c in good]}, embedder_id, replace_existing=False,
                    details={"from_person": resolved, "liveness_checked": live_threshold is not None,
                             "via": "people name"}, on_change=on_change)

    def set_name(s: PeopleState) -> None:
        s.people[_known(s, resolved)].name = name

    update_state(ws, "name", set_name)
    return change, cands
