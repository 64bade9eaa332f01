"""A store in an S3 bucket under a prefix, through boto3 (I/O).

Works with AWS, MinIO and Ceph: the client honours the standard AWS
environment (credentials, region, `AWS_ENDPOINT_URL`, profiles). Retries use
botocore's "standard" mode (exponential backoff with jitter on throttling,
5xx and connection errors). Puts of whole objects are atomic in S3; large
uploads go through multipart (`upload_fileobj`). `put_if_absent` and
`put_if_match` are S3 conditional writes (If-None-Match / If-Match), which
make manifest commits safe against concurrent writers.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from faceid_jobs.errors import StoreError, StoreTransientError, StoreUnwritableError
from faceid_jobs.storage.layout import check_key, check_prefix

if TYPE_CHECKING:
    from faceid_jobs.video.source import SourceObject

__all__ = ["S3Store", "S3Video", "list_s3_sources", "parse_s3_uri"]

_MULTIPART_THRESHOLD = 64 << 20
_BODY_ATTEMPTS = 4

_PERMISSION_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                               "SignatureDoesNotMatch", "AccountProblem", "QuotaExceeded"})
# What a wait may cure (after botocore's own retries gave up): throttling, a 5xx, a timeout. Every
# other answer (403, NoSuchBucket, InvalidArgument, …) fails at once.
_TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                              "ThrottlingException", "RequestThrottled", "TooManyRequests",
                              "RequestLimitExceeded", "BandwidthLimitExceeded"})
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class _StreamErrors(io.RawIOBase):
    """A body stream whose transport errors surface as StoreError (callers may retry)."""

    def __init__(self, body: Any, name: str) -> None:
        self._body = body
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # botocore/urllib3 errors of a dropped connection
            raise StoreTransientError(f"{self._name}: connection lost while reading ({type(exc).__name__})") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """("bucket", "prefix/") of an s3://bucket/prefix URI (prefix may be empty)."""
    if not uri.startswith("s3://"):
        raise StoreError(f"{uri}: not an s3:// URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StoreError(f"{uri}: no bucket name")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def make_client(service: str = "s3") -> Any:
    """A boto3 client with standard retries; endpoint and credentials from the AWS env."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "8"))},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": os.environ.get("FACEID_JOBS_S3_ADDRESSING", "auto")},
    )
    return boto3.session.Session().client(service, config=config)


def _code(exc: Exception) -> str:
    """The S3 error code of a botocore error (``NoSuchKey``, ``AccessDenied``…), else the error's class name."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__


def _status(exc: Exception) -> int | None:
    """The HTTP status of a botocore error's response, if it had one."""
    return getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


def _kind(exc: Exception) -> type[StoreError]:
    """The store error a botocore (or urllib3) error becomes: unwritable for a refused credential or
    policy, transient for throttling, a 5xx, a timeout or a dropped connection, else a plain one."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        if _code(exc) in _PERMISSION_CODES or _status(exc) == 403:
            return StoreUnwritableError
        return StoreTransientError if _code(exc) in _TRANSIENT_CODES or _status(exc) in _TRANSIENT_STATUSES \
            else StoreError
    if isinstance(exc, BotoCoreError):
        transient = isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError)
        return StoreTransientError if transient else StoreError  # no credentials, bad parameters: not
    return StoreTransientError  # urllib3's protocol errors of a body dropped mid-read


class S3Store:
    """Objects under `s3://bucket/prefix/`; keys are relative to the prefix."""

    def __init__(self, uri: str, client: Any | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client or make_client()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _error(self, exc: Exception, key: str, action: str) -> StoreError:
        # Only a kind a wait may cure is retried (`pipeline.summary.is_transient`).
        return _kind(exc)(f"{self.uri}/{key}: cannot {action} ({_code(exc)})")

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        # botocore retries the request, not the body read that follows it: a
        # connection dropped mid-download is retried here.
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    raise KeyError(key) from None
                raise self._error(exc, key, "read") from None
            except BotoCoreError as exc:
                if attempt == _BODY_ATTEMPTS:
                    raise self._error(exc, key, "read") from None
            except (OSError, ValueError) as exc:  # urllib3 protocol errors on a dropped body
                if attempt == _BODY_ATTEMPTS:
                    raise self._error(exc, key, "read") from None
        raise AssertionError("unreachable")

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes from offset `start` (fewer at the end of the object)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                           Range=f"bytes={start}-{start + length - 1}")
            return resp["Body"].read()
        except ClientError as exc:
            code = _code(exc)
            if code in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            if code == "InvalidRange":
                return b""
            raise self._error(exc, key, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, key, "read") from None

    def open_read(self, key: str) -> BinaryIO:
        """A streaming reader over the object's body."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return _StreamErrors(self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"],
                                 f"{self.uri}/{key}")
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise self._error(exc, key, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, key, "read") from None

    def put(self, key: str, data: bytes) -> None:
        self.put_stream(key, io.BytesIO(data), len(data))

    def put_stream(self, key: str, stream: BinaryIO, size: int | None = None) -> None:
        """Upload from a file object; multipart when large. Visible only when complete."""
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if size is not None and size < _MULTIPART_THRESHOLD:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=stream.read())
            else:
                cfg = TransferConfig(multipart_threshold=_MULTIPART_THRESHOLD, multipart_chunksize=16 << 20)
                self._client.upload_fileobj(stream, self.bucket, self._key(key), Config=cfg)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key, "write") from None

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            return True
        except ClientError as exc:
            code = _code(exc)
            status = _status(exc)
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return False
            raise self._error(exc, key, "write") from None
        except BotoCoreError as exc:
            raise self._error(exc, key, "write") from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._conditional_put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, etag: str) -> bool:
        """Replace the object only if its ETag is still `etag`."""
        return self._conditional_put(key, data, IfMatch=etag)

    def etag(self, key: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(exc, key, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, key, "read") from None

    def exists(self, key: str) -> bool:
        return self.etag(key) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + check_prefix(prefix))
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix, "list") from None
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key, "delete") from None

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "", "reach bucket") from None

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"


