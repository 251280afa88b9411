"""The FastAPI application: JSON API under ``/api``, the web page at ``/``.

Every request and response has a pydantic model (:mod:`mmsim.serve.schemas`), and every
route declares the statuses it answers, so ``/openapi.json`` tells the truth. Errors are
JSON ``{"error": message, "status": code}``. Inference runs on the engine's single
worker thread, never on the event loop; text searches go through the micro-batcher. The
model and the index load in the background after start-up: ``/api/health/live``
answers at once, ``/api/health/ready`` once they are loaded. OpenAPI docs are at
``/docs``.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and the request models they name are built per app inside create_app
import asyncio
import hmac
import os
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mmsim.errors import DiskFullError
from mmsim.index import Index
from mmsim.index.errors import IndexChangedError
from mmsim.retrieval.keywords import MAX_WORDS
from mmsim.retrieval.query import MAX_PARTS, Item, Part, Query
from mmsim.serve.batching import MicroBatcher
from mmsim.serve.config import ServeConfig

try:
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi import Query as Query_
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        Response,
        StreamingResponse,
    )
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Match

    import mmsim.serve.access_log as access_log
    import mmsim.serve.metrics as metrics
    import mmsim.serve.schemas as schemas
    from mmsim.serve.body_limit import BodyLimit
    from mmsim.serve.engine import Engine, RequestError, TextSearch
    from mmsim.serve.media import (
        VIDEO_TYPES,
        VideoFile,
        attachment,
        chunks,
        clip_span,
        video_type,
    )
    from mmsim.serve.uploads import uploaded_image
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mmsim.serve needs FastAPI, uvicorn, python-multipart and prometheus-client: "
        f"pip install 'mmsim[serve]' ({exc})"
    ) from exc

STATIC = files("mmsim.serve") / "static"
IMAGE_FILE: dict[str, Any] = {
    "description": "an image (JPEG, PNG, WebP, ...)",
    "json_schema_extra": {"minLength": 1},  # an empty upload is no image
}

# what each error status means on this service (the descriptions in /openapi.json)
STATUSES = {
    400: "the body is not valid JSON or multipart form data (for a video: a Range header "
    "that is not a byte range)",
    401: "a token is needed (the service was started with token=...)",
    403: "refused: the service (or its index's file system) is read-only, or the file is a "
    "link out of the collection",
    404: "no item with that id in the index (or, for a thumbnail, no image file to show; for "
    "a video or a clip, the item is not a frame of a video, or its video cannot be read)",
    409: "another writer (an update or build) holds the index's lock: wait, then update again",
    413: "too large: the request body, an upload, its pixels or a text (max_* limits)",
    416: "a byte range that starts past the end of the file (`Content-Range: bytes */SIZE` "
    "gives its size)",
    422: "invalid: a parameter out of its range, an empty text, a bad filter, an image "
    "that cannot be decoded, parameters that do not go together",
    503: "not ready: the model and the index are still loading, or loading them failed "
    "(`state` says which); or, for a read, the index changed under it while it was read "
    "from a full disk, or (a clip) the service is cutting as many clips as it takes: "
    "retry after `Retry-After` seconds",
    501: "the service cannot read videos: install PyAV (pip install 'mmsim[video]')",
    507: "a file system is full (the index's, on an update; the temporary folder's, for a "
    "clip): free space, then try again",
}


class JPEGResponse(Response):
    media_type = "image/jpeg"


class ServiceWarning(UserWarning):
    """The service is reachable from other machines."""


def create_app(index: str | Path | Index, config: ServeConfig | None = None) -> FastAPI:
    """A FastAPI app serving ``index`` (a folder or an open :class:`Index`)."""
    config = (config or ServeConfig()).validate()
    opened = index if isinstance(index, Index) else Index.open(index)
    engine = Engine(opened, config)
    batcher = MicroBatcher(
        engine.text_searches, engine.executor, config.batch_max, config.batch_wait_ms
    )
    limits = schemas.Limits.of(config, opened.dim)
    bodies = schemas.request_models(limits)
    SearchBody, EmbedBody, PartBody = bodies.search, bodies.embed, bodies.part

    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        """The error statuses a route answers (401 too where a token is set)."""
        wanted = sorted({*codes, *([401] if config.token else [])})
        return {c: {"model": schemas.ErrorBody, "description": STATUSES[c]} for c in wanted}

    def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        """:func:`errors` of a route whose own answer is not JSON (FastAPI would give
        the errors the route's media type): the JSON routes define ``ErrorBody``."""
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        return {c: {"description": STATUSES[c], "content": body} for c in errors(*codes)}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # load the model and the index's view in the background: /api/health/live
        # answers at once, /api/health/ready once this is done, and requests that come
        # earlier wait for it in the worker's queue
        warm = asyncio.get_running_loop().run_in_executor(engine.executor, engine.warm_up)
        app.state.warm_up = warm
        yield
        warm.cancel()  # (a warm-up still running ends on its own, unheard)
        await batcher.close()
        engine.close()

    app = FastAPI(
        title="mmsim search",
        description="Search an mmsim index with text or images; check image-caption pairs.",
        version=schemas.API_VERSION,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.batcher = batcher

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(engine.executor, fn, *args)

    # -- middleware and errors -------------------------------------------------------------
    # (added first, so inside the guard: a client without the token learns no limits)
    app.add_middleware(BodyLimit, max_body_bytes=config.max_body_bytes)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if config.token:
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else None
            given = given or request.query_params.get("token")
            if not given or not hmac.compare_digest(given, config.token):
                return _error(401, "this service needs a token: Authorization: Bearer <token>")
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        retry = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return _error(exc.status, str(exc), retry)

    @app.exception_handler(IndexChangedError)
    async def changed(_: Request, exc: IndexChangedError) -> JSONResponse:
        return _error(503, f"{exc}: retry", {"Retry-After": "1"})

    @app.exception_handler(DiskFullError)
    async def disk_full(_: Request, exc: DiskFullError) -> JSONResponse:
        return _error(507, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        broken = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
        if broken is not None:  # not a request to judge at all
            at = broken["loc"][-1] if isinstance(broken["loc"][-1], int) else "?"
            reason = (broken.get("ctx") or {}).get("error", "")
            return _error(400, f"the body is not valid JSON (at character {at}: {reason})")
        problems = "; ".join(_problem(e) for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path (Starlette names the first route's)
            methods: set[str] = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE:
                    methods |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(methods))
        return _error(exc.status_code, str(exc.detail), headers)

    # -- page --------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, responses=json_errors(), summary="The search page")
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # -- health ------------------------------------------------------------------------
    def not_ready() -> JSONResponse | None:
        """The 503 while the model and the index load or after loading them failed
        (``state``: loading or failed, so that a client stops waiting for a failure)."""
        warm = app.state.warm_up
        if not warm.done():
            message = "not ready: the model and the index are still loading"
            return _error(503, message, extra={"state": "loading"})
        if warm.exception() is not None:
            message = f"loading the model or the index failed: {warm.exception()}"
            return _error(503, message, extra={"state": "failed"})
        return None

    async def items() -> int:
        """The index's rows, read on the status handle: never behind searches or updates."""
        return await engine.status.call(len)

    not_ready_503 = {503: {"model": schemas.NotReady, "description": STATUSES[503]}}

    @app.get("/api/health", response_model=schemas.Health, responses={**errors(), **not_ready_503})
    async def health() -> Any:
        """Answers once the model and the index are loaded (waits for them; 503 if
        loading them failed)."""
        await asyncio.wait([app.state.warm_up])
        return not_ready() or schemas.Health(status="ok", items=await items())

    @app.get("/api/health/live", responses=errors())
    async def live() -> schemas.Liveness:
        """The process answers; the model may still be loading."""
        return schemas.Liveness(status="live")

    @app.get(
        "/api/health/ready",
        response_model=schemas.Readiness,
        responses={**errors(), **not_ready_503},
    )
    async def ready() -> Any:
        """503 until the model and the index are loaded (``state``: loading), or for
        good if that failed (``state``: failed); then the number of items."""
        return not_ready() or schemas.Readiness(status="ready", items=await items())

    @app.get("/api/info", responses=errors())
    async def info() -> schemas.Info:
        return schemas.Info.model_validate(
            {**await run(engine.info), "api_version": schemas.API_VERSION}
        )

    # -- search ------------------------------------------------------------------------
    def options(body: Any) -> dict[str, Any]:
        """The checked search options of a request (limits of the service applied)."""
        top_k = engine.check_top_k(body.top_k)
        if body.keywords is not None:
            engine.check_text(body.keywords, "keywords")
        weights = body.fusion_weights
        return {
            "top_k": top_k,
            "offset": engine.check_offset(body.offset, body.page, top_k),
            "where": engine.check_where(body.where),
            "mode": body.mode,
            "keywords": body.keywords,
            "keyword_syntax": body.keyword_syntax,
            "sort": body.sort or None,
            "matches_only": body.matches_only,
            "min_probability": body.min_probability,
            "min_score": body.min_score,
            "as_of": body.as_of,
            "rrf_k": body.rrf_k,
            "fusion_weights": weights.model_dump() if weights else None,
            "window": body.window,
            "group": body.group or "frames",
            # a string part is a text, never a path the server would read from its disk
            "modality": "text",
        }

    def part(spec: Any, where: str) -> Part:
        if spec.text is not None:
            return Part(engine.check_text(spec.text, where), spec.weight)
        if spec.item is not None:
            return Part(Item(spec.item), spec.weight)
        return Part(engine.check_embedding(spec.embedding or [], where), spec.weight)

    def is_plain(body: Any, query: Query | None) -> bool:
        """A lone text in relevance order, no cutoff: embedded in a micro-batch."""
        return (
            query is not None
            and len(query.positive) == 1
            and not query.negative
            and isinstance(query.positive[0].value, str)
            and query.positive[0].weight == 1.0
            and body.keywords is None
            and body.mode in (None, "vector")
            and not (body.sort or body.matches_only)
            and body.min_probability is None
            and body.min_score is None
        )

    async def search(
        body: Any,
        images: list[Any] | None = None,
        label: str | None = None,
        chosen: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the search ``body`` asks for (``chosen``: its options, if checked already)."""
        chosen = chosen or options(body)
        positive = [*(images or [])]
        if body.query is not None:
            positive.append(Part(engine.check_text(body.query)))
        positive += [part(p, f"positive[{i}]") for i, p in enumerate(body.positive)]
        negative = [part(p, f"negative[{i}]") for i, p in enumerate(body.negative)]
        try:
            query = Query(positive, negative) if positive or negative else None
        except ValueError as exc:
            raise RequestError(422, str(exc)) from None
        if is_plain(body, query):
            assert query is not None
            job = TextSearch(
                query.positive[0].value,
                chosen["top_k"],
                chosen["where"],
                chosen["offset"],
                chosen["as_of"],
                chosen["group"],
            )
            result = await batcher.submit(job)
        else:
            result = await run(engine.steered_search, query, chosen)
        result["query"] = label if label is not None else result["query"] or None
        return result

    def with_next(request: Request, result: dict[str, Any]) -> schemas.LinkedSearchPage:
        """The page with ``next``: the link to the next page of the same ranking."""
        nxt = result.get("next_offset")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        params = [(k, v) for k, v in params if k not in ("offset", "as_of", "token")]
        if nxt is not None:
            params += [("offset", str(nxt)), ("as_of", str(result["as_of"]))]
            result["next"] = f"{request.url.path}?{urlencode(params)}"
        else:
            result["next"] = None
        return schemas.LinkedSearchPage.model_validate(result)

    text_query = limits.text  # the schema keywords of a text parameter
    form = schemas.form_field
    bound = limits.bounds  # one source of every search option's range
    texts_query = limits.text()["json_schema_extra"]  # the items of a list of texts
    search_errors = errors(404, 413, 422, 503)  # and 400 where there is a body
    search_rules = (
        "Rules the schema cannot state: `negative` needs a positive part (`q`, `id`, an "
        f"image); a query has at most {MAX_PARTS} parts in all, and they may not cancel "
        "out (a weighted sum of zero); `offset` and `page` go one at a time and stay "
        "within `max_offset`; a page past the end is 422; `where` is an SQL expression "
        "over the index's columns and `sort` one of them (422 if not); `mode=vector` "
        "needs a query, `mode=keyword` words (`keywords` or a text); plain `keywords` "
        "(and, in keyword or hybrid mode without `keywords`, the query's texts) need a word "
        f"of letters or digits and at most {MAX_WORDS} words, `keyword_syntax=fts5` needs "
        "FTS5 query syntax; cutoffs need a "
        "query and are not for keyword mode; `sort` is not for hybrid mode, and sorts "
        "vector results only with a cutoff; the fusion weights may not both be 0; "
        "`as_of` is a commit the index has made (the `as_of` of a first page); an item "
        "id the index does not hold is 404."
    )

    @app.get(
        "/api/search",
        response_model_exclude_unset=True,
        responses=search_errors,
        description=search_rules,
    )
    async def search_get(
        request: Request,
        q: list[str] = Query_(
            [],
            max_length=MAX_PARTS,
            description="query texts (or item:ID): the positive parts",
            json_schema_extra={"items": {"type": "string", **texts_query}},
        ),
        negative: list[str] = Query_(
            [],
            max_length=MAX_PARTS,
            description="texts (or item:ID) to move away from",
            json_schema_extra={"items": {"type": "string", **texts_query}},
        ),
        keywords: str | None = Query_(None, **text_query("words to find (full-text search)")),
        keyword_syntax: schemas.KEYWORD_SYNTAXES = "plain",
        mode: schemas.MODES | None = Query_(None, description="vector, keyword or hybrid"),
        top_k: int | None = Query_(None, **bound("top_k")),
        offset: int | None = Query_(None, **bound("offset")),
        page: int | None = Query_(None, **bound("page")),
        where: str | None = Query_(None, **limits.where()),
        sort: str | None = Query_(None, **limits.sort()),
        matches_only: bool = False,
        min_probability: float | None = Query_(None, **bound("min_probability")),
        min_score: float | None = Query_(None, **bound("min_score")),
        as_of: int | None = Query_(None, **bound("as_of")),
        rrf_k: float | None = Query_(None, **bound("rrf_k")),
        window: int | None = Query_(None, **bound("window")),
        group: schemas.GROUPS | None = Query_(None, description=schemas.GROUP_HELP),
    ) -> schemas.LinkedSearchPage:
        body = _search_body(
            SearchBody,
            locals(),
            positive=[PartBody(text=t) for t in q],
            negative=[PartBody(text=t) for t in negative],
        )
        label = " + ".join(q) if q else None
        return with_next(request, await search(body, label=label))

    @app.post(
        "/api/search",
        response_model_exclude_unset=True,
        responses=errors(400, 404, 413, 422, 503),
        description=search_rules,
    )
    async def search_post(body: SearchBody) -> schemas.SearchPage:  # type: ignore[valid-type]
        page = await search(body, label=body.query)
        return schemas.SearchPage.model_validate(page)

    @app.post(
        "/api/search/image",
        response_model_exclude_unset=True,
        responses=errors(400, 404, 413, 422, 503),
        description="Search with an uploaded image. " + search_rules,
    )
    async def search_image(
        file: UploadFile = File(..., **IMAGE_FILE),
        top_k: form(int, **bound("top_k")) = Form(None),
        where: form(str, **limits.where()) = Form(None),
        negative: list[str] = Form(
            [],
            max_length=MAX_PARTS,
            description="texts to move away from (blank ones are ignored)",
            json_schema_extra={"items": {"type": "string", "maxLength": config.max_query_chars}},
        ),
        mode: form(schemas.MODES) = Form(None),
        keywords: form(str, **text_query("words to find (full-text search)")) = Form(None),
        sort: form(str, **limits.sort()) = Form(None),
        offset: form(int, **bound("offset")) = Form(None),
        page: form(int, **bound("page")) = Form(None),
        matches_only: bool = Form(False),
        min_probability: form(float, **bound("min_probability")) = Form(None),
        min_score: form(float, **bound("min_score")) = Form(None),
        as_of: form(int, **bound("as_of")) = Form(None),
        group: form(schemas.GROUPS, description=schemas.GROUP_HELP) = Form(None),
    ) -> schemas.SearchPage:
        body = _search_body(
            SearchBody,
            locals(),
            negative=[PartBody(text=t) for t in negative if t.strip()],
        )
        chosen = options(body)  # refuse bad options before decoding the image
        image = await uploaded_image(file, config)
        page = await search(body, images=[Part(image)], label=file.filename, chosen=chosen)
        return schemas.SearchPage.model_validate(page)

    @app.get(
        "/api/search/similar",
        response_model_exclude_unset=True,
        responses=search_errors,
        description="More like the given items (their stored embeddings). " + search_rules,
    )
    async def search_similar(
        request: Request,
        id: list[int] = Query_(
            ..., max_length=MAX_PARTS, description="the items to find more like (one or more)"
        ),
        negative: list[str] = Query_(
            [],
            max_length=MAX_PARTS,
            description="texts (or item:ID) to move away from",
            json_schema_extra={"items": {"type": "string", **texts_query}},
        ),
        top_k: int | None = Query_(None, **bound("top_k")),
        offset: int | None = Query_(None, **bound("offset")),
        page: int | None = Query_(None, **bound("page")),
        where: str | None = Query_(None, **limits.where()),
        matches_only: bool = False,
        min_probability: float | None = Query_(None, **bound("min_probability")),
        min_score: float | None = Query_(None, **bound("min_score")),
        as_of: int | None = Query_(None, **bound("as_of")),
        group: schemas.GROUPS | None = Query_(None, description=schemas.GROUP_HELP),
    ) -> schemas.LinkedSearchPage:
        body = _search_body(
            SearchBody,
            locals(),
            positive=[PartBody(item=i) for i in id],
            negative=[PartBody(text=t) for t in negative],
        )
        label = ", ".join(str(i) for i in id)
        return with_next(request, await search(body, label=label))

    # -- embeddings and matching ---------------------------------------------------------
    @app.post("/api/embed/text", responses=errors(400, 413, 422))
    async def embed_text(body: EmbedBody) -> schemas.TextEmbeddings:  # type: ignore[valid-type]
        texts = [engine.check_text(t, f"texts[{i}]") for i, t in enumerate(body.texts)]
        return schemas.TextEmbeddings(embeddings=(await run(engine.embed_texts, texts)).tolist())

    @app.post("/api/embed/image", responses=errors(400, 413, 422))
    async def embed_image(
        file: UploadFile = File(..., **IMAGE_FILE),
    ) -> schemas.ImageEmbedding:
        image = await uploaded_image(file, config)
        return schemas.ImageEmbedding(embedding=(await run(engine.embed_image, image)).tolist())

    @app.post("/api/match", responses=errors(400, 413, 422))
    async def match(
        file: UploadFile = File(..., **IMAGE_FILE),
        caption: str = Form(..., **text_query("the caption to check against the image")),
    ) -> schemas.MatchVerdict:
        caption = engine.check_text(caption, "caption")
        image = await uploaded_image(file, config)
        return schemas.MatchVerdict.model_validate(await run(engine.match, image, caption))

    # -- items -------------------------------------------------------------------------
    @app.get(
        "/api/items/{item_id}", response_model_exclude_unset=True, responses=errors(404, 422, 503)
    )
    async def item(item_id: int) -> schemas.Item:
        return schemas.Item.model_validate(await run(engine.item, item_id))

    async def media(fn: Any, *args: Any) -> Any:
        """``fn`` on a media thread: decoding videos never holds up searches."""
        return await asyncio.get_running_loop().run_in_executor(engine.media, fn, *args)

    binary = {"schema": {"type": "string", "format": "binary"}}

    @app.get(
        "/api/items/{item_id}/thumbnail",
        response_class=JPEGResponse,
        responses={
            200: {"content": {"image/jpeg": binary}},
            **json_errors(403, 404, 422, 501, 503),
        },
    )
    async def thumbnail(
        item_id: int,
        size: int = Query_(
            config.thumbnail_size,
            ge=16,
            le=config.thumbnail_size,
            description="the longest side in pixels (thumbnail_size, the default, at most)",
        ),
    ) -> JPEGResponse:
        """A JPEG of an indexed image file, or of a frame of a video cut from it at the
        frame's time (kept in memory: the last `thumbnail_cache` cut). Only the file the
        index recorded: a link out of the collection is 403."""
        row, path = await run(engine.local_file, item_id)
        data = await media(engine.thumbnail, row, path, size)
        return JPEGResponse(data, headers={"Cache-Control": "max-age=300"})

    video_errors = json_errors(400, 403, 404, 416, 422, 503)
    video_files = {"content": {kind: binary for kind in sorted(set(VIDEO_TYPES.values()))}}
    ranged = {
        "description": "the bytes a `Range: bytes=START-END` header asked for",
        "headers": {"Content-Range": {"schema": {"type": "string"}}},
        **video_files,
    }

    @app.get(
        "/api/items/{item_id}/video",
        response_class=VideoFile,
        responses={200: video_files, 206: ranged, **video_errors},
    )
    @app.head(
        "/api/items/{item_id}/video",
        name="video_head",
        response_class=VideoFile,
        responses={200: video_files, 206: ranged, **video_errors},
    )
    async def video(item_id: int) -> VideoFile:
        """The video file a frame was sampled from, for a player: HTTP byte ranges
        (`Accept-Ranges: bytes`; `Range: bytes=START-END`, `bytes=START-` or `bytes=-LAST`
        is 206 with `Content-Range`, a range past the end 416), `ETag` and `If-Range`,
        `HEAD`. Only a file the index recorded as a video: a link out of the collection
        is 403, any other item 404."""
        _, path = await run(engine.local_file, item_id, True)
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except OSError:
            raise RequestError(404, f"item {item_id}'s video is no longer there") from None
        return VideoFile(path, media_type=video_type(path), stat_result=stat)

    seconds = {"ge": 0, "allow_inf_nan": False}

    @app.get(
        "/api/items/{item_id}/clip",
        response_class=StreamingResponse,
        # the longest clip, for clients (the page) to ask for no more
        openapi_extra={"x-max-seconds": config.max_clip_seconds},
        responses={
            200: {"content": {"video/mp4": binary}},
            **json_errors(403, 404, 422, 501, 503, 507),
        },
    )
    async def clip(
        item_id: int,
        start: float | None = Query_(
            None, **seconds, description="where the clip starts, seconds (default: the segment's)"
        ),
        end: float | None = Query_(
            None, **seconds, description="where it ends, seconds (default: the segment's)"
        ),
    ) -> StreamingResponse:
        """The segment `[start, end]` of a frame's video as an MP4 download: copied where
        the keyframes allow, re-encoded (H.264) otherwise. Without `start` or `end`, the
        segment around the frame (its neighbours that look like it, as `group=segments`
        grows it) gives them; a segment longer than `max_clip_seconds` (the operation's
        `x-max-seconds`) is cut to that much around the frame. An end past the video's is
        cut there; an end not after the
        start, a start past the end or a clip longer than `max_clip_seconds` is 422. One
        clip is cut at a time and one more waits: beyond that, 503 with `Retry-After`."""
        row, path = await run(engine.local_file, item_id, True)
        if start is None or end is None:
            span = (await run(engine.index.segment, item_id))["video"]
            if start is None and end is None:  # the segment, or what a clip may keep of it
                longest = config.max_clip_seconds
                start, end = clip_span(span["start"], span["end"], span["time"], longest)
            start = span["start"] if start is None else start
            end = span["end"] if end is None else end
        engine.reserve_clip()
        cut = asyncio.get_running_loop().run_in_executor(
            engine.clips, engine.clip, row, path, start, end
        )
        handle, size, end = await cut
        name = f"{Path(path).stem}_{start:.1f}-{end:.1f}s.mp4"
        headers = {"Content-Length": str(size), "Content-Disposition": attachment(name)}
        return StreamingResponse(chunks(handle), media_type="video/mp4", headers=headers)

    @app.post("/api/update", responses=errors(403, 409, 422, 503, 507))
    async def update() -> schemas.UpdateReport:
        """Run ``index.update()`` (only with ``read_only=false``) on the writer thread:
        searches go on meanwhile and see its commits as they land. 409 while another
        writer holds the index's lock, 422 when the source is gone or empty, 507 when
        the disk is full (the rows committed before stay searchable)."""
        if config.read_only:
            raise RequestError(403, "the service is read-only; start it with read_only=false")
        await asyncio.wait([app.state.warm_up])  # the writer embeds with the loaded model
        refused = not_ready()
        if refused is not None:
            return refused  # type: ignore[return-value]
        report = await engine.writer.call(engine.update)
        return schemas.UpdateReport.model_validate(report)

    if config.token:
        _declare_token(app)
    metrics.install(app, responses=errors())  # GET /metrics; counts what the guard refuses
    access_log.install(app, config)  # outermost: logs every request with its X-Request-ID
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        warnings.warn(
            f"serving on {config.host}: other machines can reach this service"
            + ("" if config.token else "; set token=... to require a bearer token"),
            ServiceWarning,
            stacklevel=2,
        )
    return app


def _declare_token(app: FastAPI) -> None:
    """Say in ``/openapi.json`` that every route needs the token: a bearer header, or
    ``?token=`` (for links and images), so generated clients send it."""
    document = app.openapi

    def secured() -> dict[str, Any]:
        schema = document()  # (FastAPI's, built once and cached)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "token": {"type": "apiKey", "in": "query", "name": "token"},
        }
        schema["security"] = [{"bearer": []}, {"token": []}]
        return schema

    app.openapi = secured  # type: ignore[method-assign]


def _search_body(model: type[BaseModel], parameters: dict[str, Any], **parts: Any) -> Any:
    """The search a GET or form route asks for: its parameters that are search options
    (the route's ``locals()``; the others are ignored) and its query ``parts``. The
    routes declare the same ranges as the body (:meth:`schemas.Limits.bounds`); what
    the body still refuses is a 422 naming it, never an error of the service."""
    options = {k: v for k, v in parameters.items() if k in model.model_fields}
    try:
        return model(**{**options, **parts})
    except ValidationError as exc:
        problems = "; ".join(_problem({**e, "loc": ("query", *e["loc"])}) for e in exc.errors())
        raise RequestError(422, f"invalid request: {problems}") from None


def _problem(error: Mapping[str, Any]) -> str:
    """One validation error: where, what is wrong, and the value given."""
    where = ".".join(str(p) for p in error["loc"][1:]) or "body"
    given = "" if error["type"] == "missing" else f" (got {_short(error.get('input'))})"
    return f"{where}: {error['msg']}{given}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = {"error": message, "status": status, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)
