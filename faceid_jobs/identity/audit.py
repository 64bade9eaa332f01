"""Audit records of changes to who is enrolled and what is stored about them (I/O via a Store).

One small plaintext JSON object per change, never rewritten::

    audit/<UTC time>-<uuid>.json
        {"format": 2, "at", "who": {"user", "host"}, "action", "what", "name_key": "<DEK ref>"}

`what` holds counts, keys and versions, never embeddings, images or face
boxes, and never an identity's name: the names a change concerns are in
``what["identities"]`` as keyed hashes (`name_hash`: HMAC-SHA256 under a data
key of the store, truncated to 128 bits). The records stay readable to anyone
who can read the store (who changed what, when), but only a key holder can
tell which identity a hash stands for, by hashing a name they already know:
`resolve` shows the names of the identities enrolled now, `history` finds the
records of a given name. After `forget`, nothing in the audit trail names the
person; the hashes still let a key holder who knows the name find what was
done about them.

All records share one hashing key, so a name hashes the same in every
record; `keys/audit.json` names it (its ref; the key itself is a wrapped data
key like any other). Each record also names the key it used (``name_key``),
so a record stays checkable if the pointer is ever replaced.

Format 1 records (before hashing) hold plaintext names (``what["identity"]``
or ``what["identities"]``); they are still read. Keys sort by time, so
`list_audit` returns the history in order.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import socket
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import AUDIT_PREFIX, audit_key, audit_name_key_pointer

if TYPE_CHECKING:
    from faceid_jobs.crypto.envelope import DataKeys

__all__ = ["AUDIT_PREFIX", "AuditEntry", "history", "list_audit", "name_hash", "resolve", "who", "write_audit"]

_FORMAT = 2
_DOMAIN = b"faceid-audit-identity|"


def who() -> dict[str, str]:
    """The local user and host name (``"unknown"`` when they cannot be told)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    try:
        host = socket.gethostname() or "unknown"
    except OSError:
        host = "unknown"
    return {"user": user, "host": host}


def name_hash(key: bytes, name: str) -> str:
    """The keyed hash an audit record keeps for an identity name (32 hex digits).

    >>> name_hash(bytes(32), "Ross") == name_hash(bytes(32), unicodedata.normalize("NFD", "Ross"))
    True
    """
    text = unicodedata.normalize("NFC", name).encode()
    return hmac.new(key, _DOMAIN + text, hashlib.sha256).hexdigest()[:32]


def _name_key(keys: DataKeys) -> tuple[str, bytes]:
    """(ref, key) of the store's audit hashing key, made on first use (`DataKeys.pointed`)."""
    return keys.pointed(audit_name_key_pointer(), "audit key pointer")


def write_audit(store: Store, keys: DataKeys, action: str, what: dict[str, Any], *,
                identities: Iterable[str] = (), at: datetime | None = None) -> str:
    """Write one audit record; returns its key.

    Args:
        store: where it goes.
        keys: the store's data keys (for the name hashing key).
        action: what was done (``enroll``, ``remove``, ``forget``, ...).
        what: facts about it; never names, embeddings or images.
        identities: the names the change concerns, kept only as keyed hashes
            in ``what["identities"]``.
        at: when (now by default).
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    key = audit_key(when.strftime("%Y%m%dT%H%M%S.%fZ"), uuid.uuid4().hex)
    ref, secret = _name_key(keys)
    body = {"format": _FORMAT, "at": when.isoformat(timespec="seconds"), "who": who(), "action": action,
            "what": what | {"identities": sorted(name_hash(secret, n) for n in identities)}, "name_key": ref}
    store.put_if_absent(key, json.dumps(body, indent=1, sort_keys=True, default=str).encode())
    return key


def list_audit(store: Store) -> list[dict[str, Any]]:
    """Every audit record as stored, oldest first (each with its ``key``)."""
    out = []
    for key in store.list(AUDIT_PREFIX):
        try:
            record = json.loads(store.get(key))
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            raise IntegrityError(f"{key}: damaged audit record") from None
        out.append(record | {"key": key})
    return out


@dataclass(frozen=True)
class AuditEntry:
    """One record as a key holder reads it: its identities by name where known.

    `identities` holds a name for each identity the record concerns that was
    recognised (format 1: the name stored; format 2: a name whose hash
    matched), else ``"#<hash>"``.
    """

    key: str
    at: str
    who: dict[str, str]
    action: str
    identities: tuple[str, ...]
    what: dict[str, Any] = field(default_factory=dict)
    format: int = _FORMAT

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "at": self.at, "who": self.who, "action": self.action,
                "identities": list(self.identities), "what": self.what, "format": self.format}


def resolve(keys: DataKeys, records: list[dict[str, Any]], names: Iterable[str]) -> list[AuditEntry]:
    """The records with each identity hash replaced by the name among `names` it stands for.

    Hashing keys are unwrapped once per distinct ``name_key`` (normally one);
    a record whose key is gone (deleted, or a KEK no longer held) keeps its hashes.
    """
    names = list(names)
    lookups: dict[str, dict[str, str]] = {}
    out = []
    for record in records:
        what = dict(record.get("what") or {})
        fmt = record.get("format", 1)
        if fmt == 1:
            plain = what.pop("identities", None) or ([what.pop("identity")] if "identity" in what else [])
            shown = tuple(str(n) for n in plain)
        else:
            hashes = [str(h) for h in what.pop("identities", [])]
            ref = str(record.get("name_key", ""))
            if ref not in lookups:
                try:
                    secret = keys.get(ref, record["key"])
                    lookups[ref] = {name_hash(secret, n): n for n in names}
                except (IntegrityError, ValueError):
                    lookups[ref] = {}
            shown = tuple(lookups[ref].get(h, f"#{h}") for h in hashes)
        out.append(AuditEntry(record["key"], str(record.get("at", "")), dict(record.get("who") or {}),
                              str(record.get("action", "")), shown, what, fmt if isinstance(fmt, int) else 0))
    return out


def history(keys: DataKeys, records: list[dict[str, Any]], name: str) -> list[AuditEntry]:
    """The records that concern identity `name` (hashed under each record's key), oldest first."""
    wanted = unicodedata.normalize("NFC", name)
    return [e for e in resolve(keys, records, [name]) if wanted in
            {unicodedata.normalize("NFC", n) for n in e.identities}]
