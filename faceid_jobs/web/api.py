"""HTTP API for search and liveness (and enrollment, when present): a FastAPI app (I/O: serves requests).

`create_app` loads the models and opens the store once; requests share
them. The model wrappers reuse internal buffers and are not thread-safe, so
each request borrows one of `api_model_sets` loaded model sets for the time
of its model calls (FastAPI runs these sync endpoints in a thread pool). The
index is opened once and swapped for a newer version when one is published
(checked at most every `api_index_refresh_s`; requests keep using the old
one while the new one loads). While a forget is pending (one interrupted
before it finished, `identity/intent.py`; looked for as often), searches
and people answer 503, code ``forget_pending``, naming
``faceid-jobs forget --resume``.

Every endpoint but ``GET /health`` (and the docs at ``/docs``) needs
``Authorization: Bearer <token>``; the token is checked before the request
body is read, compared in constant time and never logged. Request bodies
above `api_max_upload_mb` are refused while they stream in. Errors are JSON
``{"error": "<one line>", "code": "<kind>"}`` with a 4xx status for a
client's mistake: a library error answers its class's ``http_status`` and
``api_code`` (`faceid_jobs.errors`).

Photos go through the same photo path as the CLI (`faceid_jobs.photo`), and
an enrollment through `faceid_jobs.identity.gallery.enroll`, which writes the
audit record; the Prefect event is the caller's ``on_change`` callback
(`faceid-jobs api` passes one when a Prefect server is configured), so this
module imports no flow code.

Example:
    >>> app = create_app(load_settings(), token="s3cret")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from faceid_jobs.config import Settings
from faceid_jobs.errors import ConfigError, FaceIdError, IndexMissingError, NoFaceError, PolicyError
from faceid_jobs.identity import gallery
from faceid_jobs.identity.enrollment import enrollable_face
from faceid_jobs.identity.intent import PendingForgetError, refuse_pending
from faceid_jobs.identity.matching import verify_face
from faceid_jobs.images import decode_photo
from faceid_jobs.models import ModelSet, load_models
from faceid_jobs.photo import analyse, check_live, face_of
from faceid_jobs.search.query import make_query, search_index

__all__ = ["OPEN_PATHS", "create_app"]

log = logging.getLogger(__name__)

# Served without a token: liveness probe and the API's own documentation.
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


class ApiError(Exception):
    """An error answered as JSON with its status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split()), "code": code}, status_code=status,
                        headers=headers)


# ---------------------------------------------------------------- shared state


class ModelPool:
    """Loaded model sets, each used by one request at a time."""

    def __init__(self, sets: list[ModelSet]) -> None:
        self._free: queue.Queue[ModelSet] = queue.Queue()
        for s in sets:
            self._free.put(s)
        self.first = sets[0]

    @contextlib.contextmanager
    def use(self) -> Iterator[ModelSet]:
        models = self._free.get()
        try:
            yield models
        finally:
            self._free.put(models)


class IndexHolder:
    """The newest index version, reopened when a newer one is published; refused (503) while a
    forget is pending (`identity/intent.py`), looked for as often as a newer version."""

    def __init__(self, settings: Settings) -> None:
        from faceid_jobs.storage import open_store
        from faceid_jobs.workspace import open_workspace

        self.settings = settings
        self.ws = open_workspace(settings, store=open_store(settings.store))
        self._index: Any = None
        self._pending = ""  # the refusal while an interrupted forget was found at the last look
        self._checked = float("-inf")
        self._lock = threading.Lock()

    @property
    def version(self) -> int | None:
        return None if self._index is None else self._index.info.version

    def get(self) -> Any:
        """The current `ShardedIndex`.

        Raises:
            PendingForgetError: a forget is pending (503, naming `faceid-jobs forget --resume`).
            IndexMissingError: no index was ever built.
        """
        self.refuse_pending()
        if self._index is None:
            raise IndexMissingError(f"{self.ws.store.uri}: no index yet (run `faceid-jobs process` first)")
        return self._index

    def refuse_pending(self) -> None:
        """Raise PendingForgetError while the last look found a forget pending (the people it
        changes are not to be shown either)."""
        stale = time.monotonic() - self._checked >= self.settings.api_index_refresh_s
        # Only one request looks (and loads); the others go on with what they have.
        if (self._index is None or stale) and self._lock.acquire(blocking=self._index is None):
            try:
                if self._index is None or time.monotonic() - self._checked >= self.settings.api_index_refresh_s:
                    self._refresh()
            finally:
                self._lock.release()
        if self._pending:
            raise PendingForgetError(self._pending)

    def _refresh(self) -> None:
        from faceid_jobs.index import list_versions, open_index

        try:
            refuse_pending(self.ws.store, what="the API answers again")
            self._pending = ""
        except PendingForgetError as exc:
            self._pending = str(exc)
        versions = list_versions(self.ws.store)
        self._checked = time.monotonic()
        if self._pending or not versions or versions[-1] == self.version:
            return
        self._index = open_index(self.ws.store, self.ws.keys, versions[-1],
                                 cache_dir=self.settings.shard_cache or None, nprobe=self.settings.nprobe)
        log.info("index version %d loaded (%d vectors)", versions[-1], len(self._index))


