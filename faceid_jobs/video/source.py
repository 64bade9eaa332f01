"""Where a video's bytes come from: a source object's identity, and remote videos read in ranges.

A `SourceObject` is what a listing says about a video before a byte of it is
read: a local file's path, size, mtime and inode (one `stat`), or an S3
object's bucket/key, size, ETag and last-modified (ListObjectsV2 returns them).
Its `identity_hash` is the cheap test a re-run uses to skip a video it has
seen unchanged (`storage/sources.py`).

Remote videos (s3://…) are never downloaded whole: a `RemoteVideo` opens
seekable readers that fetch byte ranges, which OpenCV's FFmpeg backend reads
through a Python stream (`cv2.VideoCapture(stream, CAP_FFMPEG, params)`).
Readers for a URI scheme are registered with `register_remote`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from faceid_jobs.errors import VideoError

__all__ = [
    "RemoteVideo",
    "SourceObject",
    "local_source",
    "register_remote",
    "remote_video",
    "uri_hash",
]


@dataclass(frozen=True)
class SourceObject:
    """What a listing says about one video, before reading it.

    Attributes:
        uri: the video's URI as the run names it (a path as given, or s3://…).
        location: where it is, independent of how it was named: the resolved
            absolute path of a file, the s3:// URI of an object.
        size: bytes.
        etag: the S3 object's ETag ("" for files).
        modified: the S3 object's LastModified, ISO 8601 ("" for files).
        mtime_ns, inode, device: the file's `stat` (0 for S3 objects).
    """

    uri: str
    location: str
    size: int
    etag: str = ""
    modified: str = ""
    mtime_ns: int = 0
    inode: int = 0
    device: int = 0

    @property
    def remote(self) -> bool:
        return "://" in self.location

    def identity(self) -> dict[str, object]:
        """The fields that say whether the object changed (stored beside its fingerprint)."""
        if self.remote:
            return {"location": self.location, "size": self.size, "etag": self.etag, "modified": self.modified}
        return {"location": self.location, "size": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode,
                "device": self.device}

    def identity_hash(self, fingerprint_mode: str) -> str:
        """BLAKE2b-128 of the identity and the fingerprint mode (a mark of one mode never
        answers for another)."""
        text = json.dumps([fingerprint_mode, self.identity()], sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def uri_hash(location: str) -> str:
    """BLAKE2b-128 of a source location: its name in the store (no path or bucket name leaks)."""
    return hashlib.blake2b(location.encode(), digest_size=16).hexdigest()


def local_source(path: Path, uri: str | None = None) -> SourceObject:
    """The `SourceObject` of a local file (one `stat`; raises OSError when it is gone)."""
    st = path.stat()
    return SourceObject(uri=uri or str(path), location=os.path.realpath(path), size=st.st_size,
                        mtime_ns=st.st_mtime_ns, inode=st.st_ino, device=st.st_dev)


class RemoteVideo(Protocol):
    """A video read in byte ranges: each `open()` gives a new seekable reader."""

    uri: str
    size: int

    def open(self, *, readahead: bool = True) -> BinaryIO:
        """A new reader at offset 0; `readahead=False` fetches only what is read (sparse reads)."""
        ...

    def failure(self) -> BaseException | None:
        """The first error a reader met (OpenCV sees only an end of stream), or None."""
        ...


_REMOTES: dict[str, Callable[[SourceObject], RemoteVideo]] = {}


def register_remote(scheme: str, factory: Callable[[SourceObject], RemoteVideo]) -> None:
    """Teach `remote_video` a URI scheme (e.g. "s3")."""
    _REMOTES[scheme] = factory


def remote_video(source: SourceObject) -> RemoteVideo:
    """The ranged reader of a remote source; VideoError for a scheme nobody registered."""
    scheme = source.location.split("://", 1)[0]
    try:
        factory = _REMOTES[scheme]
    except KeyError:
        raise VideoError(f"{source.uri}: no reader for {scheme}:// sources") from None
    return factory(source)
