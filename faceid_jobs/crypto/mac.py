"""Authenticated plaintext JSON objects: a body plus an HMAC-SHA256 under a data key (pure given DataKeys).

Catalog entries and stale marks stay readable JSON (they hold no biometric
data) but someone who can write the store without holding the key must not be
able to forge, edit or move them. Each is stored as an envelope::

    {"format": F, "body": {...}, "mac_key": "<DEK ref>", "mac": "<hex>"}

The MAC covers a domain string (what kind of object), the object's own store
key and the canonical JSON of the body, so an envelope copied under another
key or read as another kind of object fails. The data key is the
workspace's MAC key (`DataKeys.mac_key`), one per process, so a catalog of
many entries costs one key unwrap per writer, not one per entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from faceid_jobs.errors import IntegrityError

if TYPE_CHECKING:
    from faceid_jobs.crypto.envelope import DataKeys

__all__ = ["canonical", "named_mac_key", "open_sealed_json", "seal_json"]


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, domain: str, store_key: str, body: dict) -> str:
    message = f"{domain}|{store_key}|".encode() + canonical(body)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_json(keys: DataKeys, domain: str, store_key: str, body: dict, fmt: int) -> bytes:
    """The envelope bytes of `body`, to be stored at `store_key`."""
    ref, key = keys.mac_key()
    envelope = {"format": fmt, "body": body, "mac_key": ref, "mac": _mac(key, domain, store_key, body)}
    return json.dumps(envelope, indent=1, sort_keys=True).encode()


def open_sealed_json(keys: DataKeys, domain: str, store_key: str, raw: bytes, fmt: int, what: str) -> dict:
    """The authenticated body of an envelope read from `store_key`.

    Raises:
        IntegrityError: not an envelope of format `fmt`, or its MAC fails
            (edited, forged, or moved from another key).
    """
    try:
        envelope = json.loads(raw)
        found = envelope.get("format") if isinstance(envelope, dict) else None
        if found is None:
            raise IntegrityError(f"{store_key}: damaged {what} (not an authenticated envelope)")
        if found != fmt:
            older = isinstance(found, int) and found < fmt
            raise IntegrityError(f"{store_key}: {what} format {found!r} is not supported"
                                 + (" (written by an older faceid-jobs, unauthenticated)" if older else ""))
        body, ref, mac = envelope["body"], envelope["mac_key"], envelope["mac"]
        if not isinstance(body, dict) or not isinstance(ref, str) or not isinstance(mac, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{store_key}: damaged {what}") from None
    key = keys.get(ref, store_key)
    if not hmac.compare_digest(_mac(key, domain, store_key, body), mac):
        raise IntegrityError(f"{store_key}: {what} fails authentication (tampered or moved)")
    return body


def named_mac_key(raw: bytes) -> str | None:
    """The data key an envelope names (unauthenticated: only to tell which MAC keys are still in use)."""
    try:
        ref = json.loads(raw).get("mac_key")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None
