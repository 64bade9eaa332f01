"""The gallery of enrolled identities: versioned and encrypted in the store (I/O via a Store).

Layout (both kinds of object are `crypto.stream` containers, each under a
data key of its own named in its authenticated header, `key_ref`)::

    gallery/versions/<version:020d>.bin   one gallery version: name → entry, sealed
    gallery/entries/<entry_id>.bin        one identity: its embeddings and photo facts, sealed

Nothing about an identity, not even its name, is readable without the key.
A version's header carries ``kind = "faceid-gallery"`` and its number, an
entry's ``kind = "faceid-gallery-entry"`` and its id; readers check them, so
a version copied under another number or an entry under another id is
refused (`IntegrityError`).

Versions are committed with put-if-absent, like index manifests: the highest
number is the current gallery; a writer that loses the race re-reads the new
version and applies its change again. Entries are immutable: changing an
identity (more photos, `--replace`) writes a new entry. After each commit
the entries the new version no longer references are deleted with their data
keys, so a removed identity's embeddings cannot be read back from any copy;
a removal also deletes the older versions, which still name it.

A reader refuses a gallery whose newest version is below the newest this
client has seen (`index/watermark.py`, ``sibling("gallery")``): deleting
the newest versions (say, the one a removal published) is a rollback, exit 4.

Policy lives here, not in the callers: `enroll` and `remove` write the audit
record of the change themselves (`faceid_jobs.identity.audit`), whoever calls
them (CLI or HTTP API), and then call the caller's `on_change` with the
`GalleryChange` (the CLI and the API pass one that emits the Prefect event
``faceid.enrollment.changed``; the library itself never imports Prefect).
"""

from __future__ import annotations

import base64
import json
import logging
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from faceid_jobs.crypto.stream import open_sealed, seal
from faceid_jobs.errors import ConfigError, IntegrityError, StoreTransientError, UnknownIdentityError
from faceid_jobs.identity.audit import write_audit
from faceid_jobs.identity.matching import GalleryMatrix
from faceid_jobs.identity.people import clear_names
from faceid_jobs.index.watermark import Watermark
from faceid_jobs.photo import PhotoFace
from faceid_jobs.storage.layout import (
    GALLERY_ENTRIES_PREFIX,
    GALLERY_VERSIONS_PREFIX,
    gallery_entry_key,
    gallery_version_key,
    versions,
)
from faceid_jobs.workspace import Workspace

__all__ = [
    "ENTRIES_PREFIX",
    "VERSIONS_PREFIX",
    "Gallery",
    "GalleryChange",
    "Identity",
    "IdentityRef",
    "OnChange",
    "UnknownIdentityError",
    "check_name",
    "enroll",
    "identity_rows",
    "list_gallery_versions",
    "load_gallery",
    "load_gallery_version",
    "notify",
    "remove",
    "trust_newest_gallery",
]

log = logging.getLogger(__name__)

VERSIONS_PREFIX = GALLERY_VERSIONS_PREFIX
ENTRIES_PREFIX = GALLERY_ENTRIES_PREFIX
_FORMAT = 1
_VERSION_KIND = "faceid-gallery"
_ENTRY_KIND = "faceid-gallery-entry"
MAX_NAME = 128


def check_name(name: str) -> str:
    """A valid identity name (stripped), or ConfigError: 1–128 characters, no control characters.

    Example:
        >>> check_name(" Ross ")
        'Ross'
    """
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or any(unicodedata.category(c).startswith("C") for c in clean):
        raise ConfigError(f"invalid identity name {name!r}: use 1-{MAX_NAME} printable characters")
    return clean


@dataclass(frozen=True)
class IdentityRef:
    """An identity as a gallery version lists it."""

    name: str
    entry_id: str
    embeddings: int
    embedder_id: str
    enrolled_at: str
    updated_at: str

    @property
    def key(self) -> str:
        return gallery_entry_key(self.entry_id)


