"""`people-discovery`: add the stored faces' new tracks to the people, and publish the top people.

`reprocess-archive` runs the same step (`discover-people`, after `label-faces`)
for the footage it processed; this flow runs it alone, e.g. after footage was
processed elsewhere or with `rebuild` after changing `people_threshold`. Both
publish the table artifact `faceid-people-summary` (the top people: ids,
names, counts, first and last seen; never faces or vectors).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from faceid_jobs.config import Settings
from faceid_jobs.flows.artifacts import publish_people
from faceid_jobs.flows.common import (
    default_task_runner,
    embedder_id,
    resolve_settings,
    run_logger,
    store_task,
    workspace_for,
)

__all__ = ["TOP_PEOPLE", "discover_people_task", "people_discovery", "publish_top_people"]

TOP_PEOPLE = 20


@store_task("discover-people")
def discover_people_task(settings: Settings, embedder: str, rebuild: bool = False) -> dict[str, Any]:
    from faceid_jobs.identity.discover import cluster_params, discover_with

    return discover_with(workspace_for(settings), embedder, cluster_params(settings), rebuild=rebuild).to_json()


def publish_top_people(settings: Settings, limit: int = TOP_PEOPLE) -> dict[str, Any]:
    """Publish the `faceid-people-summary` table of the current people (inside a flow run); returns the view."""
    from faceid_jobs.identity.people_edit import people_view

    view = people_view(workspace_for(settings), min_faces=settings.people_min_faces, limit=limit,
                       gap_s=settings.appearance_gap_s)
    publish_people(view)
    return view


@flow(name="people-discovery", task_runner=default_task_runner())
def people_discovery(
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Cluster the stored faces' new tracks into people (no video is decoded) and publish the top people.

    Args:
        store, config, settings: where the settings come from (`flows.common.resolve_settings`).
        rebuild: cluster every stored face again (ids, names, merges and ignores are kept).

    Returns:
        ``{"flow_run_id", "store", "people": PeopleResult.to_json(), "listed": people listed}``.
    """
    from faceid_jobs.identity.intent import refuse_pending

    cfg = resolve_settings(config, settings, store)
    # A forget left half done: its person's faces may still be in records the discovery would read.
    refuse_pending(workspace_for(cfg).store, what="the people-discovery flow")
    result = discover_people_task(cfg, embedder_id(cfg), rebuild)
    view = publish_top_people(cfg)
    run_logger().info("people version %d: %d people, %d new tracks, %.1f s", result["version"],
                          result["people"], result["new_nodes"], result["seconds"])
    return {"flow_run_id": str(flow_run.id), "store": cfg.store, "people": result, "listed": len(view["people"])}
