"""`relabel`: label every stored face with the current gallery, from stored embeddings (no video decoding).

Triggered, like `rebuild-index`, by the ``faceid.enrollment.changed`` event
(deployment ``relabel/on-enrollment``), and run as the `label-faces` task at
the end of `reprocess-archive` for the new record files. Labelling is
idempotent: record files already labelled for the current gallery version
are skipped unless ``all_files`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.runtime import flow_run

from faceid_jobs.config import Settings
from faceid_jobs.flows.common import (
    default_task_runner,
    embedder_id,
    resolve_settings,
    run_logger,
    store_task,
    workspace_for,
)

if TYPE_CHECKING:
    from faceid_jobs.identity.labels import RelabelResult

__all__ = ["label_faces_task", "relabel"]


@store_task("label-faces")
def label_faces_task(settings: Settings, embedder: str, only_missing: bool = True) -> RelabelResult:
    from faceid_jobs.identity.labels import relabel as relabel_store

    return relabel_store(workspace_for(settings), embedder, settings.identity_threshold, only_missing=only_missing)


@flow(name="relabel", task_runner=default_task_runner())
def relabel(
    store: str | None = None,
    config: str | None = None,
    settings: dict[str, Any] | None = None,
    all_files: bool = False,
) -> dict[str, Any]:
    """Label the stored faces of every catalogued video with the current gallery.

    Args:
        store, config, settings: where the settings come from (`flows.common.resolve_settings`).
        all_files: relabel files already labelled for the current gallery
            version too (after changing `identity_threshold`).

    Returns:
        ``{"flow_run_id", "store", "labels": RelabelResult.to_json()}``.
    """
    log = run_logger()
    cfg = resolve_settings(config, settings, store)
    result = label_faces_task(cfg, embedder_id(cfg), not all_files)
    log.info("gallery version %d: %d record files labelled (%d already were), %d of %d faces labelled, "
             "%.0f faces/s", result.gallery_version, result.files, result.files_skipped, result.labelled_faces,
             result.faces, result.faces_per_second)
    return {"flow_run_id": str(flow_run.id), "store": cfg.store, "labels": result.to_json()}
