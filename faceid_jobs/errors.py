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
    "UnknownIdentityError",
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

    def __str__(self) -> str:
        # One line, always: callers print this verbatim.
        return " ".join(super().__str__().split())


class ConfigError(FaceIdError):
    """A setting has an invalid value or a config file cannot be read."""


class PhotoError(FaceIdError):
    """A query photo is missing or is not a decodable image."""

    api_code = "bad_photo"


class ImageTooLargeError(PhotoError):
    """An image whose header declares more pixels than `max_image_pixels` (refused before decoding)."""

    http_status = 413
    api_code = "too_large"


class NoFaceError(FaceIdError):
    """A photo holds no detectable face."""

    http_status = 422
    api_code = "no_face"


class SpoofError(FaceIdError):
    """A query face failed the liveness check (a photo of a photo or a screen)."""

    exit_code = ExitCode.SPOOF
    http_status = 422
    api_code = "spoof"


class EnrollmentError(FaceIdError):
    """A photo cannot be enrolled: several faces with --strict, or too low a quality (exit 2)."""

    http_status = 422
    api_code = "not_enrollable"


class PolicyError(FaceIdError):
    """A request the server's policy does not allow (API: 403), e.g. skipping liveness."""

    http_status = 403
    api_code = "forbidden"


class UnknownIdentityError(FaceIdError):
    """A name that is not enrolled (exit 2)."""

    http_status = 404
    api_code = "unknown_identity"


class UnknownVideoError(FaceIdError):
    """A video that is not in the catalog (exit 2)."""

    http_status = 404
    api_code = "unknown_video"


class VideoError(FaceIdError):
    """A video cannot be opened or decoded (unreadable, empty, truncated, not video)."""

    exit_code = ExitCode.FAILURES


class VideoTooLargeError(VideoError):
    """A video whose frames have more pixels than `max_video_pixels` (refused before decoding)."""


class IndexMissingError(FaceIdError):
    """Search was asked for before any index was built."""

    http_status = 503
    api_code = "no_index"


class ModelError(FaceIdError):
    """A model file is missing, unreadable, or not a graph we know how to run."""

    exit_code = ExitCode.MODEL
    http_status = 500
    api_code = "model"


class StoreError(FaceIdError):
    """The store cannot be read or written."""

    exit_code = ExitCode.FAILURES
    http_status = 503
    api_code = "store"


class StoreUnwritableError(StoreError):
    """The store cannot be written and no wait will change that: disk full, quota,
    read-only filesystem, permission. Never retried."""


class IntegrityError(FaceIdError):
    """Stored data failed a checksum or format check: never used silently."""

    exit_code = ExitCode.INTEGRITY
    http_status = 500
    api_code = "integrity"


class RunCancelled(FaceIdError):
    """A run was asked to stop (SIGINT/SIGTERM): the chunk being analysed is dropped, nothing half-written."""

    exit_code = ExitCode.INTERRUPTED
    http_status = 503
    api_code = "cancelled"


class KeyMismatchError(IntegrityError):
    """The store's data needs a key this machine does not have (missing or different key; exit 4)."""

    api_code = "wrong_key"
