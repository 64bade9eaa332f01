"""Named exceptions and process exit codes shared by the library and the CLI (pure).

Every user-facing error carries a one-line message that names the file (or
key) and the problem; the CLI prints `str(exc)` and exits with `exc.exit_code`.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ConfigError",
    "ExitCode",
    "FaceIdError",
    "IndexMissingError",
    "IntegrityError",
    "ModelError",
    "NoFaceError",
    "PhotoError",
    "SpoofError",
    "StoreError",
    "VideoError",
]


class ExitCode(IntEnum):
    """Process exit codes; the README documents them."""

    OK = 0
    FAILURES = 1  # a run finished but some videos/chunks failed; verify: no match
    BAD_INPUT = 2  # missing/unreadable photo, no face, no index, bad option
    SPOOF = 3  # liveness refused the query
    INTEGRITY = 4  # tampered or unreadable store data, wrong key
    MODEL = 5  # model file missing or not a recognised graph


class FaceIdError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __str__(self) -> str:
        # One line, always: callers print this verbatim.
        return " ".join(super().__str__().split())


class ConfigError(FaceIdError):
    """A setting has an invalid value or a config file cannot be read."""


class PhotoError(FaceIdError):
    """A query photo is missing or is not a decodable image."""


class NoFaceError(FaceIdError):
    """A photo holds no detectable face."""


class SpoofError(FaceIdError):
    """A query face failed the liveness check (a photo of a photo or a screen)."""

    exit_code = ExitCode.SPOOF


class VideoError(FaceIdError):
    """A video cannot be opened or decoded (unreadable, empty, truncated, not video)."""

    exit_code = ExitCode.FAILURES


class IndexMissingError(FaceIdError):
    """Search was asked for before any index was built."""


class ModelError(FaceIdError):
    """A model file is missing, unreadable, or not a graph we know how to run."""

    exit_code = ExitCode.MODEL


class StoreError(FaceIdError):
    """The store cannot be read or written."""

    exit_code = ExitCode.FAILURES


class IntegrityError(FaceIdError):
    """Stored data failed a checksum or format check: never used silently."""

    exit_code = ExitCode.INTEGRITY
