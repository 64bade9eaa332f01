"""Named exceptions and process exit codes shared by the library and the CLI (pure).

Every user-facing error carries a one-line message that names the file (or
key) and the problem; the CLI prints `str(exc)` and exits with `exc.exit_code`,
the HTTP API answers `http_status` with ``{"error": str(exc), "code": api_code}``.
Every error class of the library is defined here, so both edges map them by
these attributes alone.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ClusterLostError",
    "ConfigError",
    "EnrollmentError",
    "ExitCode",
    "FaceIdError",
    "ImageTooLargeError",
    "IndexMissingError",
    "IntegrityError",
    "KeyMismatchError",
    "ModelError",
    "NoFaceError",
    "PhotoError",
    "PolicyError",
    "RunCancelled",
    "SpoofError",
    "StoreError",
    "StoreTransientError",
    "StoreUnwritableError",
    "UnknownIdentityError",
    "UnknownPersonError",
    "UnknownVideoError",
    "VideoError",
    "VideoTooLargeError",
]


class ExitCode(IntEnum):
    """Process exit codes; the README documents them."""

    OK = 0
    FAILURES = 1  # a run finished but some videos/chunks failed; verify: no match
    BAD_INPUT = 2  # missing/unreadable photo, no face, no index, bad option
    SPOOF = 3  # liveness refused the query
    INTEGRITY = 4  # tampered or unreadable store data, wrong key
    MODEL = 5  # model file missing or not a recognised graph
    INTERRUPTED = 130  # stopped by SIGINT (SIGTERM: 143); what was stored stays, a re-run resumes


class FaceIdError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code: ExitCode = ExitCode.BAD_INPUT
    # What the HTTP API answers: status and the machine-readable `code` of its JSON error.
    http_status: int = 400
    api_code: str = "bad_request"

    def __init_subclass__(cls, *, exit_code: ExitCode | None = None, http_status: int | None = None,
                          api_code: str | None = None, **kwargs: object) -> None:
        # `class NoFaceError(FaceIdError, http_status=422, api_code="no_face")`: each error's
        # mapping stands in its header; what is not given is inherited.
        super().__init_subclass__(**kwargs)
        for attr, value in (("exit_code", exit_code), ("http_status", http_status), ("api_code", api_code)):
            if value is not None:
                setattr(cls, attr, value)

    def __str__(self) -> str:
        # One line, always: callers print this verbatim.
        return " ".join(super().__str__().split())


class ConfigError(FaceIdError):
    """A setting has an invalid value or a config file cannot be read."""


class PhotoError(FaceIdError, api_code="bad_photo"):
    """A query photo is missing or is not a decodable image."""


class ImageTooLargeError(PhotoError, http_status=413, api_code="too_large"):
    """An image whose header declares more pixels than `max_image_pixels` (refused before decoding)."""


class NoFaceError(FaceIdError, http_status=422, api_code="no_face"):
    """A photo holds no detectable face."""


class SpoofError(FaceIdError, exit_code=ExitCode.SPOOF, http_status=422, api_code="spoof"):
    """A query face failed the liveness check (a photo of a photo or a screen)."""


class EnrollmentError(FaceIdError, http_status=422, api_code="not_enrollable"):
    """A photo cannot be enrolled: several faces with --strict, or too low a quality (exit 2)."""


class PolicyError(FaceIdError, http_status=403, api_code="forbidden"):
    """A request the server's policy does not allow (API: 403), e.g. skipping liveness."""


class UnknownIdentityError(FaceIdError, http_status=404, api_code="unknown_identity"):
    """A name that is not enrolled (exit 2)."""


class UnknownPersonError(FaceIdError, http_status=404, api_code="unknown_person"):
    """A person id that does not exist (exit 2)."""


class UnknownVideoError(FaceIdError, http_status=404, api_code="unknown_video"):
    """A video that is not in the catalog (exit 2)."""


class VideoError(FaceIdError, exit_code=ExitCode.FAILURES):
    """A video cannot be opened or decoded (unreadable, empty, truncated, not video)."""


class VideoTooLargeError(VideoError):
    """A video whose frames have more pixels than `max_video_pixels` (refused before decoding)."""


class IndexMissingError(FaceIdError, http_status=503, api_code="no_index"):
    """Search was asked for before any index was built."""


class ModelError(FaceIdError, exit_code=ExitCode.MODEL, http_status=500, api_code="model"):
    """A model file is missing, unreadable, or not a graph we know how to run."""


class StoreError(FaceIdError, exit_code=ExitCode.FAILURES, http_status=503, api_code="store"):
    """The store cannot be read or written."""


class StoreUnwritableError(StoreError):
    """The store cannot be written and no wait will change that: disk full, quota,
    read-only filesystem, permission. Never retried."""


class StoreTransientError(StoreError):
    """The store did not answer in time or asked to slow down: a dropped or refused connection,
    a timeout, S3 throttling or a 5xx, or writers that kept racing. The only store error retried."""


class IntegrityError(FaceIdError, exit_code=ExitCode.INTEGRITY, http_status=500, api_code="integrity"):
    """Stored data failed a checksum or format check: never used silently."""


class ClusterLostError(FaceIdError, exit_code=ExitCode.FAILURES, http_status=503, api_code="cluster_lost"):
    """The Dask cluster running a run's steps went away mid-run: its scheduler was lost, or it had
    no workers for longer than the setting `dask_no_workers_s`. What was stored stays; a re-run resumes."""


class RunCancelled(FaceIdError, exit_code=ExitCode.INTERRUPTED, http_status=503, api_code="cancelled"):
    """A run was asked to stop (SIGINT/SIGTERM): the chunk being analysed is dropped, nothing half-written."""


class KeyMismatchError(IntegrityError, api_code="wrong_key"):
    """The store's data needs a key this machine does not have (missing or different key; exit 4)."""
