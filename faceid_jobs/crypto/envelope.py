"""Data keys kept as small wrapped-key objects in the store (I/O via a Store).

Each encrypted object (a record file, an index shard, a manifest MAC) names a
data key by reference; the key itself lives at `keys/data/<ref>.json`,
wrapped by a KEK. Keeping the wrapped keys outside the data is what lets
`keys rotate` re-wrap every live key under a new KEK without rewriting any
data, and what lets an old KEK be retired completely.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from faceid_jobs.crypto.keys import Kek, Keyring, KmsKek, WrappedKey
from faceid_jobs.errors import ConfigError, FaceIdError, IntegrityError, KeyMismatchError
from faceid_jobs.storage.base import Store
from faceid_jobs.storage.layout import DATA_KEYS_PREFIX, data_key, parse_data_key
from faceid_jobs.testhooks import crash_point

if TYPE_CHECKING:
    from faceid_jobs.crypto.stream import ContainerHeader

__all__ = ["DATA_KEYS_PREFIX", "DataKeys", "stored_kek_ids"]

_FORMAT = 1


class DataKeys:
    """Create, fetch (cached in memory) and re-wrap data keys of one store."""

    def __init__(self, store: Store, keyring: Keyring) -> None:
        self.store = store
        self.keyring = keyring
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._mac: tuple[str, bytes] | None = None
        self._pointers: dict[str, str] = {}  # pointer object → the ref it names (`pointed`)
        # The client's record of the newest index version seen (`index/watermark.py`), if any.
        self.watermark = None
        # True only in `keys rotate --reencrypt` itself: the one process that may make data keys under its lease.
        self.reencrypting = False

    @staticmethod
    def key_of(ref: str) -> str:
        return data_key(ref)

    def create(self) -> tuple[str, bytes]:
        """A new data key: (reference, 32 key bytes); its wrapped form is stored first.

        During a key rotation (`faceid_jobs.crypto.lease`) it is wrapped under
        the new KEK, so the rotation never leaves it behind under the old one.
        The lease and key marker are read again after the put: a rotation that
        began (or ended) while this writer stood between its first read and
        the put may have re-wrapped the store without this key, so the key is
        wrapped again under the KEK now due, or deleted when this process lacks it.

        Raises:
            ConfigError: a rotation is in progress and this process lacks its new key.
            KeyMismatchError: the store's key was rotated and this process lacks the new one.
        """
        kek = self._kek_for_new_keys()
        dek, wrapped = self.keyring.new_data_key(kek)
        ref = uuid.uuid4().hex
        crash_point("data-key-put")
        self.store.put(self.key_of(ref), _encode(wrapped))
        try:
            due = self._kek_for_new_keys() or self.keyring.primary
        except FaceIdError:
            self.store.delete(self.key_of(ref))  # under a KEK the rotation retires: never used
            raise
        if due.key_id != wrapped.kek_id:
            self.store.put(self.key_of(ref), _encode(WrappedKey(due.key_id, due.wrap(dek))))
        with self._lock:
            self._cache[ref] = dek
        return ref, dek

    def mac_key(self) -> tuple[str, bytes]:
        """A data key for authenticating small JSON objects (catalog entries, stale marks).

        Made once per `DataKeys` (a process's workspace) and reused, so
        reading a catalog written by one run unwraps one key, not one per entry.
        """
        with self._lock:
            cached = self._mac
        if cached is not None:
            # A key made before a re-encryption began would be deleted by it: refuse, as `create` does.
            self._kek_for_new_keys()
            return cached
        made = self.create()
        with self._lock:
            if self._mac is None:
                self._mac = made
            return self._mac

    def delete_sealed(self, key: str) -> bool:
        """Delete the sealed container `key` (`crypto/stream` format), then the data key its header
        names; False when there was no such object.

        The object goes first: a crash in between leaves a key no object names (harmless),
        never an object whose key is gone. A damaged header deletes the object alone.
        """
        from faceid_jobs.crypto.stream import read_header

        try:
            with self.store.open_read(key) as f:
                header, _ = read_header(f, key)
            ref = header.fields.get("key_ref")
        except KeyError:
            return False
        except IntegrityError:
            ref = None
        self.store.delete(key)
        if isinstance(ref, str):
            self.store.delete(self.key_of(ref))
        return True

    def sealed_key(self, name: str) -> Callable[[ContainerHeader], bytes]:
        """For `crypto.stream.open_sealed`: the data key that a sealed container's header names (``key_ref``).

        The returned function raises IntegrityError when the header names no key, or its key is missing
        or wrapped by a KEK this keyring lacks; `name` is the object named in those errors.
        """

        def key_for(header: ContainerHeader) -> bytes:
            ref = header.fields.get("key_ref")
            if not isinstance(ref, str):
                raise IntegrityError(f"{name}: damaged container header (no key)")
            return self.get(ref, name)

        return key_for

    def pointed(self, pointer: str, what: str) -> tuple[str, bytes]:
        """(ref, key) of a store-wide data key named by the plaintext pointer object `pointer`
        (``{"format": 1, "ref": …}``), made on first use; `keys rotate --reencrypt` re-wraps it
        rather than replacing it (`crypto/reencrypt.py`).

        Two first users at once each make a key; the pointer is put-if-absent,
        so one wins and the other deletes its own and uses the winner's.

        Raises:
            IntegrityError: the pointer is damaged, or the key it names missing.
        """
        with self._lock:
            known = self._pointers.get(pointer)
        if known is not None:  # a pointer never changes once written
            return known, self.get(known, pointer)
        try:
            ref = _pointer_ref(self.store.get(pointer), pointer, what)
        except KeyError:
            ref, _ = self.create()  # cached by create: `get` below costs nothing
            if not self.store.put_if_absent(pointer, json.dumps({"format": 1, "ref": ref}).encode()):
                self.store.delete(self.key_of(ref))
                ref = _pointer_ref(self.store.get(pointer), pointer, what)
        with self._lock:
            self._pointers[pointer] = ref
        return ref, self.get(ref, pointer)

    def retire_mac_key(self, ref: str) -> None:
        """Delete the MAC key `ref` once no object names it; this process makes a new one if it needs one again."""
        self.store.delete(self.key_of(ref))
        with self._lock:
            self._cache.pop(ref, None)
            if self._mac is not None and self._mac[0] == ref:
                self._mac = None

    def get(self, ref: str, name: str = "") -> bytes:
        """The data key `ref`, unwrapped by the keyring.

        Raises:
            IntegrityError: the key object is missing or damaged, or the
                keyring does not hold the KEK it is wrapped with.
        """
        with self._lock:
            if ref in self._cache:
                return self._cache[ref]
        try:
            raw = self.store.get(self.key_of(ref))
        except KeyError:
            raise IntegrityError(f"{name or ref}: its data key {ref} is missing from the store") from None
        dek = self.keyring.unwrap(_decode(raw, ref), name or self.key_of(ref))
        with self._lock:
            self._cache[ref] = dek
        return dek

    def _kek_for_new_keys(self) -> Kek | None:
        """The new KEK while a rotation away from this keyring's primary is in progress (or done), else None.

        A rotation that finished while this process ran left the key marker
        naming its new KEK: a key wrapped under this keyring's (retired)
        primary now would be one no re-wrap ever reaches.

        Raises:
            KeyMismatchError: the store's key was rotated and this process lacks the new one.
        """
        from faceid_jobs.crypto.lease import read_lease

        lease = read_lease(self.store)
        if lease is not None and lease.reencrypt and not self.reencrypting:
            raise ConfigError(f"{self.store.uri}: its data is being re-encrypted under a new key "
                              f"({lease.old_kek} -> {lease.new_kek}); try again once `faceid-jobs keys rotate "
                              "--reencrypt` has finished (re-run it if it was interrupted)")
        if lease is None:
            from faceid_jobs.crypto.marker import read_marker

            marked = read_marker(self.store)
            if marked is None or marked == self.keyring.primary.key_id:
                return None
            kek = self._kek_named(marked)  # `key.json.next`, loaded while the rotation ran
            if kek is None:
                raise KeyMismatchError(f"{self.store.uri}: its key was rotated to {marked} while this command ran; "
                                       "run it again (it then reads the new key)")
            return kek
        if lease.new_kek == self.keyring.primary.key_id:
            return None
        kek = self._kek_named(lease.new_kek)
        if kek is None:
            raise ConfigError(f"a key rotation {lease.old_kek} -> {lease.new_kek} is in progress and this process "
                              "does not hold the new key: finish it with `faceid-jobs keys rotate` first")
        return kek

    def _kek_named(self, kek_id: str) -> Kek | None:
        """The KEK `kek_id`: from the keyring, or a KMS key (reachable by its id alone); None otherwise."""
        return self.keyring.find(kek_id) or KmsKek.from_id(kek_id)

    def kek_of(self, ref: str) -> str:
        """Id of the KEK a data key is currently wrapped with."""
        return _decode(self.store.get(self.key_of(ref)), ref).kek_id

    def rewrap(self, ref: str) -> bool:
        """Re-wrap the data key `ref` under the primary KEK (same key bytes); False when it already was.

        Raises:
            IntegrityError: the key object is missing or damaged, or its KEK is not in the keyring.
        """
        key = self.key_of(ref)
        try:
            wrapped = _decode(self.store.get(key), ref)
        except KeyError:
            raise IntegrityError(f"{key}: data key is missing from the store") from None
        if wrapped.kek_id == self.keyring.primary.key_id:
            return False
        self.store.put(key, _encode(self.keyring.rewrap(wrapped, key)))
        return True

    def wrapped_by(self, kek_id: str) -> set[str]:
        """Refs of every data key in the store wrapped with the KEK `kek_id`."""
        return {ref for ref, kek in stored_kek_ids(self.store) if kek == kek_id}

    def rewrap_all(self) -> tuple[int, int]:
        """Re-wrap every data key not yet under the primary KEK.

        Idempotent, so an interrupted rotation is finished by running it again.

        Returns:
            (re-wrapped, already under the primary KEK)
        """
        done = kept = 0
        for key in self.store.list(DATA_KEYS_PREFIX):
            ref = parse_data_key(key) or key
            wrapped = _decode(self.store.get(key), ref)
            if wrapped.kek_id == self.keyring.primary.key_id:
                kept += 1
                continue
            self.store.put(key, _encode(self.keyring.rewrap(wrapped, key)))
            done += 1
        return done, kept


def stored_kek_ids(store: Store) -> Iterator[tuple[str, str]]:
    """(ref, id of the KEK wrapping it) for every data key in the store, in listing order; keys deleted
    meanwhile are passed over.

    Raises:
        IntegrityError: a data key object is damaged.
    """
    for key in store.list(DATA_KEYS_PREFIX):
        ref = parse_data_key(key)
        if ref is None:
            continue
        try:
            raw = store.get(key)
        except KeyError:
            continue
        yield ref, _decode(raw, ref).kek_id


def _encode(wrapped: WrappedKey) -> bytes:
    return json.dumps({"format": _FORMAT, "wrapped": wrapped.encode()}).encode()


def _decode(raw: bytes, ref: str) -> WrappedKey:
    try:
        body = json.loads(raw)
        if body["format"] != _FORMAT:
            raise ValueError
        return WrappedKey.decode(body["wrapped"])
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"data key {ref}: damaged key object") from None


def _pointer_ref(raw: bytes, pointer: str, what: str) -> str:
    try:
        ref = json.loads(raw)["ref"]
        if not isinstance(ref, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{pointer}: damaged {what}") from None
    return ref
