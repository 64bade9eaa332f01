"""Turn user-given sources (files, folders, globs) into videos (I/O: lists folders and buckets).

Each video comes with its `SourceObject` (size, mtime/inode or ETag, from the
listing and one `stat`), which a re-run compares with the store's sources
index to skip unchanged videos without reading them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from faceid_jobs.video.source import SourceObject, local_source

__all__ = [
    "PHOTO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "SkippedFile",
    "discover_sources",
    "discover_videos",
    "is_excluded",
    "missing_sources",
]

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg",
     ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"]
)
# Named apart from other skipped files: a photo in a footage folder is the
# skip a user most likely wants to hear about (search and enroll take photos).
PHOTO_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif",
     ".pnm", ".ppm", ".pgm", ".pbm"]
)


@dataclass(frozen=True)
class SkippedFile:
    """A file a folder walk or glob found and left out, and why ("photo", "not a video extension",
    "hidden file", "excluded")."""

    path: str
    reason: str


def is_excluded(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a path (relative to the folder or prefix given, `/`-separated) or its file name
    matches one of the glob `patterns` (fnmatch: `*` also crosses `/`).

    Example:
        >>> is_excluded("raw/proxies/a.mp4", ["proxies/*"]), is_excluded("raw/a.mp4", ["raw/*"])
        (False, True)
    """
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def discover_videos(
    sources: Iterable[str],
    exclude: Sequence[str] = (),
    skipped: list[SkippedFile] | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand sources into videos, in a stable order, without duplicates.

    Local videos are named by absolute, normalised paths (symlinks kept as
    given), s3:// URIs as given: records and catalog entries keep these
    names, so reports, `find` and `annotate` work from any folder.

    Files named explicitly are taken whatever their extension (a bad one then
    fails with a clear decode error); inside folders and globs only known
    video extensions are taken, recursively. A file (or S3 object) whose path
    relative to the folder, glob root or prefix given, or whose name, matches
    an `exclude` pattern is left out.

    Args:
        sources: files, folders, globs, s3:// prefixes.
        exclude: glob patterns (`is_excluded`).
        skipped: when given, every file found and left out is appended to it.

    Returns:
        (videos, problems): problems are (source, reason) for sources that
        match nothing.
    """
    found, problems = discover_sources(sources, exclude, skipped)
    return [obj.uri for obj in found], problems


def missing_sources(sources: Iterable[str]) -> list[tuple[str, str]]:
    """The local sources that name nothing (no such file or folder, a pattern matching no file),
    checked cheaply before a run starts; bucket prefixes are left to the run's listing."""
    missing = []
    for source in sources:
        if source.startswith("s3://"):
            continue
        path = Path(source).expanduser()
        if path.exists():
            continue
        if not glob.has_magic(source):
            missing.append((source, "file not found"))
        elif not any(Path(p).is_file() for p in glob.iglob(str(path), recursive=True)):
            missing.append((source, "pattern matches no files"))
    return missing


def discover_sources(
    sources: Iterable[str],
    exclude: Sequence[str] = (),
    skipped: list[SkippedFile] | None = None,
) -> tuple[list[SourceObject], list[tuple[str, str]]]:
    """As `discover_videos`, each video with what its listing says (`SourceObject`)."""
    videos: list[SourceObject] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    skipped = [] if skipped is None else skipped

    def keep(path: Path, root: Path | None) -> bool:
        """Whether a found file is taken; the others go to `skipped`."""
        relative = path.relative_to(root).as_posix() if root is not None else path.name
        reason = _skip_reason(path, relative, exclude, explicit=root is None)
        if reason:
            skipped.append(SkippedFile(os.path.abspath(path), reason))
        return not reason

    def add(path: Path) -> None:
        uri = os.path.abspath(path)
        try:
            obj = local_source(path, uri)
        except OSError:
            # Gone between listing and stat, or unreadable: planning names the problem.
            obj = SourceObject(uri=uri, location=uri, size=-1)
        if obj.location not in seen:
            seen.add(obj.location)
            videos.append(obj)

    for source in sources:
        if source.startswith("s3://"):
            from faceid_jobs.storage.s3 import list_s3_sources

            found_s3 = list_s3_sources(source, VIDEO_EXTENSIONS)
            if exclude:
                prefix = source.rstrip("/") + "/"
                excluded = {o.uri for o in found_s3 if is_excluded(o.uri.removeprefix(prefix), exclude)}
                skipped.extend(SkippedFile(u, "excluded") for u in sorted(excluded))
                found_s3 = [o for o in found_s3 if o.uri not in excluded]
            if not found_s3:
                problems.append((source, "no video objects under this prefix"))
            for obj in found_s3:
                if obj.location not in seen:
                    seen.add(obj.location)
                    videos.append(obj)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and keep(p, path)]
            if not found:
                problems.append((source, "folder holds no video files"))
            for p in found:
                add(p)
        elif path.exists():
            if keep(path, None):
                add(path)
        elif glob.has_magic(source):
            root = _glob_root(path)
            found = [
                p for p in sorted(Path(m) for m in glob.glob(str(path), recursive=True))
                if p.is_file() and keep(p, root)
            ]
            if not found:
                problems.append((source, "pattern matches no video files"))
            for p in found:
                add(p)
        else:
            problems.append((source, "file not found"))
    return videos, problems


def _register_s3_opener() -> None:
    from faceid_jobs.storage.s3 import S3Video, s3_local_copy
    from faceid_jobs.video import register_opener
    from faceid_jobs.video.source import register_remote

    register_opener("s3", s3_local_copy)
    register_remote("s3", S3Video)


_register_s3_opener()


def _skip_reason(path: Path, relative: str, exclude: Sequence[str], *, explicit: bool) -> str:
    """Why a found file is left out ("" when it is taken); an explicit file only by `exclude`."""
    if is_excluded(relative, exclude):
        return "excluded"
    if explicit:
        return ""
    suffix = path.suffix.lower()
    if path.name.startswith("."):
        return "hidden file"
    if suffix in PHOTO_EXTENSIONS:
        return "photo"
    if suffix not in VIDEO_EXTENSIONS:
        return "not a video extension"
    return ""


def _glob_root(pattern: Path) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")
