"""`rebuild-index`: merge the current records of every catalogued video into a new index version.

Also home of the `merge-index` task that `reprocess-archive` ends with. The
merge is incremental and idempotent (`faceid_jobs.index.merge_index`): record
files not yet in a shard become new shards, and when nothing is pending,
stale or due for compaction no version is published, so running it again
changes nothing in the store.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.runtime import flow_run

from faceid_jobs.config import Settings
from faceid_jobs.flows.artifacts import publish_index
from faceid_jobs.flows.common import (
    default_task_runner,
    embedder_id,
    resolve_settings,
    run_logger,
    store_task,
    workspace_for,
)

if TYPE_CHECKING:
    from faceid_jobs.index import MergeResult

__all__ = ["merge_index_task", "rebuild_index"]


# A merge that loses a commit race retries inside `merge_index`; these retries
# only cover I/O errors (StoreError, OSError) around it.
@store_task("merge-index")
def merge_index_task(settings: Settings, embedder: str) -> MergeResult:
    from faceid_jobs.pipeline.steps import merge

    return merge(settings, embedder, ws=workspace_for(settings))


@flow(name="rebuild-index", task_runner=default_task_runner())
def rebuild_index(
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bring the store's face index up to date with its catalog.

    Args:
        store, config, settings: where the settings come from (`flows.common.resolve_settings`).

    Returns:
        ``{"flow_run_id", "store", "published", "index": MergeResult as a dict}``.
    """
    log = run_logger()
    cfg = resolve_settings(config, settings, store)
    result = merge_index_task(cfg, embedder_id(cfg))
    if result.published:
        log.info("index version %s published: %d vectors (%d shards added, %d kept)",
                 result.version, result.vectors, result.shards_added, result.shards_kept)
    else:
        log.info("index version %s is current; nothing published", result.version)
    summary = {
        "flow_run_id": str(flow_run.id),
        "store": cfg.store,
        "published": result.published,
        "index": dataclasses.asdict(result),
    }
    publish_index(summary)
    return summary
