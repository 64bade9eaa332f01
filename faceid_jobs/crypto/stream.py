"""Segmented AES-256-GCM streaming encryption (pure: bytes and file objects in, out).

A container is a header followed by ciphertext segments:

    magic "FJSC" | u8 format version (1) | u32 header length | header (JSON)
    segment 0 | segment 1 | ... | segment n-1

Each segment is `segment_size` plaintext bytes (the last one may be shorter,
even empty) sealed with AES-256-GCM under the container's data key, so a
container of any size is written and read holding one segment in memory.

- nonce = 7-byte random prefix (per container) | u32 segment number | u8 last flag
- associated data = SHA-256 of the header bytes | u32 segment number

So a flipped bit fails the segment's tag; reordered segments fail (number in
nonce and AD); a truncated container lacks the segment flagged last; and a
header edited or copied onto another container (another shard id, index
version or data key) fails every segment. Callers pass the header fields they
expect (e.g. shard id and index version) and `open_container` checks them
before decrypting anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceid_jobs.errors import IntegrityError

__all__ = ["FORMAT_VERSION", "MAGIC", "ContainerHeader", "SegmentWriter", "open_sealed", "read_container", "seal"]

MAGIC = b"FJSC"
FORMAT_VERSION = 1
DEFAULT_SEGMENT = 1 << 20
_TAG = 16
_PREFIX = 7


@dataclass(frozen=True)
class ContainerHeader:
    """Plaintext (but authenticated) facts about a container."""

    fields: dict[str, Any]
    nonce_prefix: bytes
    segment_size: int

    def encode(self) -> bytes:
        body = dict(self.fields)
        body["nonce_prefix"] = self.nonce_prefix.hex()
        body["segment_size"] = self.segment_size
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, name: str) -> ContainerHeader:
        try:
            body = json.loads(raw)
            prefix = bytes.fromhex(body.pop("nonce_prefix"))
            size = int(body.pop("segment_size"))
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"{name}: damaged container header") from None
        if len(prefix) != _PREFIX or not 16 <= size <= 1 << 26:
            raise IntegrityError(f"{name}: damaged container header")
        return cls(body, prefix, size)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _ad(header_hash: bytes, index: int) -> bytes:
    return header_hash + struct.pack(">I", index)


class SegmentWriter:
    """Encrypt a stream into `sink` segment by segment; call `close()` to finish.

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> w = SegmentWriter(buf, bytes(32), {"shard": "a"}, segment_size=16)
        >>> w.write(b"hello world, this is more than one segment")
        >>> w.close()
        >>> b"".join(read_container(io.BytesIO(buf.getvalue()), lambda h: bytes(32), "x"))[:5]
        b'hello'
    """

    def __init__(self, sink: BinaryIO, key: bytes, fields: dict[str, Any],
                 segment_size: int = DEFAULT_SEGMENT) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._sink = sink
        self._aead = AESGCM(key)
        self.header = ContainerHeader(dict(fields), os.urandom(_PREFIX), segment_size)
        raw = self.header.encode()
        self._hash = hashlib.sha256(raw).digest()
        sink.write(MAGIC + struct.pack(">BI", FORMAT_VERSION, len(raw)) + raw)
        self._buf = bytearray()
        self._index = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed container")
        view = memoryview(data).cast("B")
        size = self.header.segment_size
        # Keep at least one byte back: the last segment must carry the last flag.
        if len(self._buf) + len(view) <= size:
            self._buf += view
            return
        pos = 0
        if self._buf:  # top the pending bytes up to a segment: more follows, so it is not the last
            pos = size - len(self._buf)
            self._buf += view[:pos]
            self._emit(bytes(self._buf), last=False)
            self._buf.clear()
        # Whole segments straight from the caller's buffer: no copy of a large write (a people version's
        # vectors are hundreds of MB).
        while len(view) - pos > size:
            self._emit(view[pos:pos + size], last=False)
            pos += size
        self._buf += view[pos:]

    def _emit(self, plain: bytes | memoryview, last: bool) -> None:
        nonce = _nonce(self.header.nonce_prefix, self._index, last)
        self._sink.write(self._aead.encrypt(nonce, plain, _ad(self._hash, self._index)))
        self._index += 1

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()
            self._closed = True


def read_header(source: BinaryIO, name: str) -> tuple[ContainerHeader, bytes]:
    """Read and parse the header; returns it and its raw bytes."""
    head = source.read(len(MAGIC) + 5)
    if len(head) < len(MAGIC) + 5 or head[: len(MAGIC)] != MAGIC:
        raise IntegrityError(f"{name}: not an encrypted faceid-jobs container")
    version, length = struct.unpack(">BI", head[len(MAGIC):])
    if version != FORMAT_VERSION:
        raise IntegrityError(f"{name}: container format {version} is not supported")
    if length > 1 << 20:
        raise IntegrityError(f"{name}: damaged container header")
    raw = source.read(length)
    if len(raw) != length:
        raise IntegrityError(f"{name}: truncated container")
    return ContainerHeader.decode(raw, name), raw


def read_container(
    source: BinaryIO,
    key_for: Callable[[ContainerHeader], bytes],
    name: str,
    expect: dict[str, Any] | None = None,
) -> Iterator[bytes]:
    """Yield the plaintext segments of a container, verifying each.

    Args:
        source: readable binary stream positioned at the container start.
        key_for: returns the 32-byte data key for a header (e.g. unwraps the
            wrapped key it names); raise to refuse.
        name: used in error messages.
        expect: header fields that must have exactly these values.

    Raises:
        IntegrityError: wrong magic/version, unexpected header fields, a segment
            that fails authentication, or a truncated container.
    """
    header, raw = read_header(source, name)
    for k, v in (expect or {}).items():
        if header.fields.get(k) != v:
            raise IntegrityError(
                f"{name}: container belongs to {k}={header.fields.get(k)!r}, expected {v!r}")
    aead = AESGCM(key_for(header))
    digest = hashlib.sha256(raw).digest()
    step = header.segment_size + _TAG
    index = 0
    current = source.read(step)
    while True:
        following = source.read(step)
        last = not following
        if len(current) < _TAG:
            raise IntegrityError(f"{name}: truncated container")
        try:
            plain = aead.decrypt(_nonce(header.nonce_prefix, index, last), current, _ad(digest, index))
        except InvalidTag:
            if last:
                raise IntegrityError(f"{name}: truncated or tampered container "
                                     f"(segment {index} fails authentication)") from None
            raise IntegrityError(f"{name}: tampered container (segment {index} fails authentication)") from None
        yield plain
        if last:
            return
        current = following
        index += 1


def seal(data: bytes | memoryview | list[bytes | memoryview], key: bytes, fields: dict[str, Any],
         segment_size: int = DEFAULT_SEGMENT) -> bytes:
    """Encrypt a whole byte string (or the concatenation of a list of them, never built) into a container
    held in memory."""
    import io

    buf = io.BytesIO()
    writer = SegmentWriter(buf, key, fields, segment_size)
    for part in data if isinstance(data, list) else [data]:
        writer.write(part)
    writer.close()
    return buf.getvalue()


def open_sealed(blob: bytes, key_for: Callable[[ContainerHeader], bytes], name: str,
                expect: dict[str, Any] | None = None) -> bytes:
    """Decrypt a whole container held in memory."""
    import io

    return b"".join(read_container(io.BytesIO(blob), key_for, name, expect))