@dataclass(frozen=True)
class Identity:
    """An enrolled identity with its embeddings (k, D) float32, L2-normalised."""

    ref: IdentityRef
    embeddings: np.ndarray
    photos: tuple[PhotoFace, ...]

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class Gallery:
    """One gallery version with its identities (version 0: nothing enrolled yet)."""

    version: int
    created_at: str = ""
    identities: dict[str, Identity] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.identities)

    def get(self, name: str) -> Identity:
        try:
            return self.identities[name]
        except KeyError:
            raise UnknownIdentityError(f"{name}: not enrolled (see `faceid-jobs identities list`)") from None

    def matrix(self, embedder_id: str, dim: int = 0) -> GalleryMatrix:
        """The identities enrolled with `embedder_id` (others are left out, with a warning)."""
        chosen = []
        for name in self.names:
            identity = self.identities[name]
            if identity.ref.embedder_id != embedder_id:
                log.warning("%s: enrolled with embedder %s, not %s; not matched (enrol again)",
                            name, identity.ref.embedder_id, embedder_id)
                continue
            chosen.append((name, identity.embeddings))
        return GalleryMatrix.from_identities(chosen, dim)


@dataclass(frozen=True)
class GalleryVersion:
    """A version's manifest: which entry holds each identity (no embeddings)."""

    version: int
    parent: int | None
    created_at: str
    identities: dict[str, IdentityRef]
    action: str = ""

    def body(self) -> dict[str, Any]:
        return {"format": _FORMAT, "version": self.version, "parent": self.parent, "created_at": self.created_at,
                "action": self.action,
                "identities": {n: asdict(r) for n, r in sorted(self.identities.items())}}


@dataclass(frozen=True)
class GalleryChange:
    """What an enroll or remove committed, and the key of its audit record ("" when none was written)."""

    version: int
    action: str
    names: tuple[str, ...]
    embeddings: int = 0
    audit_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"names": list(self.names)}


# Called after each committed change (e.g. to emit the Prefect event); see `notify`.
OnChange = Callable[[GalleryChange], None]


