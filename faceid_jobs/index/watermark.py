"""This client's high-water mark of a store's index: the newest version it has seen (I/O: one local file).

Someone who can write the store but holds no key cannot forge a manifest,
but can delete the newest ones, so that readers fall back to an older,
authentic version (say, from before `forget --purge-appearances`). The store
alone cannot tell, so each client remembers, outside the store, the newest
version it has seen and that version's MAC: one JSON file per store in
`Settings.resolved_state_dir()` (`<sha256 of the store URI>.json`, 0600, the
folder 0700). Seeing a newest version below it, or the same number with
another MAC, is an `IntegrityError`. A client without the file (fresh
machine, new state dir) trusts the newest version it finds.

The gallery's versions are guarded the same way (`sibling("gallery")`, a
second file ``<hash>-gallery.json``; version numbers only, since `keys rotate
--reencrypt` rewrites a gallery version's bytes under its own number).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.errors import ConfigError
from faceid_jobs.fileio import atomic_write

__all__ = ["Mark", "Watermark"]


@dataclass(frozen=True)
class Mark:
    version: int
    mac: str


class Watermark:
    """The high-water mark of one store, kept in `folder`."""

    def __init__(self, folder: str | os.PathLike[str], store_uri: str, kind: str = "index") -> None:
        self.folder = Path(folder)
        self.store_uri = store_uri
        self.kind = kind
        name = hashlib.sha256(store_uri.encode()).hexdigest()[:32]
        self.path = self.folder / (f"{name}.json" if kind == "index" else f"{name}-{kind}.json")

    def sibling(self, kind: str) -> Watermark:
        """The mark of another versioned object of the same store (e.g. "gallery")."""
        return Watermark(self.folder, self.store_uri, kind)

    def read(self) -> Mark | None:
        """The mark, or None when this client never saw an index of the store."""
        try:
            data = json.loads(self.path.read_bytes())
            return Mark(int(data["version"]), str(data["mac"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable {self.kind} high-water mark ({exc.__class__.__name__}); "
                              "delete it to trust the store's newest version again") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reset(self, version: int | None, mac: str = "") -> None:
        """Trust `version` (None: no index) as the store's newest, even below the mark."""
        try:
            with self._locked():
                if version is None:
                    self.path.unlink(missing_ok=True)
                else:
                    body = {"store": self.store_uri, "version": version, "mac": mac}
                    atomic_write(self.path, json.dumps(body).encode(), 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the {self.kind} high-water mark "
                              f"({exc.strerror or exc}); set state_dir to a writable folder") from None

    def advance(self, version: int, mac: str) -> None:
        """Remember `version` if it is newer than the mark (never lowers it)."""
        try:
            with self._locked():
                current = self.read()
                if current is not None and current.version >= version:
                    return
                body = {"store": self.store_uri, "version": version, "mac": mac}
                atomic_write(self.path, json.dumps(body).encode(), 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the {self.kind} high-water mark "
                              f"({exc.strerror or exc}); set state_dir to a writable folder") from None
