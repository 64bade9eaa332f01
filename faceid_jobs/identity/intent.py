"""The intent of a `forget` in progress: written first, cleared last, so a forget is never left half done (I/O).

A ``forget NAME --purge-appearances`` changes many objects (record files,
label files, data keys, stale marks, the index, the people, the gallery);
a crash between them would leave the person's faces searchable with the
gallery already without them, and a re-run would answer "not enrolled". So
the forget first writes its intent to ``journal/forget-<token>.bin``, records
each record file it is about to rewrite (with the data keys it will delete)
in it before touching the file, and deletes it only when everything is done.
The intent names the person, so it is a sealed container (`crypto/stream.py`,
header ``kind = "faceid-forget-intent"``, ``token``, ``key_ref``) under a data
key of its own; only its key name is in plaintext.

While an intent is pending, commands that read or build the index, export
records or show people refuse (`refuse_pending`, exit 4; the HTTP API 503)
and name ``faceid-jobs forget --resume``, which finishes it (so does a
re-run of the same forget).

`crash_point` (`faceid_jobs.testhooks`, re-exported here) is a test hook: with ``FACEID_JOBS_TEST_CRASH_AT=<step>`` the
process ends at once (``os._exit(137)``, like ``kill -9``) at that step.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from faceid_jobs.crypto.stream import ContainerHeader, open_sealed, seal
from faceid_jobs.errors import FaceIdError, IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import FORGET_JOURNAL_PREFIX, forget_journal_key, parse_forget_journal_key
from faceid_jobs.testhooks import CRASH_ENV, crash_point
from faceid_jobs.workspace import Workspace

__all__ = ["CRASH_ENV", "ForgetIntent", "PendingForgetError", "clear_intent", "crash_point", "load_intents",
           "new_intent", "pending_intents", "refuse_pending", "save_intent"]

INTENT_FORMAT = 1
_KIND = "faceid-forget-intent"


class PendingForgetError(IntegrityError, http_status=503, api_code="forget_pending"):
    """A forget was interrupted; its person may still be searchable until it is finished (exit 4; API 503)."""


@dataclass
class ForgetIntent:
    """What a forget set out to do and how far it got (format 1).

    Attributes:
        token: names the journal object.
        name: the identity being forgotten.
        embedder_id, threshold: how its faces are told (labels of the gallery at that threshold).
        purge_appearances: whether its faces are deleted from the records.
        rewritten: record files changed (or about to be), in order.
        old_refs: record file → data keys of its content before the rewrite; deleted once the
            file no longer uses them.
        embeddings: the person's enrolled embeddings (base64 of little-endian float32, `dim`
            wide), so a merge while the forget is pending tells their faces even once the
            name has left the gallery (`identity/forget_filter.py`).
        dim: the embeddings' width.
        mac_keys: the MAC keys (`DataKeys.mac_key`) of the forget processes that wrote stale
            marks for it; deleted at the end once no stale mark or catalog entry names them.
        started_at: UTC time the forget began.
        key_ref: the data key the journal object is sealed under (not part of the body).
    """

    token: str
    name: str
    embedder_id: str
    threshold: float
    purge_appearances: bool
    rewritten: list[str] = field(default_factory=list)
    old_refs: dict[str, list[str]] = field(default_factory=dict)
    embeddings: str = ""
    dim: int = 0
    mac_keys: list[str] = field(default_factory=list)
    started_at: str = ""
    key_ref: str = ""

    @property
    def key(self) -> str:
        return forget_journal_key(self.token)

    def vectors(self) -> np.ndarray:
        """The person's embeddings (k, dim) float32; empty when the intent holds none."""
        if not self.embeddings or self.dim <= 0:
            return np.zeros((0, max(self.dim, 0)), np.float32)
        return np.frombuffer(base64.b64decode(self.embeddings), "<f4").reshape(-1, self.dim).astype(np.float32)


def new_intent(name: str, embedder_id: str, threshold: float, purge_appearances: bool,
               embeddings: np.ndarray | None = None) -> ForgetIntent:
    vectors = np.ascontiguousarray(embeddings if embeddings is not None else np.zeros((0, 0)), "<f4")
    return ForgetIntent(uuid.uuid4().hex, name, embedder_id, float(threshold), purge_appearances,
                        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        embeddings=base64.b64encode(vectors.tobytes()).decode() if vectors.size else "",
                        dim=int(vectors.shape[1]) if vectors.size else 0)


def save_intent(ws: Workspace, intent: ForgetIntent) -> None:
    """Write (or replace) the intent, sealed under a new data key; the previous one's key is deleted."""
    body = {k: v for k, v in asdict(intent).items() if k != "key_ref"} | {"format": INTENT_FORMAT}
    ref, dek = ws.keys.create()
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    try:
        ws.store.put(intent.key, seal(raw, dek, {"kind": _KIND, "token": intent.token, "key_ref": ref}))
    except FaceIdError:
        with contextlib.suppress(FaceIdError):  # e.g. a full disk: the new key protects nothing
            ws.store.delete(ws.keys.key_of(ref))
        raise
    previous, intent.key_ref = intent.key_ref, ref
    if previous:
        ws.store.delete(ws.keys.key_of(previous))


def clear_intent(ws: Workspace, intent: ForgetIntent) -> None:
    """The forget is done: delete its journal object, then that object's data key."""
    ws.store.delete(intent.key)
    if intent.key_ref:
        ws.store.delete(ws.keys.key_of(intent.key_ref))


def pending_intents(store: Store) -> list[str]:
    """Keys of the forgets in progress (no key needed: the names are in the sealed bodies)."""
    return sorted(k for k in store.list(FORGET_JOURNAL_PREFIX) if parse_forget_journal_key(k) is not None)


def load_intents(ws: Workspace) -> list[ForgetIntent]:
    """Every pending forget, oldest first.

    Raises:
        IntegrityError: a journal object is damaged, replayed under another
            token, or its data key is missing.
    """
    out = []
    for key in pending_intents(ws.store):
        token = parse_forget_journal_key(key) or ""
        try:
            blob = ws.store.get(key)
        except KeyError:
            continue  # finished by another process meanwhile
        found: dict[str, str] = {}

        def key_for(header: ContainerHeader, key: str = key, found: dict[str, str] = found) -> bytes:
            ref = header.fields.get("key_ref")
            if not isinstance(ref, str):
                raise IntegrityError(f"{key}: damaged journal header (no key)")
            found["ref"] = ref
            return ws.keys.get(ref, key)

        raw = open_sealed(blob, key_for, key, {"kind": _KIND, "token": token})
        try:
            body: dict[str, Any] = json.loads(raw)
            if body.pop("format") != INTENT_FORMAT:
                raise ValueError
            intent = ForgetIntent(**body, key_ref=found["ref"])
        except (ValueError, TypeError, KeyError):
            raise IntegrityError(f"{key}: damaged forget journal") from None
        if intent.token != token:
            raise IntegrityError(f"{key}: forget journal replayed under another name")
        out.append(intent)
    return sorted(out, key=lambda i: (i.started_at, i.token))


def refuse_pending(store: Store, command: str = "", *, what: str = "") -> None:
    """Refuse the CLI `command` (e.g. ``search``), or `what` in words (``a search``), while a forget is
    unfinished: its person may still be searchable.

    Raises:
        PendingForgetError: exit 4 (API: 503), naming the command that finishes it.
    """
    pending = pending_intents(store)
    if pending:
        raise PendingForgetError(f"{pending[0]}: a forget was interrupted; run `faceid-jobs forget --resume` "
                                 f"to finish it before {what or f'`faceid-jobs {command}`'}")