def notify(on_change: OnChange | None, change: GalleryChange) -> None:
    """Call `on_change` with a committed change; a failure is logged, never raised (the change stands)."""
    if on_change is None:
        return
    try:
        on_change(change)
    except Exception as exc:  # the gallery version is published: nothing to undo
        log.warning("gallery version %d committed, but announcing it failed (%s: %s)", change.version,
                    type(exc).__name__, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def version_key(version: int) -> str:
    return gallery_version_key(version)


def list_gallery_versions(store: Any) -> list[int]:
    """Committed gallery versions, ascending."""
    return versions(store.list(VERSIONS_PREFIX), VERSIONS_PREFIX)


def _seal(ws: Workspace, body: dict[str, Any], fields: dict[str, Any]) -> bytes:
    ref, dek = ws.keys.create()
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return seal(raw, dek, fields | {"key_ref": ref})


def _open(ws: Workspace, key: str, expect: dict[str, Any]) -> dict[str, Any]:
    blob = ws.store.get(key)  # KeyError when absent: callers decide what that means
    raw = open_sealed(blob, ws.keys.sealed_key(key), key, expect)
    try:
        body = json.loads(raw)
        if body.get("format") != _FORMAT:
            raise IntegrityError(f"{key}: gallery format {body.get('format')} is not supported")
        return body
    except (ValueError, TypeError):
        raise IntegrityError(f"{key}: damaged gallery object") from None


def load_gallery_version(ws: Workspace, version: int | None = None) -> GalleryVersion | None:
    """The newest gallery version's manifest (or `version`); None when nothing was ever enrolled.

    Raises:
        IntegrityError: tampered, replayed or undecryptable version.
        UnknownIdentityError: `version` does not exist.
    """
    listed = list_gallery_versions(ws.store)
    newest = listed[-1] if listed else 0
    mark = _mark(ws)
    seen = mark.read() if mark is not None else None
    if seen is not None and newest < seen.version:
        raise IntegrityError(f"{ws.store.uri}: gallery rolled back from v{seen.version} to v{newest} (newer "
                             "gallery versions were deleted; if you deleted or recreated this store yourself: "
                             "`faceid-jobs index trust`)")
    if version is None:
        if not listed:
            return None
        version = newest
    key = version_key(version)
    try:
        body = _open(ws, key, {"kind": _VERSION_KIND, "version": version})
    except KeyError:
        raise UnknownIdentityError(f"{ws.store.uri}: gallery version {version} does not exist") from None
    if body.get("version") != version:
        raise IntegrityError(f"{key}: gallery version {body.get('version')} stored as {version} (replayed)")
    try:
        refs = {n: IdentityRef(**r) for n, r in body["identities"].items()}
        loaded = GalleryVersion(version, body["parent"], body["created_at"], refs, body.get("action", ""))
    except (KeyError, TypeError):
        raise IntegrityError(f"{key}: damaged gallery version") from None
    if mark is not None and version == newest and (seen is None or seen.version < version):
        mark.advance(version, "")  # only when newer: no lock taken on every read of an unchanged gallery
    return loaded


def _mark(ws: Workspace) -> Watermark | None:
    """This client's high-water mark of the store's gallery (None: a workspace without state dir)."""
    return ws.keys.watermark.sibling("gallery") if ws.keys.watermark is not None else None


def trust_newest_gallery(ws: Workspace) -> int | None:
    """Make the newest authenticated gallery version this client's mark, even below it (`index trust`)."""
    mark = _mark(ws)
    if mark is not None:
        mark.reset(None)
    newest = load_gallery_version(ws)  # with no mark held, reading the newest version sets the mark to it
    return newest.version if newest else None


def _load_entry(ws: Workspace, ref: IdentityRef) -> Identity:
    body = _open(ws, ref.key, {"kind": _ENTRY_KIND, "entry_id": ref.entry_id})
    try:
        dim = int(body["dim"])
        vectors = np.frombuffer(base64.b64decode(body["embeddings"]), "<f4").reshape(-1, dim)
        photos = tuple(PhotoFace(**{**p, "bbox": tuple(p["bbox"])}) for p in body["photos"])
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(f"{ref.key}: damaged gallery entry") from None
    if body.get("name") != ref.name or len(vectors) != ref.embeddings:
        raise IntegrityError(f"{ref.key}: gallery entry does not match its version (swapped)")
    return Identity(ref, np.ascontiguousarray(vectors, np.float32), photos)


def load_gallery(ws: Workspace, version: int | None = None, *, names: Iterable[str] | None = None,
                 attempts: int = 3) -> Gallery:
    """The newest gallery (or `version`) with embeddings; only `names` when given.

    An entry deleted by a concurrent change sends the reader to the newer version.

    Raises:
        IntegrityError: tampered or undecryptable gallery data.
        UnknownIdentityError: a name in `names` is not enrolled.
    """
    wanted = None if names is None else list(names)
    for attempt in range(max(1, attempts)):
        manifest = load_gallery_version(ws, version)
        if manifest is None:
            if wanted:
                Gallery(0).get(wanted[0])
            return Gallery(0)
        refs = manifest.identities
        if wanted is not None:
            for name in wanted:
                if name not in refs:
                    raise UnknownIdentityError(f"{name}: not enrolled (see `faceid-jobs identities list`)")
            refs = {n: refs[n] for n in wanted}
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(refs)))) as pool:
                loaded = list(pool.map(lambda r: _load_entry(ws, r), refs.values()))
        except KeyError:
            if version is None and attempt < attempts - 1:
                continue
            raise IntegrityError(f"{ws.store.uri}: gallery version {manifest.version} names an entry "
                                 "that is missing from the store") from None
        return Gallery(manifest.version, manifest.created_at, {i.name: i for i in loaded})
    return Gallery(0)  # not reached: the last attempt returns or raises


