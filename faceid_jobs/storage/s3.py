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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from faceid_jobs.errors import StoreError, StoreUnwritableError
from faceid_jobs.storage.layout import check_key, check_prefix

__all__ = ["S3Store", "parse_s3_uri"]

_MULTIPART_THRESHOLD = 64 << 20
_BODY_ATTEMPTS = 4

_PERMISSION_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                               "SignatureDoesNotMatch", "AccountProblem", "QuotaExceeded"})


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
            raise StoreError(f"{self._name}: connection lost while reading ({type(exc).__name__})") from None
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


class S3Store:
    """Objects under `s3://bucket/prefix/`; keys are relative to the prefix."""

    def __init__(self, uri: str, client: Any | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client or make_client()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _error(self, exc: Exception, key: str, action: str) -> StoreError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        # A refused credential or policy stays refused: fail at once, never retried.
        kind = StoreUnwritableError if code in _PERMISSION_CODES else StoreError
        return kind(f"{self.uri}/{key}: cannot {action} ({code})")

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        # botocore retries the request, not the body read that follows it: a
        # connection dropped mid-download is retried here.
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
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
            code = exc.response.get("Error", {}).get("Code")
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
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
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
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
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
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
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
                    found.append(f"s3://{bucket}/{key}")
    except (ClientError, BotoCoreError) as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise StoreError(f"{uri}: cannot list ({code})") from None
    return sorted(found)


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
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                raise VideoError(f"{uri}: cannot download ({code})") from None
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
