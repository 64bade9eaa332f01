"""One self-contained HTML page showing search hits as faces (I/O: reads the videos, writes one file).

`render_report` lays out a query photo (optional) and hits, grouped by
video and sorted by similarity, each with the face crop and a small frame
thumbnail. Crops are read back from the source videos when the report is
made (S3 videos are downloaded to a temporary file, as `process` does); the
index holds no pixels. A video that is gone (moved, deleted, unreadable)
gets a placeholder per hit and a notice saying so; its times and scores,
which come from the index, are still listed.

The page needs nothing from the network: pictures are JPEG data URIs, the
CSS and a one-line script (it marks the page once every picture has
decoded: ``<html data-images-total=N data-images-broken=M>``) are inline,
fonts are the system's, and a Content-Security-Policy forbids any fetch.

Example:
    >>> html = search_report(result, image)  # doctest: +SKIP
    >>> write_report("report.html", html)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from faceid_jobs.config import Settings
from faceid_jobs.errors import FaceIdError, StoreError
from faceid_jobs.fileio import atomic_write

__all__ = ["read_frames", "render_report", "search_report", "write_report"]

log = logging.getLogger(__name__)

# Decode forward instead of seeking when the next wanted frame is this close.
_SEEK_GAP = 48
_CROP_H = 160
_FRAME_W = 320
_QUERY_SIDE = 360
_JPEG_QUALITY = 85
_BOX = (80, 200, 60)  # BGR


def read_frames(uri: str, frames: Iterable[int],
                max_pixels: int = Settings.max_video_pixels) -> dict[int, np.ndarray]:
    """Decode the given frames of a video: frame index → (h, w, 3) uint8 BGR.

    Frames are read in order, seeking only across gaps; a frame the video
    does not have (past its end, undecodable) is left out of the answer.
    ``s3://`` videos are downloaded to a temporary file first. The video a
    hit names may have been replaced since it was processed: one whose
    frames exceed `max_pixels` is refused before a frame is decoded.

    Raises:
        VideoError: the video cannot be found, downloaded or opened.
        VideoTooLargeError: frames larger than `max_pixels`.
    """
    from faceid_jobs.video.probe import capture, check_frame_size, local_path

    wanted = sorted({int(f) for f in frames if int(f) >= 0})
    if uri.startswith("s3://"):
        _register_s3()
    found: dict[int, np.ndarray] = {}
    with local_path(uri) as path:
        cap = capture(Path(path), uri)
        try:
            check_frame_size(cap, uri, max_pixels)
            pos = 0  # the frame the next grab() returns
            for f in wanted:
                if f < pos or f - pos > _SEEK_GAP:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, f)
                    pos = f
                while pos < f and cap.grab():
                    pos += 1
                ok, image = cap.read() if pos == f else (False, None)
                if ok and image is not None:
                    found[f] = image
                    pos += 1
                else:
                    pos = -1  # position unknown: seek for the next one
        finally:
            cap.release()
    return found


def _register_s3() -> None:
    from faceid_jobs.storage.s3 import s3_local_copy
    from faceid_jobs.video.probe import register_opener

    register_opener("s3", s3_local_copy)


# ---------------------------------------------------------------- pictures


def _data_uri(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _draw_box(image: np.ndarray, bbox: Sequence[float] | None) -> np.ndarray:
    out = image.copy()
    if bbox is not None:
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in bbox)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, max(2, round(max(h, w) / 240)), cv2.LINE_AA)
    return out


def _face_crop(frame: np.ndarray, bbox: Sequence[float], margin: float = 0.25) -> np.ndarray | None:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    bw, bh = x2 - x1, y2 - y1
    if bw <= 1 or bh <= 1:
        return None
    x1, x2 = max(0, int(x1 - margin * bw)), min(w, int(np.ceil(x2 + margin * bw)))
    y1, y2 = max(0, int(y1 - margin * bh)), min(h, int(np.ceil(y2 + margin * bh)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop = frame[y1:y2, x1:x2]
    return _resize(crop, _CROP_H / crop.shape[0])


def _frame_thumb(frame: np.ndarray, bbox: Sequence[float]) -> np.ndarray:
    return _resize(_draw_box(frame, bbox), _FRAME_W / frame.shape[1])


# ---------------------------------------------------------------- hits


@dataclass
class _Row:
    rank: int
    video: str
    frame: int
    timestamp_s: float
    bbox: tuple[float, ...]
    similarity: float
    liveness: float | None
    quality: float | None
    identity: str | None
    start_s: float | None
    end_s: float | None
    track_id: int | None
    crop: str | None = None
    thumb: str | None = None
    problem: str | None = None


def _as_row(rank: int, hit: Any) -> _Row:
    """A `search.Hit`, any object with the same attributes, or its JSON dict."""
    get = hit.get if isinstance(hit, Mapping) else (lambda name, default=None: getattr(hit, name, default))
    return _Row(
        rank=rank,
        video=str(get("video")),
        frame=int(get("frame", -1)),
        timestamp_s=float(get("timestamp_s", 0.0)),
        bbox=tuple(float(v) for v in get("bbox", (0, 0, 0, 0))),
        similarity=float(get("similarity", 0.0)),
        liveness=_opt(get("liveness")),
        quality=_opt(get("quality")),
        identity=get("identity"),
        start_s=_opt(get("start_s")),
        end_s=_opt(get("end_s")),
        track_id=get("track_id"),
    )


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _fill_pictures(rows: list[_Row], uri: str) -> str | None:
    """Crops and thumbnails for one video's rows; the video's problem, or None."""
    try:
        frames = read_frames(uri, (r.frame for r in rows))
    except (FaceIdError, OSError) as exc:
        problem = str(exc) if isinstance(exc, FaceIdError) else f"{uri}: cannot read ({exc.strerror or exc})"
        log.warning("report: %s", problem)
        for r in rows:
            r.problem = "video not available"
        return problem
    for r in rows:
        frame = frames.get(r.frame)
        if frame is None:
            r.problem = f"frame {r.frame} not in the video"
            continue
        crop = _face_crop(frame, r.bbox)
        r.crop = _data_uri(crop) if crop is not None else None
        r.thumb = _data_uri(_frame_thumb(frame, r.bbox))
        if r.crop is None:
            r.problem = "box outside the frame"
    missing = sum(1 for r in rows if r.problem)
    return f"{missing} of {len(rows)} frames could not be read (has the file changed?)" if missing else None


# ---------------------------------------------------------------- page


def render_report(
    title: str,
    hits: Sequence[Any],
    *,
    query_image: np.ndarray | None = None,
    query_bbox: Sequence[float] | None = None,
    query_label: str = "query photo",
    details: Mapping[str, Any] | None = None,
    read_videos: bool = True,
    generated_at: datetime | None = None,
) -> str:
    """The report page as one HTML string.

    Args:
        title: page heading, e.g. ``"search: ross.jpg"`` or ``"find: Ross"``.
        hits: `faceid_jobs.search.query.Hit` objects (or their ``to_json()`` dicts,
            or any object with the attributes ``video, frame, timestamp_s,
            bbox, similarity`` and optionally ``liveness, quality, identity,
            start_s, end_s, track_id``), in any order: the page sorts them by
            similarity and groups them by video, best video first.
        query_image: the query photo, (h, w, 3) uint8 BGR, or None (e.g. a
            search by enrolled name) to leave the query panel out.
        query_bbox: the query face's box (x1, y1, x2, y2) in photo pixels.
        query_label: caption under the query photo.
        details: facts shown beside the query (label → value), in order.
        read_videos: read crops from the videos (False: placeholders only).
        generated_at: timestamp printed in the header (default: now).

    Returns:
        A complete HTML document with every picture embedded.
    """
    ordered = sorted(hits, key=lambda h: -_as_row(0, h).similarity)
    rows = [_as_row(i, h) for i, h in enumerate(ordered, 1)]
    groups: dict[str, list[_Row]] = {}
    for r in rows:
        groups.setdefault(r.video, []).append(r)
    problems: dict[str, str | None] = {}
    for uri, group in groups.items():
        if read_videos:
            problems[uri] = _fill_pictures(group, uri)
        else:
            for r in group:
                r.problem = "pictures not read"
            problems[uri] = None
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    spans = any(r.start_s is not None for r in rows)
    noun = "appearance" if spans else "hit"
    parts = [
        _HEAD.format(title=_e(title), css=_CSS, script=_SCRIPT),
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>{len(rows)} {noun}{'s' if len(rows) != 1 else ''} in {len(groups)} "
        f"video{'s' if len(groups) != 1 else ''} · made {when} by faceid-jobs</p>",
        "</header>",
    ]
    if query_image is not None or details:
        parts.append(_query_panel(query_image, query_bbox, query_label, details or {}))
    gone = [u for u, p in problems.items() if p and all(r.problem for r in groups[u])]
    if gone:
        parts.append(
            f"<p class='notice warn'><b>{len(gone)} of {len(groups)} videos could not be read now</b>, "
            "so their faces show a placeholder. Their times and scores come from the index and are "
            "still listed; put the video back at the path shown (or fix access to it) and make the "
            "report again to see the faces.</p>")
    if not rows:
        parts.append("<p class='notice'>No match at or above the threshold.</p>")
    for uri, group in sorted(groups.items(), key=lambda kv: -kv[1][0].similarity):
        parts.append(_video_section(uri, group, problems[uri], noun))
    parts.append("<footer>Faces are cut from the videos when the report is made; boxes and scores come "
                 "from the index. Similarity is the cosine of ArcFace embeddings (1 = identical); "
                 "liveness is P(live) from MiniFASNet. This file needs no network.</footer>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _query_panel(image: np.ndarray | None, bbox: Sequence[float] | None, label: str,
                 details: Mapping[str, Any]) -> str:
    out = ["<section class='query'>"]
    if image is not None:
        h, w = image.shape[:2]
        pic = _resize(_draw_box(image, bbox), min(1.0, _QUERY_SIDE / max(h, w)))
        out.append(f"<figure><img src='{_data_uri(pic)}' alt='{_e(label)}' width='{pic.shape[1]}' "
                   f"height='{pic.shape[0]}'><figcaption>{_e(label)}</figcaption></figure>")
    if details:
        out.append("<dl class='facts'>")
        out += [f"<dt>{_e(k)}</dt><dd>{_e(_fmt_value(v))}</dd>" for k, v in details.items()]
        out.append("</dl>")
    out.append("</section>")
    return "\n".join(out)


def _video_section(uri: str, rows: list[_Row], problem: str | None, noun: str) -> str:
    name = PurePosixPath(uri.rstrip("/")).name or uri
    best = rows[0].similarity
    out = [
        "<section class='video'>",
        f"<h2><span class='name'>{_e(name)}</span> <span class='count'>{len(rows)} {noun}"
        f"{'s' if len(rows) != 1 else ''} · best {best:.3f}</span></h2>",
        f"<p class='path'>{_e(uri)}</p>",
    ]
    if problem:
        all_gone = all(r.problem for r in rows)
        lead = "Video not available at report time" if all_gone else "Some faces could not be shown"
        out.append(f"<p class='notice warn'><b>{lead}:</b> {_e(problem)}</p>")
    out.append("<div class='hits'>")
    out += [_card(r) for r in rows]
    out.append("</div></section>")
    return "\n".join(out)


def _card(r: _Row) -> str:
    if r.crop:
        crop = f"<img class='crop' src='{r.crop}' alt='face at {_fmt_time(r.timestamp_s)}'>"
    else:
        crop = f"<div class='ph crop' role='img' aria-label='{_e(r.problem or '')}'>{_e(r.problem or '')}</div>"
    thumb = (f"<img class='frame' src='{r.thumb}' alt='frame {r.frame}'>" if r.thumb
             else "<div class='ph frame' role='img' aria-label='no frame'>no frame</div>")
    if r.start_s is not None and r.end_s is not None:
        when = f"{_fmt_time(r.start_s)} – {_fmt_time(r.end_s)}"
        best = f"<dt>best face</dt><dd>{_fmt_time(r.timestamp_s)}, frame {r.frame}</dd>"
    else:
        when = _fmt_time(r.timestamp_s)
        best = f"<dt>frame</dt><dd>{r.frame}</dd>"
    level = "high" if r.similarity >= 0.6 else "mid" if r.similarity >= 0.45 else "low"
    facts = [best]
    if r.identity:
        facts.insert(0, f"<dt>identity</dt><dd class='who'>{_e(r.identity)}</dd>")
    facts.append(f"<dt>liveness</dt><dd>{_live(r.liveness)}</dd>")
    if r.quality is not None:
        facts.append(f"<dt>quality</dt><dd>{r.quality:.2f}</dd>")
    return (
        "<article class='hit'>"
        f"<div class='pics'>{crop}{thumb}</div>"
        "<div class='info'>"
        f"<div class='top'><span class='rank'>#{r.rank}</span><span class='time'>{when}</span></div>"
        f"<div class='sim {level}'><span class='val'>{r.similarity:.3f}</span>"
        f"<span class='bar'><span style='width:{max(0.0, min(1.0, r.similarity)) * 100:.0f}%'></span></span>"
        "<span class='lbl'>similarity</span></div>"
        f"<dl>{''.join(facts)}</dl></div></article>"
    )


def _live(v: float | None) -> str:
    if v is None:
        return "–"
    cls = "ok" if v >= 0.5 else "bad"
    return f"<span class='{cls}'>{v:.2f}</span>"


def _fmt_time(seconds: float) -> str:
    minutes, s = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{s:04.1f}" if hours else f"{minutes:02d}:{s:04.1f}"


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if v == v else "–"
    return "–" if v is None else str(v)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def search_report(result: Any, query_image: np.ndarray | None, *, threshold: float | None = None,
                  title: str | None = None, read_videos: bool = True) -> str:
    """`render_report` for a `faceid_jobs.search.query.SearchResult` and its query photo."""
    q = result.query
    photo = PurePosixPath(str(q.photo)).name or str(q.photo)
    details: dict[str, Any] = {
        "photo": photo,
        "face": f"{q.face_index} of {q.faces_in_photo} (0 = largest)",
        "detection score": round(q.det_score, 3),
    }
    if q.liveness is not None:
        details["liveness"] = round(q.liveness, 3)
    if threshold is not None:
        details["threshold"] = threshold
    info = result.index
    details["index"] = f"v{info.version}: {info.vectors} vectors, {info.videos} videos, by {result.mode}"
    return render_report(title or f"Search: {photo}", result.hits, query_image=query_image,
                         query_bbox=q.bbox, query_label=f"{photo} · face {q.face_index}", details=details,
                         read_videos=read_videos)


def write_report(path: str | os.PathLike[str], text: str) -> Path:
    """Write the page atomically and private (0600: it holds face crops); returns the path.

    Raises:
        StoreError: the folder does not exist or cannot be written.
    """
    target = Path(path).expanduser()
    try:
        atomic_write(target, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise StoreError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
    return target


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="generator" content="faceid-jobs">
<title>{title}</title>
<style>{css}</style>
<script>{script}</script>
</head><body><main>"""

