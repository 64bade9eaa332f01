"""Turn user-given sources (files, folders, globs) into a list of video URIs (I/O: lists folders)."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "discover_videos"]

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
    videos: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = str(path.resolve())
        if key not in seen:
            seen.add(key)
            videos.append(str(path))

    for source in sources:
        if source.startswith("s3://"):
            from faceid_jobs.storage.s3 import list_s3_videos

            found_s3 = list_s3_videos(source, VIDEO_EXTENSIONS)
            if not found_s3:
                problems.append((source, "no video objects under this prefix"))
            for uri in found_s3:
                if uri not in seen:
                    seen.add(uri)
                    videos.append(uri)
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
    from faceid_jobs.storage.s3 import s3_local_copy
    from faceid_jobs.video import register_opener

    register_opener("s3", s3_local_copy)


_register_s3_opener()


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")
