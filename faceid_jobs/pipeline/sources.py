"""Turn user-given sources (files, folders, globs) into videos (I/O: lists folders and buckets).

Each video comes with its `SourceObject` (size, mtime/inode or ETag, from the
listing and one `stat`), which a re-run compares with the store's sources
index to skip unchanged videos without reading them.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from faceid_jobs.video.source import SourceObject, local_source

__all__ = ["VIDEO_EXTENSIONS", "discover_sources", "discover_videos", "missing_sources"]

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg",
     ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"]
)


def discover_videos(sources: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand sources into video paths, in a stable order, without duplicates.

    Files named explicitly are taken whatever their extension (a bad one then
    fails with a clear decode error); inside folders and globs only known
    video extensions are taken, recursively.

    Returns:
        (videos, problems): problems are (source, reason) for sources that
        match nothing.
    """
    found, problems = discover_sources(sources)
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


def discover_sources(sources: Iterable[str]) -> tuple[list[SourceObject], list[tuple[str, str]]]:
    """As `discover_videos`, each video with what its listing says (`SourceObject`)."""
    videos: list[SourceObject] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        try:
            obj = local_source(path)
        except OSError:
            # Gone between listing and stat, or unreadable: planning names the problem.
            obj = SourceObject(uri=str(path), location=str(path.absolute()), size=-1)
        if obj.location not in seen:
            seen.add(obj.location)
            videos.append(obj)

    for source in sources:
        if source.startswith("s3://"):
            from faceid_jobs.storage.s3 import list_s3_sources

            found_s3 = list_s3_sources(source, VIDEO_EXTENSIONS)
            if not found_s3:
                problems.append((source, "no video objects under this prefix"))
            for obj in found_s3:
                if obj.location not in seen:
                    seen.add(obj.location)
                    videos.append(obj)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_video_name(p))
            if not found:
                problems.append((source, "folder holds no video files"))
            for p in found:
                add(p)
        elif path.exists():
            add(path)
        elif glob.has_magic(source):
            found = sorted(
                Path(p) for p in glob.glob(str(path), recursive=True)
                if Path(p).is_file() and _is_video_name(Path(p))
            )
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


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")
