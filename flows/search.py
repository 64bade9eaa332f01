"""`search-photos`: a batch of query photos against the store's index.

One `embed-photo` task per photo (detect, pick the largest face, align,
embed), then one `search-index` task that loads the index once and matches
every query. Results go to the store, sealed, under ``queries/<flow run id>/``
(``results.json``: every query with its hits; ``hits.parquet``: one row per
hit; `faceid_jobs.search.stored`) and are returned. The run ends Failed if any photo could not be
searched (unreadable, no face), after searching the others.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed

from faceid_jobs.config import Settings
from faceid_jobs.flows.artifacts import publish_search
from faceid_jobs.flows.common import (
    default_task_runner,
    describe_failure,
    models_for,
    resolve_settings,
    run_logger,
    store_task,
    workspace_for,
)

if TYPE_CHECKING:
    from faceid_jobs.search.query import Query

__all__ = ["embed_photo_task", "search_index_task", "search_photos", "write_results_task"]


def _photo_run_name() -> str:
    from pathlib import Path

    from prefect.runtime import task_run

    return f"embed-photo-{Path(str(task_run.parameters['photo'])).name}"


@store_task("embed-photo", delay_s=2, task_run_name=_photo_run_name)
def embed_photo_task(photo: str, settings: Settings, face_index: int | None = None) -> Query:
    from faceid_jobs.images import read_photo
    from faceid_jobs.search.query import make_query

    # Search needs no liveness models: a set without them loads faster.
    with models_for(dataclasses.replace(settings, liveness=())) as models:
        return make_query(read_photo(photo, settings.max_image_pixels), photo, models, face_index)


@store_task("search-index", delay_s=2)
def search_index_task(queries: list[Query], settings: Settings,
                      index_version: int | None = None) -> list[dict[str, Any]]:
    """Open the index version once (shards fetched and decrypted in memory), match every query."""
    from faceid_jobs.errors import IndexMissingError
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.index import list_versions, open_index
    from faceid_jobs.search.query import search_index

    ws = workspace_for(settings)
    refuse_pending(ws.store, what="the search-photos flow")  # not retried: only the forget's finisher cures it
    if index_version is None and not list_versions(ws.store):
        raise IndexMissingError(
            f"{ws.store.uri}: no index yet (run `faceid-jobs process` on some footage first)")
    index = open_index(ws.store, ws.keys, index_version, cache_dir=settings.shard_cache or None,
                       nprobe=settings.nprobe)
    return [search_index(q, index, top_k=settings.top_k, threshold=settings.threshold).to_json()
            for q in queries]


@store_task("write-results", delay_s=2)
def write_results_task(settings: Settings, run_id: str, document: dict[str, Any]) -> dict[str, str]:
    """Seal and store the results (`faceid_jobs.search.stored`: JSON document and Parquet hits)."""
    from faceid_jobs.search.stored import write_results

    return write_results(workspace_for(settings), run_id, document)


@flow(name="search-photos", task_runner=default_task_runner())
def search_photos(
    photos: list[str],
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    face_index: int | None = None,
    index_version: int | None = None,
) -> dict[str, Any]:
    """Search the index for the face in each photo; store and return the hits.

    Args:
        photos: photo files, as seen by the workers.
        store, config, settings: where the settings come from (`flows.common.resolve_settings`).
        top_k: most hits per photo (default: the `top_k` setting).
        threshold: lowest cosine similarity reported (default: the `threshold` setting).
        face_index: which face of each photo, 0 = largest (default: the largest).
        index_version: search this index version (default: the newest).

    Returns:
        ``{"flow_run_id", "store", "keys": {"json", "parquet"}, "results": [SearchResult.to_json()…],
        "failures": [{"photo", "error"}…]}``.
    """
    log = run_logger()
    cfg = resolve_settings(config, {**(settings or {}), "top_k": top_k, "threshold": threshold}, store)
    futures = {photo: embed_photo_task.submit(photo, cfg, face_index) for photo in photos}
    queries, failures = [], []
    for photo, future in futures.items():
        future.wait()
        if future.state.is_completed():
            queries.append(future.result())
        else:
            value = future.state.result(raise_on_failure=False)
            error = describe_failure(value if isinstance(value, BaseException) else None, photo)
            failures.append({"photo": photo, "error": error})
    results = search_index_task(queries, cfg, index_version) if queries else []
    run_id = str(flow_run.id)
    document = {"flow_run_id": run_id, "store": cfg.store, "top_k": cfg.top_k,
                "threshold": cfg.threshold, "results": results, "failures": failures}
    keys = write_results_task(cfg, run_id, document)
    result = document | {"keys": keys}
    publish_search(result)
    log.info("%d photos searched, %d hits, %d failed; results in %s/%s",
             len(results), sum(len(r["hits"]) for r in results), len(failures), cfg.store, keys["json"])
    if failures:
        return Failed(message=f"{len(failures)} of {len(photos)} photo(s) could not be searched; "
                              f"first: {failures[0]['error']}", data=result)
    return result