# Marks the page when every picture has decoded (tests and curious users read it).
_SCRIPT = ("addEventListener('load',function(){var n=0,b=0;for(var i of document.images){n++;"
           "if(!(i.complete&&i.naturalWidth>0))b++;}var d=document.documentElement.dataset;"
           "d.imagesTotal=n;d.imagesBroken=b;});")

_CSS = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--mute:#6b7280;--line:#e3e6eb;--accent:#2f7d4f;
--mid:#b7791f;--low:#9aa1ad;--warn-bg:#fff7e6;--warn:#8a5a00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
header h1{margin:0;font-size:24px;font-weight:650;letter-spacing:-.01em}
.sub{margin:4px 0 20px;color:var(--mute)}
.query{display:flex;gap:24px;align-items:flex-start;background:var(--card);border:1px solid var(--line);
border-radius:12px;padding:18px;margin-bottom:22px}
.query figure{margin:0}
.query img{display:block;max-width:360px;height:auto;border-radius:8px}
.query figcaption{color:var(--mute);font-size:12px;margin-top:6px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;margin:0}
.facts dt{color:var(--mute)}
.facts dd{margin:0;font-variant-numeric:tabular-nums}
.notice{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.notice.warn{background:var(--warn-bg);border-color:#f3d9a4;color:var(--warn)}
.video{margin-top:26px}
.video h2{font-size:17px;margin:0;display:flex;gap:12px;align-items:baseline;flex-wrap:wrap}
.video h2 .count{font-size:13px;font-weight:400;color:var(--mute)}
.path{margin:2px 0 12px;color:var(--mute);font-size:12px;word-break:break-all;
font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.hits{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
.hit{display:flex;gap:14px;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px}
.pics{display:flex;gap:8px;align-items:flex-start;flex:none}
.pics .crop{height:160px;width:auto;max-width:160px;object-fit:cover;border-radius:8px;background:#dfe3e8}
.pics .frame{width:200px;height:auto;border-radius:6px;background:#dfe3e8}
.ph{display:flex;align-items:center;justify-content:center;text-align:center;padding:8px;color:var(--mute);
font-size:12px;background:repeating-linear-gradient(45deg,#eceff3,#eceff3 8px,#e3e7ec 8px,#e3e7ec 16px);
border:1px dashed #c6ccd4;border-radius:8px}
.ph.crop{width:128px;height:160px}
.ph.frame{width:200px;height:113px}
.info{min-width:0;flex:1}
.top{display:flex;justify-content:space-between;gap:8px;align-items:baseline}
.rank{color:var(--mute);font-size:12px}
.time{font-weight:600;font-variant-numeric:tabular-nums}
.sim{display:flex;align-items:center;gap:8px;margin:8px 0 10px}
.sim .val{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.sim .lbl{color:var(--mute);font-size:12px}
.sim .bar{flex:1;height:6px;background:var(--line);border-radius:3px;overflow:hidden;max-width:120px}
.sim .bar span{display:block;height:100%;background:var(--low)}
.sim.high .val{color:var(--accent)}.sim.high .bar span{background:var(--accent)}
.sim.mid .val{color:var(--mid)}.sim.mid .bar span{background:var(--mid)}
.info dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;font-size:13px}
.info dt{color:var(--mute)}
.info dd{margin:0;font-variant-numeric:tabular-nums}
.who{font-weight:600}
.ok{color:var(--accent)}.bad{color:#b42318;font-weight:600}
footer{margin-top:36px;color:var(--mute);font-size:12px;border-top:1px solid var(--line);padding-top:12px}
@media (max-width:640px){.hits{grid-template-columns:1fr}.hit{flex-direction:column}.query{flex-direction:column}}
@media print{body{background:#fff}.hit,.query{break-inside:avoid}}
"""
