"""`search_photo`: a photo in, where that person appears out (I/O at the edge: reads the
photo, opens the store, its keys and the newest index version, loads the models)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from faceid_jobs.config import Settings, load_settings
from faceid_jobs.errors import IndexMissingError

if TYPE_CHECKING:
    import numpy as np

    from faceid_jobs.models import ModelSet
    from faceid_jobs.search.query import SearchResult
    from faceid_jobs.storage import Store

__all__ = ["search_photo"]


def search_photo(
    photo: str | Path,
    settings: Settings | None = None,
    *,
    image: np.ndarray | None = None,
    face_index: int | None = None,
    index_version: int | None = None,
    require_live: bool = False,
    models: ModelSet | None = None,
    store: Store | None = None,
) -> SearchResult:
    """Search the store's index for the face in a photo.

    Args:
        photo: the photo's path (its name is used in the result; with `image`
            given, only the name).
        settings: store, weights, thresholds (default: `load_settings()`:
            `FACEID_JOBS_*` environment and the config file).
        image: the photo already decoded, (h, w, 3) uint8 BGR.
        face_index: which face of the photo, 0 = largest (default: the largest).
        index_version: search this index version (default: the newest).
        require_live: refuse a spoofed query face (`SpoofError`) before the
            index is opened; loads the liveness models.
        models: a loaded model set to reuse (with liveness models if
            `require_live`).
        store: the store of `settings.store`, already open (default: opened here).

    Returns:
        The query face and its hits (appearances for a track index).

    Raises:
        PhotoError, NoFaceError, ImageTooLargeError: the photo.
        IndexMissingError: the store has no index yet.
        IntegrityError: a shard or manifest failed its checks, or the wrong key.
        PendingForgetError: a forget was interrupted (`faceid-jobs forget --resume` finishes it).

    Example:
        >>> import faceid_jobs
        >>> result = faceid_jobs.search_photo("ross.jpg")          # doctest: +SKIP
        >>> [(h.video, h.timestamp_s, h.similarity) for h in result.hits]  # doctest: +SKIP
    """
    from faceid_jobs.identity.intent import refuse_pending
    from faceid_jobs.images import read_photo
    from faceid_jobs.index import list_versions, open_index
    from faceid_jobs.models import load_models
    from faceid_jobs.photo import check_live
    from faceid_jobs.search.query import make_query, search_index
    from faceid_jobs.storage import open_store
    from faceid_jobs.workspace import open_workspace

    settings = settings or load_settings()
    if store is None:
        store = open_store(settings.store)
    # Before any model loads: a forget left half done may still have its person in the index.
    refuse_pending(store, "search")
    if image is None:
        image = read_photo(photo, settings.max_image_pixels)
    # Liveness models only when the query face itself must be checked; hits carry stored scores.
    models = models or load_models(settings, liveness=require_live)
    query = make_query(image, str(photo), models, face_index)
    if require_live:
        check_live(query.face, settings.live_threshold)
    if index_version is None and not list_versions(store):
        raise IndexMissingError(f"{store.uri}: no index yet (run `faceid-jobs process` on some footage first)")
    ws = open_workspace(settings, store=store)
    index = open_index(ws.store, ws.keys, index_version, cache_dir=settings.shard_cache or None,
                       nprobe=settings.nprobe)
    return search_index(query, index, top_k=settings.top_k, threshold=settings.threshold,
                        min_liveness=settings.min_liveness, appearance_gap_s=settings.appearance_gap_s)
