"""Audit records of changes to who is enrolled and what is stored about them (I/O via a Store).

One small plaintext JSON object per change, never rewritten::

    audit/<UTC time>-<uuid>.json   {"format": 1, "at", "who": {"user", "host"}, "action", "what"}

`what` holds names, counts, keys and versions, never embeddings, images or
face boxes. Keys sort by time, so `list_audit` returns the history in order.
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from faceid_jobs.errors import IntegrityError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import AUDIT_PREFIX, audit_key

__all__ = ["AUDIT_PREFIX", "list_audit", "who", "write_audit"]

_FORMAT = 1


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


def write_audit(store: Store, action: str, what: dict[str, Any], *, at: datetime | None = None) -> str:
    """Write one audit record; returns its key."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    key = audit_key(when.strftime("%Y%m%dT%H%M%S.%fZ"), uuid.uuid4().hex)
    body = {"format": _FORMAT, "at": when.isoformat(timespec="seconds"), "who": who(), "action": action,
            "what": what}
    store.put_if_absent(key, json.dumps(body, indent=1, sort_keys=True, default=str).encode())
    return key


def list_audit(store: Store) -> list[dict[str, Any]]:
    """Every audit record, oldest first (each with its ``key``)."""
    out = []
    for key in store.list(AUDIT_PREFIX):
        try:
            out.append(json.loads(store.get(key)) | {"key": key})
        except ValueError:
            raise IntegrityError(f"{key}: damaged audit record") from None
    return out