def _entry(ws: Workspace, name: str, embeddings: np.ndarray, photos: list[PhotoFace], embedder_id: str,
           enrolled_at: str) -> IdentityRef:
    entry_id = uuid.uuid4().hex
    vectors = np.ascontiguousarray(embeddings, "<f4")
    body = {"format": _FORMAT, "name": name, "embedder_id": embedder_id, "dim": int(vectors.shape[1]),
            "embeddings": base64.b64encode(vectors.tobytes()).decode(),
            "photos": [p.to_json() for p in photos]}
    ref = IdentityRef(name, entry_id, len(vectors), embedder_id, enrolled_at, _now())
    ws.store.put(ref.key, _seal(ws, body, {"kind": _ENTRY_KIND, "entry_id": entry_id}))
    return ref


def _commit(ws: Workspace, action: str,
            change: Callable[[dict[str, IdentityRef], int], dict[str, IdentityRef]],
            attempts: int = 5) -> tuple[GalleryVersion, GalleryVersion | None]:
    """Apply `change` (current refs, new version → new refs) and publish; (new, base)."""
    for _ in range(attempts):
        base = load_gallery_version(ws)
        version = (base.version if base else 0) + 1
        refs = change(dict(base.identities) if base else {}, version)
        manifest = GalleryVersion(version, base.version if base else None, _now(), refs, action)
        blob = _seal(ws, manifest.body(), {"kind": _VERSION_KIND, "version": version})
        if ws.store.put_if_absent(version_key(version), blob):
            if (mark := _mark(ws)) is not None:
                mark.advance(version, "")
            return manifest, base
        log.info("gallery version %d was published concurrently; applying the change again", version)
    raise StoreTransientError(f"{ws.store.uri}: could not publish a gallery version after {attempts} attempts "
                     "(concurrent changes); try again")


def _delete_entry(ws: Workspace, ref: IdentityRef) -> None:
    """Delete an entry and its data key (the embeddings become unreadable everywhere)."""
    ws.keys.delete_sealed(ref.key)


def _drop_unreferenced(ws: Workspace, new: GalleryVersion, base: GalleryVersion | None) -> None:
    if base is None:
        return
    live = {r.entry_id for r in new.identities.values()}
    for ref in base.identities.values():
        if ref.entry_id not in live:
            _delete_entry(ws, ref)


def enroll(ws: Workspace, faces: dict[str, list[tuple[PhotoFace, np.ndarray]]], embedder_id: str, *,
           replace_existing: bool = False, details: dict[str, Any] | None = None,
           on_change: OnChange | None = None) -> GalleryChange:
    """Add identities (or photos to enrolled ones), publish a new gallery version, audit it, announce it.

    Args:
        ws: the store and keys.
        faces: name → the (face, (D,) embedding) of each checked photo.
        embedder_id: model id of the embedder that made the embeddings.
        replace_existing: an enrolled name gets exactly these photos instead
            of keeping its earlier ones.
        details: more facts for the audit record (e.g. ``liveness_checked``,
            ``via``); never biometric data.
        on_change: called with the committed change (see `notify`).

    Raises:
        ConfigError: nothing to enrol, or an enrolled name was embedded by
            another embedder (enrol it again with `replace_existing`).
    """
    if not faces or not all(faces.values()):
        raise ConfigError("nothing to enrol: every identity needs at least one photo")
    # (name, entry it extends) → entry written; a retry on a new base reuses what still fits.
    written: dict[tuple[str, str | None], IdentityRef] = {}

    def change(refs: dict[str, IdentityRef], version: int) -> dict[str, IdentityRef]:
        for name, items in faces.items():
            old = None if replace_existing else refs.get(name)
            slot = (name, old.entry_id if old else None)
            if slot not in written:
                written[slot] = _new_entry(ws, name, items, embedder_id, old)
            refs[name] = written[slot]
        return refs

    manifest, base = _commit(ws, "enroll", change)
    _drop_unreferenced(ws, manifest, base)
    used = {r.entry_id for r in manifest.identities.values()}
    for ref in written.values():  # entries written for a base that lost the race
        if ref.entry_id not in used:
            _delete_entry(ws, ref)
    count = sum(len(v) for v in faces.values())
    audit_key = write_audit(ws.store, ws.keys, "enroll", {
        "photos": count, "gallery_version": manifest.version, "replace": replace_existing} | (details or {}),
        identities=faces)
    change = GalleryChange(manifest.version, "enroll", tuple(sorted(faces)), count, audit_key)
    notify(on_change, change)
    return change


