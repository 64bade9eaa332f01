"""Turn user-given sources (files, folders, globs) into a list of video URIs (I/O: lists folders)."""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PHOTO_EXTENSIONS", "VIDEO_EXTENSIONS", "SkippedFile", "discover_videos", "is_excluded"]

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
    """Expand sources into video paths, in a stable order, without duplicates.

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
    videos: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    skipped = [] if skipped is None else skipped

    def keep(path: Path, root: Path | None) -> bool:
        """Whether a found file is taken; the others go to `skipped`."""
        relative = path.relative_to(root).as_posix() if root is not None else path.name
        reason = _skip_reason(path, relative, exclude, explicit=root is None)
        if reason:
            skipped.append(SkippedFile(str(path), reason))
        return not reason

    def add(path: Path) -> None:
        key = str(path.resolve())
        if key not in seen:
            seen.add(key)
            videos.append(str(path))

    for source in sources:
        if source.startswith("s3://"):
            from faceid_jobs.storage.s3 import list_s3_videos

            found_s3 = list_s3_videos(source, VIDEO_EXTENSIONS)
            if exclude:
                prefix = source.rstrip("/") + "/"
                excluded = [u for u in found_s3 if is_excluded(u.removeprefix(prefix), exclude)]
                skipped.extend(SkippedFile(u, "excluded") for u in excluded)
                found_s3 = [u for u in found_s3 if u not in excluded]
            if not found_s3:
                problems.append((source, "no video objects under this prefix"))
            for uri in found_s3:
                if uri not in seen:
                    seen.add(uri)
                    videos.append(uri)
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
    from faceid_jobs.storage.s3 import s3_local_copy
    from faceid_jobs.video import register_opener

    register_opener("s3", s3_local_copy)


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