def list_s3_videos(uri: str, extensions: frozenset[str], client: Any | None = None) -> list[str]:
    """s3:// URIs of the objects under a prefix whose names end in a video extension."""
    return [obj.uri for obj in list_s3_sources(uri, extensions, client)]


def list_s3_sources(uri: str, extensions: frozenset[str], client: Any | None = None) -> list[SourceObject]:
    """The video objects under a prefix (by extension), with the size, ETag and
    LastModified the listing gives: enough to tell an unchanged object without reading it."""
    from faceid_jobs.video.source import SourceObject

    bucket, prefix = parse_s3_uri(uri)
    if not uri.endswith("/") and prefix:
        prefix = prefix.rstrip("/")  # a single object, or a prefix given without slash
    client = client or make_client()
    found = []
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                name = key.rsplit("/", 1)[-1]
                if key == prefix or (os.path.splitext(name)[1].lower() in extensions and not name.startswith(".")):
                    location = f"s3://{bucket}/{key}"
                    modified = obj.get("LastModified")
                    found.append(SourceObject(uri=location, location=location, size=int(obj.get("Size", 0)),
                                              etag=str(obj.get("ETag", "")),
                                              modified=modified.isoformat() if modified else ""))
    except (ClientError, BotoCoreError) as exc:
        raise _kind(exc)(f"{uri}: cannot list ({_code(exc)})") from None
    return sorted(found, key=lambda o: o.uri)


# ---------------------------------------------------------------- videos read in ranges

_RANGE_BLOCK = 16 << 10  # cache granule: a 64 KiB fingerprint sample at any offset fetches at most 80 KiB
_FIRST_FETCH = 16  # blocks fetched after a seek (256 KiB)
_MAX_FETCH = 64  # blocks fetched at most at once while reading on (1 MiB: a chunk overshoots its end by that)


