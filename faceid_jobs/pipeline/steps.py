"""The steps of a `process` run as plain, picklable functions, and the per-process
caches they share (I/O).

Every engine runs these same functions: a thread pool in this process, Dask
worker processes, or Prefect tasks (`faceid_jobs.flows.reprocess` wraps them).
Because they are module-level functions of the library, cloudpickle sends them
to a Dask worker by reference and the worker imports them, whatever wraps
them. Models, workspaces and remote-video copies are cached per process, so a
worker loads a model set once per concurrently running chunk, not per chunk.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceid_jobs.config import Settings

if TYPE_CHECKING:
    from faceid_jobs.identity.discover import PeopleResult
    from faceid_jobs.identity.labels import RelabelResult
    from faceid_jobs.index import MergeResult
    from faceid_jobs.models import ModelSet
    from faceid_jobs.pipeline.chunk import ChunkJob, ChunkResult
    from faceid_jobs.pipeline.plan import VideoPlan
    from faceid_jobs.pipeline.sources import SkippedFile
    from faceid_jobs.storage.catalog import VideoEntry
    from faceid_jobs.video.source import SourceObject
    from faceid_jobs.workspace import Workspace

__all__ = [
    "Discovery",
    "check_sources",
    "cores",
    "discover",
    "finish",
    "fit_threads",
    "label",
    "merge",
    "model_ids",
    "model_key",
    "models_for",
    "note_copies",
    "plan",
    "process_chunk",
    "video_file",
    "workspace_for",
]


# ---------------------------------------------------------------- the steps


@dataclass(frozen=True)
class Discovery:
    """The videos a run will process (each with what its listing said), the sources that gave
    none and the files the walk left out."""

    videos: tuple[str, ...]
    problems: tuple[tuple[str, str], ...]
    created_key: str | None
    sources: tuple[SourceObject, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()


def discover(sources: list[str], settings: Settings, *, ws: Workspace | None = None) -> Discovery:
    """Open the store with its keys (creating the key file on first use), check it is
    writable, then expand the sources into video URIs."""
    from faceid_jobs.pipeline.sources import discover_sources

    ws = ws or workspace_for(settings, create_key=True)
    ws.store.check()
    skipped: list[SkippedFile] = []
    found, problems = discover_sources(sources, settings.exclude, skipped)
    return Discovery(tuple(o.uri for o in found), tuple(problems), ws.created_key, tuple(found), tuple(skipped))


def check_sources(sources: tuple[SourceObject, ...], settings: Settings, analysis_id: str, *,
                  ws: Workspace | None = None) -> tuple[tuple[str, VideoEntry], ...]:
    """The videos that need not be read: seen unchanged (the sources index has a mark for
    their listed identity) and complete for `analysis_id` in the catalog.

    One listing of `sources/`, then one catalog read per video with a mark;
    not a byte of a video is read. Returns (uri, catalog entry) per such video.
    An entry that still names the video by the relative path an older run
    stored is renamed to its absolute path (`adopt_absolute`).
    """
    from faceid_jobs.pipeline.catalog import adopt_absolute
    from faceid_jobs.storage.base import map_reads
    from faceid_jobs.storage.catalog import load_entry
    from faceid_jobs.storage.sources import list_marks
    from faceid_jobs.video.source import uri_hash

    ws = ws or workspace_for(settings)
    marks = list_marks(ws.store, ws.keys)
    if not marks:
        return ()
    candidates = []
    for source in sources:
        fingerprint = marks.get((uri_hash(source.location), source.identity_hash(settings.fingerprint)))
        if fingerprint is not None and source.size >= 0:
            candidates.append((source.uri, fingerprint))

    def complete(item: tuple[str, str]) -> tuple[str, VideoEntry] | None:
        entry = load_entry(ws.store, item[1], ws.keys)
        if (entry is None or entry.analysis_id != analysis_id or entry.failed_chunks
                or entry.faces is None):
            return None
        return item[0], adopt_absolute(ws.store, entry, item[0], ws.keys)

    return tuple(found for found in map_reads(ws.store, complete, candidates) if found is not None)


def model_ids(settings: Settings, *, models: ModelSet | None = None) -> dict[str, str]:
    """The ids of the models the run's chunks will load (they name the analysis), from the
    files alone: the sessions load in the chunks, with threads fitted to how many run at once."""
    if models is not None:
        return dict(models.ids)
    from faceid_jobs.models import model_ids as ids_of

    return ids_of(settings)


def plan(uri: str, settings: Settings, analysis_id: str, source: SourceObject | None = None) -> VideoPlan:
    """Fingerprint and probe one video and cut it into chunk jobs.

    A remote video (`source` from the listing) is read in ranges: the
    fingerprint's samples and the container header, never the whole object.
    """
    from faceid_jobs.pipeline.plan import plan_video
    from faceid_jobs.video import local_path
    from faceid_jobs.video.source import remote_video

    _register_readers()
    if source is not None and source.remote:
        return plan_video(uri, remote_video(source), settings, analysis_id, source)
    with local_path(uri) as path:
        return plan_video(uri, path, settings, analysis_id, source)


def _register_readers() -> None:
    """Teach this process the s3:// readers (`pipeline/sources.py` registers them when imported):
    a Dask worker that plans or analyses a video may never have run `discover`."""
    import faceid_jobs.pipeline.sources  # noqa: F401


def process_chunk(job: ChunkJob, settings: Settings, *, ws: Workspace | None = None,
                  models: ModelSet | None = None) -> ChunkResult:
    """Analyse and store one chunk (skipped when its records exist).

    A remote video with its listing (`job.source`) is read in ranges, only
    the chunk's part of it; one without is downloaded once per process.
    """
    from faceid_jobs.pipeline.chunk import run_chunk

    _register_readers()
    if job.source is not None and job.source.remote:
        with _models(settings, models) as loaded:
            return run_chunk(job, loaded, ws or workspace_for(settings), settings)
    with video_file(job.video_uri, job.path) as path, _models(settings, models) as loaded:
        return run_chunk(replace(job, path=str(path)), loaded, ws or workspace_for(settings), settings)


def finish(plan: VideoPlan, settings: Settings, embedder_id: str, failed: list[int], *,
           ws: Workspace | None = None) -> tuple[bool, int]:
    """Catalog the video's analysis once all its chunks were attempted;
    (entry changed?, face rows stored for the video).

    A video complete for its analysis is marked in the sources index with
    the identity its listing gave, so the next run skips it unread while it
    stays unchanged.
    """
    from faceid_jobs.pipeline.catalog import count_stored_faces, finish_video
    from faceid_jobs.storage import load_entry

    ws = ws or workspace_for(settings)
    before = load_entry(ws.store, plan.fingerprint, ws.keys)
    faces = count_stored_faces(ws, plan)
    entry = finish_video(ws.store, plan, embedder_id, failed, ws.keys, faces=faces)
    if not entry.failed_chunks:
        _remember_source(ws, plan, settings)
    return entry != before, faces


def _remember_source(ws: Workspace, plan: VideoPlan, settings: Settings) -> None:
    """Mark a video whose content is complete in the sources index, so the next run skips it unread
    (only a video whose listing was read: `size` -1 means it could not be stat'ed)."""
    from faceid_jobs.storage.sources import record_source

    if plan.source is not None and plan.source.size >= 0:
        record_source(ws.store, ws.keys, plan.source, plan.fingerprint, settings.fingerprint)


def note_copies(plans: list[VideoPlan], settings: Settings, analysis_id: str, *,
                ws: Workspace | None = None) -> None:
    """Record each planned video as another name of content this run already catalogued
    under a first name (a renamed copy): listed in that entry, never analysed twice.

    A copy whose content is complete for `analysis_id` is marked in the sources
    index, so the next run skips it unread.
    """
    from faceid_jobs.pipeline.catalog import note_copy

    ws = ws or workspace_for(settings)
    for plan in plans:
        entry = note_copy(ws.store, plan, ws.keys)
        if entry is not None and entry.analysis_id == analysis_id and not entry.failed_chunks:
            _remember_source(ws, plan, settings)


def merge(settings: Settings, embedder_id: str, *, ws: Workspace | None = None, rehash: bool = False) -> MergeResult:
    """Merge pending records into a new index version the way the settings ask.

    Incremental: with no new record file and no changed catalog entry it
    publishes nothing, so a re-run leaves the index as it is. `rehash`:
    also re-index covered record files whose hash changed (`merge_index`).
    """
    from faceid_jobs.index import index_params, merge_index
    from faceid_jobs.search.appearances import settings_selector

    ws = ws or workspace_for(settings)
    return merge_index(ws.store, ws.keys, embedder_id, cipher=ws.cipher, params=index_params(settings),
                       select=settings_selector(settings), index_by=settings.index_by, rehash=rehash)


def label(settings: Settings, embedder_id: str, *, ws: Workspace | None = None,
          only_missing: bool = True) -> RelabelResult | None:
    """Label the record files not yet labelled for the current gallery version;
    None when the store has no gallery."""
    from faceid_jobs.identity.gallery import list_gallery_versions
    from faceid_jobs.identity.labels import relabel

    ws = ws or workspace_for(settings)
    if not list_gallery_versions(ws.store):
        return None
    return relabel(ws, embedder_id, settings.identity_threshold, only_missing=only_missing)


def discover_people(settings: Settings, embedder_id: str, *, ws: Workspace | None = None) -> PeopleResult | None:
    """Add the new footage's tracks to the people (incremental `identity.discover`); None when
    `people_discover` is off or nothing changed (no people version published)."""
    from faceid_jobs.identity.discover import cluster_params, discover_with

    if not settings.people_discover:
        return None
    ws = ws or workspace_for(settings)
    result = discover_with(ws, embedder_id, cluster_params(settings))
    return result if result.published else None


# ---------------------------------------------------------------- threads


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def fit_threads(settings: Settings, concurrency: int) -> Settings:
    """Share this machine's cores between `concurrency` chunks running side by side.

    With ``threads = 0`` every onnxruntime session takes one thread per core;
    with one chunk per core running at once that is cores² threads fighting
    over the cores. So, unless the user set `threads`, each concurrent chunk
    gets cores // concurrency. Threads do not enter the analysis id, so stored
    records are unaffected. `concurrency` 0 (unknown: a remote cluster) keeps
    the setting.
    """
    if settings.threads or concurrency <= 0:
        return settings
    return settings.replace(threads=max(1, cores() // concurrency))


# ---------------------------------------------------------------- per-process caches


class _ModelPool:
    """Loaded model sets of this process, keyed by the settings that shape them.

    A step checks a set out for the length of one chunk and returns it, so a
    process loads as many sets as it runs chunks at once (one per Dask worker
    thread, one per busy thread of a pool) and never one per chunk. Sets are
    not shared between concurrent chunks because the model wrappers keep
    per-instance input buffers (`SCRFD._canvas`/`_blob`, `ArcFace._single`).
    """

    def __init__(self, max_keys: int = 2) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Any, ...], list[ModelSet]] = {}
        self._loaded: dict[tuple[Any, ...], int] = {}
        self._max_keys = max_keys

    @contextlib.contextmanager
    def checkout(self, settings: Settings) -> Iterator[ModelSet]:
        key = model_key(settings)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            models = idle.pop() if idle else None
            self._forget_old(key)
        if models is None:
            from faceid_jobs.models import load_models

            models = load_models(settings)
            with self._lock:
                self._loaded[key] = self._loaded.get(key, 0) + 1
        try:
            yield models
        finally:
            with self._lock:
                self._idle.setdefault(key, []).append(models)

    def loaded(self) -> dict[tuple[Any, ...], int]:
        """How many sets were loaded per key (for tests and logs)."""
        with self._lock:
            return dict(self._loaded)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()
            self._loaded.clear()

    def _forget_old(self, keep: tuple[Any, ...]) -> None:
        # A long-lived worker (serve, a Dask cluster) that sees new weights or
        # settings drops the idle sets of the oldest keys.
        while len(self._idle) > self._max_keys:
            oldest = next(k for k in self._idle if k != keep)
            del self._idle[oldest]


MODEL_POOL = _ModelPool()


def models_for(settings: Settings) -> contextlib.AbstractContextManager[ModelSet]:
    """`with models_for(settings) as models:` a loaded model set, reused across steps."""
    return MODEL_POOL.checkout(settings)


@contextlib.contextmanager
def _models(settings: Settings, given: ModelSet | None) -> Iterator[ModelSet]:
    if given is not None:
        yield given
    else:
        with models_for(settings) as models:
            yield models


def model_key(settings: Settings) -> tuple[Any, ...]:
    """The settings that change what `load_models` returns, plus the weight files' identity.

    File size and mtime enter the key, so a long-lived worker loads new
    weights dropped under the same name (and their new model ids change the
    analysis id, which reprocesses).
    """
    folder = settings.resolved_weights_dir().expanduser()
    files = []
    for name in (*settings.detector, *settings.embedder, *settings.liveness):
        path = Path(name).expanduser()
        path = path if path.is_absolute() else folder / path
        try:
            st = path.stat()
            files.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((str(path), None, None))
    return (
        str(folder), tuple(settings.detector), tuple(settings.embedder), tuple(settings.liveness),
        settings.device, settings.threads, settings.det_size, settings.det_shape, settings.det_threshold,
        settings.nms_threshold, settings.min_face_px, settings.precision, settings.precision_dir,
        settings.io_binding, tuple(files),
    )


_WS_LOCK = threading.Lock()
_WORKSPACES: dict[tuple[Any, ...], Workspace] = {}


def workspace_for(settings: Settings, *, create_key: bool = False) -> Workspace:
    """The store with its keys, opened once per process and configuration.

    Args:
        settings: uses store, kms_key_id and key_file (and `FACEID_JOBS_KEY`).
        create_key: create the key file if there is none (the run does this
            once, before any step writes; workers never do).
    """
    from faceid_jobs.workspace import KEY_ENV, open_workspace

    key_file = settings.resolved_key_file()
    try:
        key_stat = key_file.stat().st_mtime_ns
    except OSError:
        key_stat = None
    env_key = hashlib.sha256(os.environ.get(KEY_ENV, "").encode()).hexdigest()
    cache_key = (settings.store, settings.kms_key_id, str(key_file), key_stat, env_key)
    with _WS_LOCK:
        ws = _WORKSPACES.get(cache_key)
        if ws is None or (create_key and key_stat is None):
            ws = open_workspace(settings, create_key=create_key)
            _WORKSPACES.clear()  # one configuration at a time per process is the norm
            _WORKSPACES[cache_key] = ws
    return ws


class _VideoCache:
    """Local copies of remote videos (s3://…), shared by the chunk steps of a process.

    A video is downloaded once per process rather than once per chunk; the
    `keep` most recently used copies stay, older idle ones are deleted, and
    all are deleted at exit.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._files: dict[str, tuple[contextlib.ExitStack, Path]] = {}
        self._users: dict[str, int] = {}
        self._order: list[str] = []
        atexit.register(self.clear)

    @contextlib.contextmanager
    def path(self, uri: str, path: str) -> Iterator[Path]:
        """A local file for `uri`: `path` itself when it exists here, else a cached download."""
        if "://" not in uri or uri.startswith("file://"):
            yield Path(path)
            return
        # A remote video's planning copy was a temp file, deleted since (its
        # name may even belong to another download now): never reuse `path`.
        with self._lock:
            self._users[uri] = self._users.get(uri, 0) + 1
        try:
            yield self._fetch(uri)
        finally:
            with self._lock:
                self._users[uri] -= 1
                self._evict()

    def _fetch(self, uri: str) -> Path:
        from faceid_jobs.video import local_path

        with self._lock:
            if uri in self._files:
                self._order.remove(uri)
                self._order.append(uri)
                return self._files[uri][1]
        stack = contextlib.ExitStack()
        local = stack.enter_context(local_path(uri))
        with self._lock:
            if uri in self._files:  # another thread fetched it meanwhile
                stack.close()
                return self._files[uri][1]
            self._files[uri] = (stack, local)
            self._order.append(uri)
        return local

    def _evict(self) -> None:
        idle = [u for u in self._order if not self._users.get(u)]
        while len(self._order) > self.keep and idle:
            uri = idle.pop(0)
            self._order.remove(uri)
            self._files.pop(uri)[0].close()

    def clear(self) -> None:
        with self._lock:
            for stack, _ in self._files.values():
                with contextlib.suppress(Exception):
                    stack.close()
            self._files.clear()
            self._order.clear()


_VIDEOS = _VideoCache()


def video_file(uri: str, path: str) -> contextlib.AbstractContextManager[Path]:
    """`with video_file(job.video_uri, job.path) as local:` a local file of a planned video.

    Local sources are used in place; remote ones (whose planning copy is gone
    by the time a chunk step runs, maybe on another machine) are downloaded
    once per process and shared by its chunk steps.
    """
    return _VIDEOS.path(uri, path)
