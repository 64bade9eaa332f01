"""The people found in the archive: versioned, sealed in the store (I/O via a Store).

One object per version, a `crypto.stream` container under a data key of its
own (header ``kind = "faceid-people"``, ``version``, ``key_ref``)::

    people/versions/<version:020d>.bin

Its plaintext is three frames (``u32 length ‖ bytes``): the state as
canonical JSON (people ids, names, ignore and merge edits, the record files
clustered, parameters), the nodes as zstd Parquet (one row per track: its
person, record file, best face, span) and the node vectors as little-endian
float16 (n × dim; the track summaries of `identity/clustering.py`). Versions
are published with put-if-absent like index manifests; the newest is
current; older ones are deleted with their data keys once a newer one is
published (so forgotten faces do not survive in an old copy).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faceid_jobs.crypto.stream import open_sealed, seal
from faceid_jobs.errors import IntegrityError, StoreTransientError, UnknownPersonError
from faceid_jobs.storage.layout import PEOPLE_PREFIX, people_version_key, versions
from faceid_jobs.workspace import Workspace

__all__ = [
    "NODE_SCHEMA",
    "PEOPLE_FORMAT",
    "PeopleState",
    "PersonMeta",
    "clear_names",
    "commit_state",
    "drop_sources",
    "list_people_versions",
    "load_state",
    "person_id",
    "persons_of",
    "update_state",
]

PEOPLE_FORMAT = 1
_KIND = "faceid-people"

NODE_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),       # record file key
    pa.field("fingerprint", pa.string(), nullable=False),
    pa.field("track_id", pa.int64()),                        # null: a face without a track
    pa.field("person", pa.string(), nullable=False),
    pa.field("faces", pa.int32(), nullable=False),
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("end_s", pa.float64(), nullable=False),
    pa.field("face_id", pa.string(), nullable=False),        # the track's best face (quality)
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
    pa.field("quality", pa.float32()),
    pa.field("liveness", pa.float32()),
    pa.field("added_version", pa.int64(), nullable=False),
])


def person_id(number: int) -> str:
    """``P000123``."""
    return f"P{number:06d}"


@dataclass
class PersonMeta:
    """What the user said about a person, and since when it exists."""

    created_version: int
    name: str | None = None
    ignored: bool = False
    merged: bool = False  # made by `people merge`: a rebuild keeps its parts together

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))  # flat: `asdict`'s deep copy took 0.7 s for 16.8k people


@dataclass
class PeopleState:
    """One version of the people (version 0: never discovered)."""

    version: int = 0
    embedder_id: str = ""
    dim: int = 0
    next_id: int = 1
    people: dict[str, PersonMeta] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)  # old id → id it was merged into
    # "fingerprint/track_id" → person of the nodes `drop_sources` removed: the tracks' remaining faces,
    # read again from the rewritten record file, go back to that person (no vectors are kept).
    carried: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    action: str = ""
    nodes: pa.Table = field(default_factory=NODE_SCHEMA.empty_table)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))

    def get(self, pid: str) -> PersonMeta:
        """The person `pid`, following merges (``P000002`` merged into ``P000001`` → P000001)."""
        resolved = self.resolve(pid)
        if resolved not in self.people:
            raise UnknownPersonError(f"{pid}: no such person (see `faceid-jobs people`)")
        return self.people[resolved]

    def resolve(self, pid: str) -> str:
        seen = set()
        while pid in self.merged_into and pid not in seen:
            seen.add(pid)
            pid = self.merged_into[pid]
        return pid

    def by_name(self, name: str) -> str | None:
        return next((p for p, m in self.people.items() if m.name == name), None)

    def body(self) -> dict[str, Any]:
        return {"format": PEOPLE_FORMAT, "version": self.version, "embedder_id": self.embedder_id, "dim": self.dim,
                "next_id": self.next_id, "people": {p: m.to_json() for p, m in sorted(self.people.items())},
                "merged_into": dict(sorted(self.merged_into.items())),
                "carried": dict(sorted(self.carried.items())), "sources": sorted(self.sources),
                "params": self.params, "created_at": self.created_at, "action": self.action}


def track_key(fingerprint: str, track_id: int) -> str:
    """The key of a track in `PeopleState.carried`."""
    return f"{fingerprint}/{track_id}"


def list_people_versions(store: Any) -> list[int]:
    """Published versions, ascending."""
    return versions(store.list(PEOPLE_PREFIX), PEOPLE_PREFIX)


def _frames(*parts: bytes | memoryview) -> list[bytes | memoryview]:
    """``u32 length ‖ bytes`` per part, as a list of pieces (`seal` encrypts them without joining them)."""
    return [piece for p in parts for piece in (struct.pack("<I", memoryview(p).nbytes), p)]


def _unframe(raw: bytes, count: int, name: str) -> list[memoryview]:
    view, out, pos = memoryview(raw), [], 0
    for _ in range(count):
        if pos + 4 > len(raw):
            raise IntegrityError(f"{name}: damaged people version")
        (size,) = struct.unpack_from("<I", raw, pos)
        out.append(view[pos + 4:pos + 4 + size])  # views, not copies (the vectors are most of the bytes)
        pos += 4 + size
    if pos != len(raw):
        raise IntegrityError(f"{name}: damaged people version")
    return out


def _encode(state: PeopleState) -> list[bytes | memoryview]:
    sink = io.BytesIO()
    pq.write_table(state.nodes.cast(NODE_SCHEMA), sink, compression="zstd")
    vectors = np.ascontiguousarray(state.vectors, "<f2").reshape(-1).view(np.uint8)
    return _frames(json.dumps(state.body(), sort_keys=True, separators=(",", ":")).encode(), sink.getvalue(),
                   memoryview(vectors))


def _decode(raw: bytes, name: str, version: int) -> PeopleState:
    body_raw, nodes_raw, vec_raw = _unframe(raw, 3, name)
    try:
        body = json.loads(bytes(body_raw))
        if body.get("format") != PEOPLE_FORMAT:
            raise IntegrityError(f"{name}: people format {body.get('format')} is not supported")
        if body["version"] != version:
            raise IntegrityError(f"{name}: people version {body['version']} stored as {version} (replayed)")
        nodes = pq.read_table(pa.BufferReader(nodes_raw))
        dim = int(body["dim"])
        vectors = np.frombuffer(vec_raw, "<f2").reshape(-1, dim) if dim else np.zeros((0, 0), np.float16)
        if len(vectors) != nodes.num_rows:
            raise IntegrityError(f"{name}: damaged people version (nodes and vectors disagree)")
        return PeopleState(
            version=version, embedder_id=body["embedder_id"], dim=dim, next_id=int(body["next_id"]),
            people={p: PersonMeta(**m) for p, m in body["people"].items()}, merged_into=dict(body["merged_into"]),
            carried=dict(body.get("carried", {})),
            sources=list(body["sources"]), params=dict(body["params"]), created_at=body["created_at"],
            action=body["action"], nodes=nodes, vectors=vectors)
    except (KeyError, TypeError, ValueError, pa.ArrowException):
        raise IntegrityError(f"{name}: damaged people version") from None


def load_state(ws: Workspace, version: int | None = None, attempts: int = 3) -> PeopleState:
    """The newest people version (or `version`); an empty state when none was published.

    Raises:
        IntegrityError: tampered, replayed or undecryptable.
    """
    for _ in range(max(1, attempts)):
        versions = list_people_versions(ws.store)
        wanted = version if version is not None else (versions[-1] if versions else None)
        if wanted is None:
            return PeopleState()
        key = people_version_key(wanted)
        try:
            blob = ws.store.get(key)
        except KeyError:
            if version is not None:
                raise UnknownPersonError(f"{ws.store.uri}: people version {version} does not exist") from None
            continue  # deleted by a newer commit meanwhile: read the newest again
        raw = open_sealed(blob, ws.keys.sealed_key(key), key, {"kind": _KIND, "version": wanted})
        return _decode(raw, key, wanted)
    raise StoreTransientError(f"{ws.store.uri}: people versions keep changing; try again")


def _delete_version(ws: Workspace, version: int) -> None:
    ws.keys.delete_sealed(people_version_key(version))


def commit_state(ws: Workspace, state: PeopleState, action: str) -> PeopleState | None:
    """Publish `state` as the version after the one it was read from; None when another writer
    published that version first (re-read and apply the change again). Older versions are deleted."""
    version = state.version + 1
    new = replace(state, version=version, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  action=action)
    ref, dek = ws.keys.create()
    blob = seal(_encode(new), dek, {"kind": _KIND, "version": version, "key_ref": ref})
    if not ws.store.put_if_absent(people_version_key(version), blob):
        ws.store.delete(ws.keys.key_of(ref))
        return None
    for old in list_people_versions(ws.store):
        if old < version:
            _delete_version(ws, old)
    return new


def update_state(ws: Workspace, action: str, change: Callable[[PeopleState], bool | None],
                 attempts: int = 5) -> PeopleState | None:
    """Apply `change` to the newest version and publish the result; on losing to another writer, read
    the new newest and apply it again. `change` returns False when there is nothing to publish (→ None).

    Raises:
        StoreTransientError: kept losing to concurrent writers.
    """
    for _ in range(attempts):
        state = load_state(ws)
        if change(state) is False:
            return None
        new = commit_state(ws, state, action)
        if new is not None:
            return new
    raise StoreTransientError(f"{ws.store.uri}: could not publish a people version (concurrent changes); try again")


def persons_of(nodes: pa.Table) -> set[str]:
    """The people holding any of these nodes."""
    return set(pc.unique(nodes.column("person")).to_pylist())


def drop_sources(ws: Workspace, record_keys: list[str], *, deleted: bool = False, attempts: int = 5) -> int:
    """Remove the nodes of these record files (rewritten or, `deleted`, deleted by `forget`); returns nodes removed.

    The remaining faces of a rewritten file are read again by the next discovery and go back to the
    person their track belonged to (`PeopleState.carried`), so the others keep their ids and names.
    A person left with no faces and none to come back goes (with its name).
    """
    gone = set(record_keys)
    removed: list[int] = []

    def change(state: PeopleState) -> bool:
        if not state.version or not gone & set(state.sources):
            return False
        keep = np.asarray([s not in gone for s in state.nodes.column("source").to_pylist()], bool)
        if not deleted:
            for i in np.flatnonzero(~keep).tolist():
                row = state.nodes.slice(i, 1).to_pylist()[0]
                if row["track_id"] is not None:
                    state.carried[track_key(row["fingerprint"], row["track_id"])] = row["person"]
        state.nodes = state.nodes.filter(pa.array(keep))
        state.vectors = state.vectors[keep]
        state.sources = [s for s in state.sources if s not in gone]
        kept = persons_of(state.nodes) | set(state.carried.values())
        state.people = {p: m for p, m in state.people.items() if p in kept}
        removed.append(int((~keep).sum()))
        return True

    return removed[-1] if update_state(ws, "forget", change, attempts) is not None else 0


def clear_names(ws: Workspace, names: Iterable[str], attempts: int = 5) -> list[str]:
    """Take these names off every person holding one (their identities left the gallery); returns their ids.

    Otherwise the people would keep a forgotten name: listed, and refused to a later `people name`.
    """
    gone = set(names)
    held: list[str] = []

    def change(state: PeopleState) -> bool:
        held[:] = sorted(p for p, m in state.people.items() if m.name in gone)
        for p in held:
            state.people[p].name = None
        return bool(held)

    update_state(ws, "unname", change, attempts)
    return held