def _new_entry(ws: Workspace, name: str, items: list[tuple[PhotoFace, np.ndarray]], embedder_id: str,
               old: IdentityRef | None) -> IdentityRef:
    vectors = np.stack([np.asarray(e, np.float32) for _, e in items])
    photos = [f for f, _ in items]
    enrolled_at = _now()
    if old is not None:
        if old.embedder_id != embedder_id:
            raise ConfigError(f"{name}: enrolled with embedder {old.embedder_id}, not {embedder_id}; "
                              "enrol again with --replace")
        previous = _load_entry(ws, old)
        vectors = np.concatenate([previous.embeddings, vectors])
        photos = [*previous.photos, *photos]
        enrolled_at = old.enrolled_at
    return _entry(ws, name, vectors, photos, embedder_id, enrolled_at)


def remove(ws: Workspace, names: Iterable[str], *, prune_history: bool = True, audit: bool = True,
           details: dict[str, Any] | None = None, on_change: OnChange | None = None) -> GalleryChange:
    """Remove identities and publish a new gallery version; their entries (embeddings) and,
    with `prune_history`, the older versions that name them are deleted.

    Args:
        ws: the store and keys.
        names: the identities to remove.
        prune_history: delete the older gallery versions too.
        audit: write the ``remove`` audit record (False only for a caller
            that writes a fuller record of its own, `forget_identity`).
        details: more facts for the audit record.
        on_change: called with the committed change (see `notify`).

    Raises:
        UnknownIdentityError: a name is not enrolled.
    """
    wanted = sorted(set(names))

    def change(refs: dict[str, IdentityRef], version: int) -> dict[str, IdentityRef]:
        for name in wanted:
            if name not in refs:
                raise UnknownIdentityError(f"{name}: not enrolled (see `faceid-jobs identities list`)")
            del refs[name]
        return refs

    manifest, base = _commit(ws, "remove", change)
    _drop_unreferenced(ws, manifest, base)
    if prune_history:
        for version in list_gallery_versions(ws.store):
            if version < manifest.version:
                _delete_version(ws, version)
    clear_names(ws, wanted)  # a person named so loses the name with the identity
    audit_key = ""
    if audit:
        audit_key = write_audit(ws.store, ws.keys, "remove", {"gallery_version": manifest.version}
                                | (details or {}), identities=wanted)
    change = GalleryChange(manifest.version, "remove", tuple(wanted), audit_key=audit_key)
    notify(on_change, change)
    return change


def _delete_version(ws: Workspace, version: int) -> None:
    ws.keys.delete_sealed(version_key(version))


def identity_rows(gallery_version: GalleryVersion | None) -> list[dict[str, Any]]:
    """One row per identity (name, embeddings, embedder, enrolled_at, updated_at): no biometric data."""
    if gallery_version is None:
        return []
    return [{"name": r.name, "embeddings": r.embeddings, "embedder_id": r.embedder_id,
             "enrolled_at": r.enrolled_at, "updated_at": r.updated_at}
            for _, r in sorted(gallery_version.identities.items())]

