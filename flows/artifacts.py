"""Prefect artifacts of the flows: one table and one Markdown report per run.

Keys are stable (`faceid-<job>-summary`, `faceid-<job>-report`), so the
Prefect UI shows each job's history. The renderers are plain functions of the
run's JSON summary; `publish_*` must be called inside a flow or task run.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

__all__ = [
    "INDEX_KEYS",
    "PEOPLE_KEY",
    "REPROCESS_KEYS",
    "SEARCH_KEYS",
    "index_markdown",
    "people_rows",
    "publish_index",
    "publish_people",
    "publish_reprocess",
    "publish_search",
    "reprocess_markdown",
    "search_markdown",
]

REPROCESS_KEYS = ("faceid-reprocess-summary", "faceid-reprocess-report")
INDEX_KEYS = ("faceid-index-summary", "faceid-index-report")
SEARCH_KEYS = ("faceid-search-summary", "faceid-search-report")
PEOPLE_KEY = "faceid-people-summary"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _json_block(data: Any) -> str:
    return "```json\n" + json.dumps(data, indent=1, default=str) + "\n```\n"


# ---------------------------------------------------------------- reprocess-archive


def reprocess_markdown(summary: dict[str, Any], videos: list[dict[str, Any]]) -> str:
    chunks = summary["chunks"]
    state = "completed" if summary["ok"] else "failed"
    index = summary.get("index") or {}
    lines = [
        f"# faceid-jobs reprocess: {state}\n",
        f"Flow run `{summary.get('flow_run_id')}`.\n",
        "| videos | chunks done | skipped | failed | faces found | faces in store | indexed vectors "
        "| video s | wall s | video s / s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {summary['videos']} | {chunks['done']} | {chunks['skipped']} | {chunks['failed']} "
        f"| {summary['faces']} | {summary['faces_in_store']} "
        f"| {'-' if summary['indexed_vectors'] is None else summary['indexed_vectors']} "
        f"| {summary['video_seconds']} | {summary['wall_seconds']} "
        f"| {summary['video_seconds_per_second']} |\n",
        "Index: " + (f"version {index.get('version')}, "
                     f"{'published by this run' if index.get('published') else 'unchanged'}.\n"
                     if index else "not merged.\n"),
        "## Videos\n",
        _md_table(videos),
        "## Failures\n",
        _md_table([{"video": f["video"], "chunk": "-" if f["chunk"] is None else f["chunk"],
                    "reason": f["error"]} for f in summary["failures"]]),
        "## Summary (JSON)\n",
        _json_block(summary),
    ]
    return "\n".join(lines)


def publish_reprocess(summary: dict[str, Any], videos: list[dict[str, Any]]) -> None:
    """Table: one row per video plus a total row. Markdown: totals, videos, failures, JSON."""
    chunks = summary["chunks"]
    total = {
        "video": "(all)", "chunks": chunks["done"] + chunks["skipped"] + chunks["failed"],
        "done": chunks["done"], "skipped": chunks["skipped"], "failed": chunks["failed"],
        "faces": summary["faces"], "faces_in_store": summary["faces_in_store"],
        "video_seconds": summary["video_seconds"],
        "status": "ok" if summary["ok"] else "failed",
        "error": f"{len(summary['failures'])} failure(s)" if summary["failures"] else "",
    }
    create_table_artifact(
        key=REPROCESS_KEYS[0],
        table=[*videos, total],
        description=f"faceid-jobs reprocess: {summary['videos']} videos, {chunks['done']} chunks done, "
                    f"{chunks['skipped']} skipped, {chunks['failed']} failed, "
                    f"{summary['video_seconds_per_second']} video s / s",
    )
    create_markdown_artifact(
        key=REPROCESS_KEYS[1],
        markdown=reprocess_markdown(summary, videos),
        description="faceid-jobs reprocess report",
    )


# ---------------------------------------------------------------- rebuild-index


def index_markdown(result: dict[str, Any]) -> str:
    index = result.get("index") or {}
    what = f"version {index.get('version')} published" if result["published"] else \
        f"version {index.get('version')} is current, nothing published"
    return "\n".join([
        f"# faceid-jobs index: {what}\n",
        f"Flow run `{result.get('flow_run_id')}`, store `{result['store']}`.\n",
        _md_table([index]) if index else "_no index_\n",
        "## Result (JSON)\n",
        _json_block(result),
    ])


def publish_index(result: dict[str, Any]) -> None:
    index = result.get("index") or {}
    create_table_artifact(key=INDEX_KEYS[0], table=[{"store": result["store"], **index}],
                          description=f"faceid-jobs index: version {index.get('version')}, "
                                      f"{index.get('vectors')} vectors")
    create_markdown_artifact(key=INDEX_KEYS[1], markdown=index_markdown(result),
                             description="faceid-jobs index report")


# ---------------------------------------------------------------- search-photos


def search_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hit (or one empty row for a photo without hits)."""
    rows = []
    for r in results:
        photo = r["query"]["photo"]
        if not r["hits"]:
            rows.append({"photo": photo, "rank": None, "similarity": None, "video": None,
                         "timestamp_s": None, "frame": None})
        for rank, hit in enumerate(r["hits"], 1):
            rows.append({"photo": photo, "rank": rank, "similarity": hit["similarity"],
                         "video": hit["video"], "timestamp_s": hit["timestamp_s"], "frame": hit["frame"]})
    return rows


def search_markdown(result: dict[str, Any]) -> str:
    state = "failed" if result["failures"] else "completed"
    per_photo = [{"photo": r["query"]["photo"], "hits": len(r["hits"]),
                  "best": r["hits"][0]["similarity"] if r["hits"] else "-",
                  "faces in photo": r["query"]["faces_in_photo"]} for r in result["results"]]
    return "\n".join([
        f"# faceid-jobs search: {state}\n",
        f"Flow run `{result.get('flow_run_id')}`; results in `{result['store']}` under "
        f"`{result['keys']['json']}` and `{result['keys']['parquet']}`.\n",
        "## Photos\n",
        _md_table(per_photo),
        "## Failures\n",
        _md_table([{"photo": f["photo"], "reason": f["error"]} for f in result["failures"]]),
        "## Hits\n",
        _md_table(search_rows(result["results"])),
    ])


def publish_search(result: dict[str, Any]) -> None:
    create_table_artifact(
        key=SEARCH_KEYS[0], table=search_rows(result["results"]),
        description=f"faceid-jobs search: {len(result['results'])} photos, "
                    f"{len(result['failures'])} failed",
    )
    create_markdown_artifact(key=SEARCH_KEYS[1], markdown=search_markdown(result),
                             description="faceid-jobs search report")


# ---------------------------------------------------------------- people


def people_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per listed person of a `people_view` (ids, names and counts; no faces or boxes)."""
    return [{"id": p["id"], "name": p["name"] or "", "faces": p["faces"], "appearances": p["appearances_count"],
             "videos": p["videos"], "first_seen": f"{p['first_seen']['video']} @ {p['first_seen']['timestamp_s']} s",
             "last_seen": f"{p['last_seen']['video']} @ {p['last_seen']['timestamp_s']} s"}
            for p in view["people"]]


def publish_people(view: dict[str, Any]) -> None:
    """Table of the top people (`faceid-people-summary`)."""
    create_table_artifact(key=PEOPLE_KEY, table=people_rows(view),
                          description=f"faceid-jobs people: version {view['version']}, "
                                      f"{len(view['people'])} people listed")
