"""A self-contained HTML contact sheet of the people found (I/O: reads the videos).

One row per person: the best face, counts, first and last seen, and a strip
of faces from different videos (one per video first, then more of the same
video). Pictures are read back from the videos like the search report
(`web/report.py`): JPEG data URIs, inline CSS, a CSP that forbids any fetch,
a placeholder where a video is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from faceid_jobs.errors import FaceIdError
from faceid_jobs.web.report import _CSS, _HEAD, _SCRIPT, _data_uri, _e, _face_crop, _fmt_time, read_frames

__all__ = ["people_report"]

_STRIP = 8


def _strip(person: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Up to `_STRIP` appearances, one per video first."""
    apps = sorted(person["appearances"], key=lambda a: -a["similarity"])
    first, rest, seen = [], [], set()
    for a in apps:
        (rest if a["video"] in seen else first).append(a)
        seen.add(a["video"])
    return (first + rest)[:_STRIP]


def _pictures(faces: Sequence[Mapping[str, Any]], read_videos: bool) -> dict[tuple[str, int, str], str | None]:
    by_video: dict[str, set[int]] = {}
    for f in faces:
        by_video.setdefault(f["video"], set()).add(int(f["frame"]))
    out: dict[tuple[str, int, str], str | None] = {}
    for video, frames in by_video.items():
        try:
            got = read_frames(video, frames) if read_videos else {}
        except (FaceIdError, OSError):
            got = {}
        for f in faces:
            if f["video"] == video:
                frame = got.get(int(f["frame"]))
                crop = _face_crop(frame, f["bbox"]) if frame is not None else None
                out[(video, int(f["frame"]), f["face_id"])] = _data_uri(crop) if crop is not None else None
    return out


def _img(src: str | None, alt: str, cls: str) -> str:
    if src:
        return f"<img class='{cls}' src='{src}' alt='{_e(alt)}'>"
    return f"<div class='ph {cls}' role='img' aria-label='video not available'>video not available</div>"


def people_report(view: Mapping[str, Any], *, title: str = "People", read_videos: bool = True,
                  generated_at: datetime | None = None) -> str:
    """The contact sheet as one HTML string, for `people_view` (or `{"people": [person_view]}`)."""
    people = list(view["people"])
    wanted = [p["best"] for p in people] + [a for p in people for a in _strip(p)]
    pics = _pictures(wanted, read_videos)
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [_HEAD.format(title=_e(title), css=_CSS + _PEOPLE_CSS, script=_SCRIPT), "<header>",
             f"<h1>{_e(title)}</h1>",
             f"<p class='sub'>{len(people)} {'person' if len(people) == 1 else 'people'} · made {when} "
             "by faceid-jobs</p>", "</header>"]
    if not people:
        parts.append("<p class='notice'>No people found yet: process some footage, then run "
                     "<code>faceid-jobs people</code>.</p>")
    for p in people:
        b = p["best"]
        best = _img(pics.get((b["video"], int(b["frame"]), b["face_id"])), f"best face of {p['id']}", "crop")
        strip = "".join(_img(pics.get((a["video"], int(a["frame"]), a["face_id"])),
                             f"{a['video']} at {_fmt_time(a['timestamp_s'])}", "face")
                        for a in _strip(p))
        name = f"<span class='who'>{_e(p['name'])}</span>" if p.get("name") else "<span class='unnamed'>unnamed</span>"
        first, last = p["first_seen"], p["last_seen"]
        parts.append(
            f"<article class='person' id='{_e(p['id'])}'><div class='pics'>{best}</div><div class='info'>"
            f"<h2>{_e(p['id'])} {name}</h2>"
            f"<p class='counts'>{p['faces']} faces · {len(p['appearances'])} appearances · {p['videos']} "
            f"video{'s' if p['videos'] != 1 else ''}</p>"
            f"<dl><dt>first seen</dt><dd>{_e(first['video'])} at {_fmt_time(first['timestamp_s'])}</dd>"
            f"<dt>last seen</dt><dd>{_e(last['video'])} at {_fmt_time(last['timestamp_s'])}</dd></dl>"
            f"<div class='strip'>{strip}</div></div></article>")
    parts.append("<footer>Faces are cut from the videos when the sheet is made; people come from clustering "
                 "the stored face embeddings. This file needs no network.</footer></main></body></html>\n")
    return "\n".join(parts)


_PEOPLE_CSS = """
.person{display:flex;gap:16px;background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:12px;margin-top:14px}
.person h2{font-size:17px;margin:0 0 4px}
.person .unnamed{color:var(--mute);font-weight:400}
.counts{margin:0 0 6px;color:var(--mute)}
.strip{display:flex;gap:6px;flex-wrap:wrap;margin-top:8px}
.strip .face{height:72px;width:auto;border-radius:6px;background:#dfe3e8}
.ph.face{width:60px;height:72px;font-size:10px}
"""