# ---------------------------------------------------------------- ASGI guard


class _Guard:
    """Checks the bearer token and the body size before the app reads the body."""

    def __init__(self, app: Any, token: str | None, max_body: int, enroll_token: str | None = None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        # /enroll takes its own token: the search token cannot change who is enrolled.
        self.enroll_token = enroll_token.encode() if enroll_token else None
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        if self.token is not None and path not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            expected = self.token
            if path.rstrip("/") == "/enroll":
                if self.enroll_token is None:
                    await self._drain(receive)
                    await _error(403, "forbidden", "enrollment over HTTP is off: the server has no "
                                 "FACEID_JOBS_API_ENROLL_TOKEN")(scope, receive, send)
                    return
                expected = self.enroll_token
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), expected):
                await self._drain(receive)
                await _error(401, "unauthorized", "missing or wrong bearer token (send Authorization: Bearer "
                             "<token>)", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body:
            await self._drain(receive)
            await self._too_large(scope, receive, send)
            return
        seen = 0
        over = False
        answered = False

        async def counting_receive() -> dict:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:  # whatever the app made of the cut-off body, the answer is 413
                answered = True
                await self._drain(receive)
                await self._too_large(scope, receive, send)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if over and not answered:
            await self._drain(receive)
            await self._too_large(scope, receive, send)

    async def _drain(self, receive: Any) -> None:
        """Read (and drop) what the client is still sending, up to a bound, so it can read our answer."""
        left = 2 * self.max_body
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _too_large(self, scope: dict, receive: Any, send: Any) -> None:
        mib = self.max_body / (1 << 20)
        await _error(413, "too_large", f"request body larger than {mib:g} MiB (api_max_upload_mb)",
                     {"Connection": "close"})(scope, receive, send)


class _TooLarge(Exception):
    pass


# ---------------------------------------------------------------- photos


class _Decoder:
    """Decodes uploads, at most `concurrent` at once (each may briefly hold max_image_pixels × 3 bytes and more)."""

    def __init__(self, limit: int, max_pixels: int, concurrent: int) -> None:
        self.limit, self.max_pixels = limit, max_pixels
        self._slots = threading.BoundedSemaphore(concurrent)

    def __call__(self, upload: UploadFile, field: str = "photo") -> tuple[np.ndarray, str]:
        name = (upload.filename or field).replace("\n", " ")[:200]
        data = upload.file.read(self.limit + 1)
        if len(data) > self.limit:
            raise ApiError(413, "too_large", f"{name}: larger than {self.limit / (1 << 20):g} MiB")
        with self._slots:
            return decode_photo(data, name, self.max_pixels), name


# ---------------------------------------------------------------- app


def _package_version() -> str:
    try:
        return version("faceid-jobs")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    auth: bool = True,
    model_sets: list[ModelSet] | None = None,
    on_change: gallery.OnChange | None = None,
) -> FastAPI:
    """The API app, with models loaded and the store opened.

    Args:
        settings: models, store and keys, search defaults, and the ``api_*``
            settings (token, upload limit, model sets, index refresh).
        token: bearer token; None uses ``settings.api_token`` (which
            ``FACEID_JOBS_API_TOKEN`` sets).
        auth: False serves every endpoint without a token (the CLI allows it
            only with ``--no-auth`` on a loopback address).
        model_sets: already loaded model sets (tests); default: load
            ``api_model_sets`` of them, liveness included.
        on_change: called with each committed gallery change (``/enroll``),
            e.g. to emit the Prefect event; see `faceid_jobs.identity.gallery.notify`.

    Raises:
        ConfigError: auth is on but there is no token.
        ModelError: a model cannot be loaded.
        FaceIdError: the store or its key cannot be opened.
    """
    token = token if token is not None else settings.api_token
    if auth and not token:
        raise ConfigError("no API token: set FACEID_JOBS_API_TOKEN (or the api_token setting)")
    if auth and settings.api_enroll_token and hmac.compare_digest(token.encode(), settings.api_enroll_token.encode()):
        # Then every search client could enroll: the separation of the two tokens would be void.
        raise ConfigError("FACEID_JOBS_API_ENROLL_TOKEN is the same as FACEID_JOBS_API_TOKEN: give enrollment "
                          "a token of its own")
    sets = model_sets or [load_models(settings, liveness=True) for _ in range(settings.api_model_sets)]
    pool = ModelPool(sets)
    holder = IndexHolder(settings)
    with contextlib.suppress(IndexMissingError, PendingForgetError):
        holder.get()  # load it now: the first search should not wait for it (a pending forget: 503 until done)
    limit = int(settings.api_max_upload_mb * (1 << 20))
    _read_photo = _Decoder(limit, settings.max_image_pixels, settings.api_max_decodes)
    # Uploads up to the body limit stay in memory (Starlette spools files above 1 MiB to the
    # temporary folder by default, where photos of faces would outlive the request on a crash).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit + 1)

    app = FastAPI(
        title="faceid-jobs",
        version=_package_version(),
        description="Find people in video archives by their faces: search, liveness, verify, enroll. "
                    "Every endpoint but /health needs `Authorization: Bearer <token>`.",
    )
    bearer = HTTPBearer(auto_error=False, description="FACEID_JOBS_API_TOKEN of the server")
    # The guard middleware enforces the token; this dependency shows it in the OpenAPI docs.
    secured = [Depends(bearer)]
    app.state.models = pool
    app.state.index = holder
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(FaceIdError)
    async def _faceid_error(_: Request, exc: FaceIdError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s", exc)
        return _error(exc.http_status, exc.api_code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http", str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error(500, "internal", f"internal error ({type(exc).__name__})")

    @app.get("/health", summary="Is the server up (no token needed)")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": _package_version(), "index_version": holder.version}

    @app.post("/search", dependencies=secured, summary="Where does the person in the photo appear",
              description="The same JSON as `faceid-jobs search --json`.")
    def search(
        photo: Annotated[UploadFile, File(description="Photo of the person to look for.")],
        top_k: Annotated[int | None, Query(ge=1, le=1000, description="Most hits [default: top_k]")] = None,
        threshold: Annotated[float | None, Query(ge=-1.0, le=1.0, description="Lowest cosine similarity "
                                                 "[default: threshold setting]")] = None,
        require_live: Annotated[bool, Query(description="Refuse (422, code spoof) a face that does not "
                                            "look live")] = False,
        face_index: Annotated[int | None, Query(ge=0, description="Which face, 0 = largest")] = None,
        min_liveness: Annotated[float | None, Query(ge=0.0, le=1.0, description="Leave out hits with a "
                                                    "lower P(live)")] = None,
    ) -> dict[str, Any]:
        image, name = _read_photo(photo)
        with pool.use() as models:
            # Like the CLI: the query's liveness is measured only when it must be checked.
            query = make_query(image, name, models, face_index, liveness=require_live)
        if require_live:
            check_live(query.face, settings.live_threshold)
        result = search_index(
            query, holder.get(),
            top_k=top_k or settings.top_k,
            threshold=settings.threshold if threshold is None else threshold,
            min_liveness=settings.min_liveness if min_liveness is None else min_liveness,
            appearance_gap_s=settings.appearance_gap_s,
        )
        return result.to_json()

    @app.post("/liveness", dependencies=secured, summary="P(live) of every face in the photo")
    def liveness(photo: Annotated[UploadFile, File(description="Photo to check.")]) -> dict[str, Any]:
        image, name = _read_photo(photo)
        if pool.first.liveness is None:
            raise ApiError(501, "not_implemented", "no liveness models are configured (the liveness setting)")
        with pool.use() as models:
            faces = analyse(image, models, embed=False, quality=False)
        if len(faces) == 0:
            raise NoFaceError(f"{name}: no face found in the photo")
        scores = faces.liveness
        return {
            "photo": name,
            "live_threshold": settings.live_threshold,
            "faces": [
                {"bbox": [round(float(v), 1) for v in faces.xyxy[i]], "det_score": round(float(faces.score[i]), 4),
                 "liveness": round(float(scores[i]), 4), "live": bool(scores[i] >= settings.live_threshold)}
                for i in range(len(faces))
            ],
        }

    def allow_no_liveness(require_live: bool) -> None:
        if not require_live and not settings.api_allow_no_liveness:
            raise PolicyError("require_live=false is not allowed on this server (api_allow_no_liveness is off)")

    @app.post("/verify", dependencies=secured, summary="Is the face in the photo this enrolled identity",
              description="The same JSON as `faceid-jobs verify --json`: match, similarity, threshold, "
                          "liveness and the photo's face. A face that does not look live is refused "
                          "(422, code spoof) unless require_live=false.")
    def verify(
        photo: Annotated[UploadFile, File(description="Photo of the person.")],
        identity: Annotated[str, Form(description="Enrolled name to compare with.")],
        require_live: Annotated[bool, Query(description="Refuse a face that does not look live")] = True,
        threshold: Annotated[float | None, Query(ge=0.0, le=1.0, description="Lowest cosine similarity for a "
                                                 "match [default: identity_threshold]")] = None,
    ) -> dict[str, Any]:
        allow_no_liveness(require_live)
        if threshold is not None and threshold < settings.identity_threshold:
            raise PolicyError(f"threshold {threshold:g} is below the server's identity_threshold "
                              f"{settings.identity_threshold:g}: a client may raise it, not lower it")
        image, name = _read_photo(photo)
        with pool.use() as models:
            face, embedding = face_of(image, name, models, liveness=require_live)
            embedder_id = models.ids["embedder"]
        if require_live:
            check_live(face, settings.live_threshold)
        enrolled = gallery.load_gallery(holder.ws, names=[identity]).get(identity)
        if enrolled.ref.embedder_id != embedder_id:
            raise ConfigError(f"{identity}: enrolled with embedder {enrolled.ref.embedder_id}, the server runs "
                              f"{embedder_id}; enrol again")
        result = verify_face(face, embedding, identity, enrolled.embeddings,
                             settings.identity_threshold if threshold is None else threshold)
        return result.to_json()

    @app.post("/enroll", dependencies=secured, summary="Enroll an identity from photos",
              description="Each photo's largest face is checked (liveness unless require_live=false, then "
                          "quality) and embedded; all pass or nothing is enrolled. Answers the new gallery "
                          "version and each photo's face.")
    def enroll(
        name: Annotated[str, Form(description="Identity name (1-128 printable characters).")],
        photos: Annotated[list[UploadFile], File(description="One or more photos of the person.")],
        replace: Annotated[bool, Query(description="Replace the identity's photos instead of adding")] = False,
        require_live: Annotated[bool, Query(description="Refuse photos that do not look live")] = True,
    ) -> dict[str, Any]:
        allow_no_liveness(require_live)
        name = gallery.check_name(name)
        if len(photos) > MAX_ENROLL_PHOTOS:
            raise ApiError(400, "bad_request", f"at most {MAX_ENROLL_PHOTOS} photos per request")
        items = []
        for upload in photos:
            image, photo_name = _read_photo(upload)
            with pool.use() as models:
                face, embedding = enrollable_face(
                    image, photo_name, models, min_quality=settings.enroll_min_quality,
                    live_threshold=settings.live_threshold if require_live else None)
                embedder_id = models.ids["embedder"]
            items.append((face, embedding))
        change = gallery.enroll(holder.ws, {name: items}, embedder_id, replace_existing=replace,
                                details={"liveness_checked": require_live, "via": "api"}, on_change=on_change)
        return change.to_json() | {"photos": [f.to_json() for f, _ in items]}

    @app.get("/people", dependencies=secured, summary="The people found in the archive, most faces first",
             description="The same JSON as `faceid-jobs people --json`, read from the newest people version "
                         "(`process` and the flows add new footage; nothing is clustered here).")
    def people(
        min_faces: Annotated[int | None, Query(ge=0, description="At least this many faces "
                                               "[default: people_min_faces]")] = None,
        limit: Annotated[int | None, Query(ge=1, le=10000, description="At most this many people")] = None,
    ) -> dict[str, Any]:
        from faceid_jobs.identity.people_edit import people_view

        holder.refuse_pending()
        return people_view(holder.ws, min_faces=settings.people_min_faces if min_faces is None else min_faces,
                           limit=limit, gap_s=settings.appearance_gap_s)

    @app.get("/people/{pid}", dependencies=secured, summary="One person: counts, best face, appearances",
             description="The same JSON as `faceid-jobs people show ID --json`; 404 (code unknown_person) "
                         "for an unknown id.")
    def person(pid: str) -> dict[str, Any]:
        from faceid_jobs.identity.people_edit import person_view

        holder.refuse_pending()
        return person_view(holder.ws, pid, gap_s=settings.appearance_gap_s)

    log.info("API ready: %d model set(s), index version %s, auth %s", len(sets), holder.version,
             "on" if auth else "OFF")
    app.add_middleware(_Guard, token=token if auth else None, max_body=limit,
                       enroll_token=settings.api_enroll_token if auth else None)
    return app


MAX_ENROLL_PHOTOS = 32