class _BlockCache:
    """Blocks of S3 videos fetched by this process, least recently used dropped first.

    Planning (fingerprint, probe) and the chunk steps of the same process read
    the same objects: a block is fetched once while it stays cached, also when
    two chunks decoded side by side reach it together (the second waits for the
    first's fetch: a chunk's read-ahead runs into the next chunk's bytes). Keyed
    by ETag too, so a replaced object never serves old bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._fetching: dict[tuple[str, str, int], threading.Event] = {}
        self._bytes = 0

    def get(self, key: tuple[str, str, int]) -> bytes | None:
        with self._lock:
            data = self._blocks.get(key)
            if data is not None:
                self._blocks.move_to_end(key)
            return data

    def get_or_wait(self, key: tuple[str, str, int], timeout: float = 60.0) -> bytes | None:
        """The block; while another reader is fetching it, after that fetch (None: not cached, not coming)."""
        with self._lock:
            pending = self._fetching.get(key)
        if pending is not None:
            pending.wait(timeout)
        return self.get(key)

    def claim(self, keys: list[tuple[str, str, int]]) -> int:
        """How many of `keys`, from the first, are neither cached nor being fetched; those are now
        this caller's to fetch (`put` them, then `release`)."""
        with self._lock:
            count = 0
            for key in keys:
                if key in self._blocks or key in self._fetching:
                    break
                count += 1
            for key in keys[:count]:
                self._fetching[key] = threading.Event()
            return count

    def release(self, keys: list[tuple[str, str, int]]) -> None:
        with self._lock:
            events = [self._fetching.pop(key, None) for key in keys]
        for event in events:
            if event is not None:
                event.set()

    def put(self, key: tuple[str, str, int], data: bytes) -> None:
        with self._lock:
            old = self._blocks.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._blocks[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and len(self._blocks) > 1:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._bytes = 0


BLOCK_CACHE = _BlockCache(int(os.environ.get("FACEID_JOBS_S3_CACHE_MB", "128")) << 20)


class S3Video:
    """An S3 video object read in byte ranges (a `faceid_jobs.video.source.RemoteVideo`).

    Every range is fetched with If-Match on the listed ETag, so an object
    replaced while a run reads it fails (and is re-planned next run) instead
    of mixing two versions' bytes.
    """

    def __init__(self, source: SourceObject, client: Any | None = None) -> None:
        self.uri = source.uri
        self.size = source.size
        self.etag = source.etag
        self.bucket, key = parse_s3_uri(source.location)
        self.key = key.rstrip("/")
        self._client = client
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._readers: list[_RangeReader] = []  # OpenCV may not hold a reference of its own

    def open(self, *, readahead: bool = True) -> BinaryIO:
        reader = _RangeReader(self, readahead)
        self._readers.append(reader)
        return reader  # type: ignore[return-value]

    def failure(self) -> BaseException | None:
        return self._failure

    def fetch(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the object (one ranged GET, its body read retried)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from faceid_jobs.errors import VideoError

        with self._lock:
            if self._client is None:
                self._client = make_client()
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                resp = self._client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{stop - 1}",
                                               **({"IfMatch": self.etag} if self.etag else {}))
                data = resp["Body"].read()
                if len(data) != stop - start:
                    raise ValueError("short body")
                return data
            except ClientError as exc:
                code = _code(exc)
                status = _status(exc)
                if code == "PreconditionFailed" or status == 412:
                    error: BaseException = VideoError(f"{self.uri}: changed while being read (ETag differs "
                                                      "from the listing); it is read again on the next run")
                else:
                    error = _kind(exc)(f"{self.uri}: cannot read bytes {start}-{stop - 1} ({code})")
                self._failure = self._failure or error
                raise error from None
            except (BotoCoreError, OSError, ValueError) as exc:
                if attempt == _BODY_ATTEMPTS:
                    error = _kind(exc)(f"{self.uri}: cannot read bytes {start}-{stop - 1} ({type(exc).__name__})")
                    self._failure = self._failure or error
                    raise error from None
        raise AssertionError("unreachable")


class _RangeReader(io.BufferedIOBase):
    """A seekable reader of one `S3Video` over the process's block cache.

    Reading on from where the last read ended doubles the fetch (256 KiB up
    to 1 MiB), so decoding a chunk costs few requests; a seek starts small
    again, so probing and seeking to a chunk read little past what they need.
    """

    def __init__(self, video: S3Video, readahead: bool) -> None:
        super().__init__()
        self._video = video
        self._pos = 0
        self._readahead = readahead
        self._next_fetch = _FIRST_FETCH
        self._last_end = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._video.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        video = self._video
        end = video.size if size is None or size < 0 else min(video.size, self._pos + size)
        if end <= self._pos:
            return b""
        if self._pos != self._last_end:
            self._next_fetch = _FIRST_FETCH
        first, last = self._pos // _RANGE_BLOCK, (end - 1) // _RANGE_BLOCK
        blocks = []
        for index in range(first, last + 1):
            data = BLOCK_CACHE.get_or_wait((video.uri, video.etag, index))
            while data is None:
                data = self._fetch_from(index, last)
            blocks.append(data)
        joined = b"".join(blocks)
        offset = self._pos - first * _RANGE_BLOCK
        out = joined[offset:offset + end - self._pos]
        self._pos = self._last_end = end
        return out

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def _fetch_from(self, index: int, last: int) -> bytes | None:
        """Fetch block `index` onwards (through `last`, plus read-ahead, up to the first block cached or
        being fetched by another reader), cache them, return block `index` (None: another reader
        fetched it meanwhile and it was dropped again; ask again)."""
        video = self._video
        count = last - index + 1
        if self._readahead:
            count = max(count, self._next_fetch)
            self._next_fetch = min(_MAX_FETCH, self._next_fetch * 2)
        count = min(count, -(-video.size // _RANGE_BLOCK) - index)
        keys = [(video.uri, video.etag, i) for i in range(index, index + count)]
        claimed = BLOCK_CACHE.claim(keys)
        if not claimed:
            return BLOCK_CACHE.get_or_wait(keys[0])
        try:
            start = index * _RANGE_BLOCK
            data = video.fetch(start, min(video.size, (index + claimed) * _RANGE_BLOCK))
            for i in range(0, len(data), _RANGE_BLOCK):
                BLOCK_CACHE.put(keys[i // _RANGE_BLOCK], data[i:i + _RANGE_BLOCK])
        finally:
            BLOCK_CACHE.release(keys[:claimed])
        return data[:_RANGE_BLOCK]


@contextlib.contextmanager
def s3_local_copy(uri: str) -> Iterator[Path]:
    """Download an S3 video to a temp file (OpenCV needs a seekable local file); removed after."""
    from botocore.exceptions import BotoCoreError, ClientError

    from faceid_jobs.errors import VideoError

    bucket, key = parse_s3_uri(uri)
    key = key.rstrip("/")
    suffix = os.path.splitext(key)[1]
    fd, name = tempfile.mkstemp(prefix="faceid-video-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                make_client().download_fileobj(bucket, key, f)
            except (ClientError, BotoCoreError) as exc:
                code = _code(exc)
                raise VideoError(f"{uri}: cannot download ({code})") from None
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
