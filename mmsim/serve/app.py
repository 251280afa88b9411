"""The FastAPI application: JSON API under ``/api``, the web page at ``/``.

Errors are JSON ``{"error": message, "status": code}``. Inference runs on the
engine's single worker thread, never on the event loop; text searches go through the
micro-batcher. OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import hmac
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mmsim.index import Index
from mmsim.retrieval.query import MAX_PARTS, Item, Part, Query
from mmsim.serve import access_log, metrics
from mmsim.serve.batching import MicroBatcher
from mmsim.serve.config import ServeConfig
from mmsim.serve.engine import Engine, RequestError, TextSearch

try:
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi import Query as Query_
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Match
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mmsim.serve needs FastAPI, uvicorn and python-multipart: pip install 'mmsim[serve]'"
    ) from exc

STATIC = files("mmsim.serve") / "static"


class PartBody(BaseModel):
    """One part of a compound query: exactly one of a text, an indexed item's id or an
    embedding, and its weight."""

    text: str | None = None
    item: int | None = None
    embedding: list[float] | None = None
    weight: float = 1.0


class SearchBody(BaseModel):
    """A search: ``query`` (one text) and/or ``positive`` / ``negative`` parts, or
    ``keywords`` alone, or nothing (browse); the options as in ``GET /api/search``."""

    query: str | None = None
    positive: list[PartBody] = Field(default_factory=list, max_length=MAX_PARTS)
    negative: list[PartBody] = Field(default_factory=list, max_length=MAX_PARTS)
    keywords: str | None = None
    keyword_syntax: str = "plain"
    mode: str | None = None
    top_k: int | None = None
    offset: int | None = None
    page: int | None = None
    where: str | None = None
    sort: str | None = None
    matches_only: bool = False
    min_probability: float | None = None
    min_score: float | None = None
    as_of: int | None = None
    rrf_k: float | None = None
    fusion_weights: dict[str, float] | None = None
    window: int | None = None


class EmbedBody(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)


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

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # load the model and the index's view before the first request, not during it
        await asyncio.get_running_loop().run_in_executor(engine.executor, engine.warm_up)
        yield
        await batcher.close()
        engine.executor.shutdown(wait=False)

    app = FastAPI(
        title="mmsim search",
        description="Search an mmsim index with text or images; check image-caption pairs.",
        version="1",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.batcher = batcher

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(engine.executor, fn, *args)

    # -- middleware and errors -------------------------------------------------------------
    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if config.token:
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else None
            given = given or request.query_params.get("token")
            if not given or not hmac.compare_digest(given, config.token):
                return _error(401, "this service needs a token: Authorization: Bearer <token>")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            return _error(
                413,
                f"request body of {length} bytes is over the limit of {config.max_body_bytes} "
                "(max_body_bytes)",
            )
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
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
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # -- API ---------------------------------------------------------------------------
    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "items": await run(len, engine.index)}

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return await run(engine.info)

    def options(body: SearchBody) -> dict[str, Any]:
        """The checked search options of a request (limits of the service applied)."""
        top_k = engine.check_top_k(body.top_k)
        if body.window is not None and not 1 <= body.window <= 10 * config.max_top_k:
            raise RequestError(
                422, f"window must be between 1 and {10 * config.max_top_k}, got {body.window}"
            )
        if body.keywords is not None:
            engine.check_text(body.keywords, "keywords")
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
            "fusion_weights": body.fusion_weights,
            "window": body.window,
            # a string part is a text, never a path the server would read from its disk
            "modality": "text",
        }

    def part(spec: PartBody, where: str) -> Part:
        given = [k for k in ("text", "item", "embedding") if getattr(spec, k) is not None]
        if len(given) != 1:
            raise RequestError(
                422, f"{where} needs exactly one of text, item or embedding, got {given or 'none'}"
            )
        if spec.text is not None:
            return Part(engine.check_text(spec.text, where), spec.weight)
        if spec.item is not None:
            return Part(Item(spec.item), spec.weight)
        return Part(engine.check_embedding(spec.embedding or [], where), spec.weight)

    def is_plain(body: SearchBody, query: Query | None) -> bool:
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
        body: SearchBody, images: list[Any] | None = None, label: str | None = None
    ) -> dict[str, Any]:
        chosen = options(body)
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
            )
            result = await batcher.submit(job)
        else:
            result = await run(engine.steered_search, query, chosen)
        if label is not None:
            result["query"] = label
        return result

    def with_next(request: Request, result: dict[str, Any]) -> dict[str, Any]:
        """The result with ``next``: the link to the next page of the same ranking."""
        nxt = result.get("next_offset")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        params = [(k, v) for k, v in params if k not in ("offset", "as_of", "token")]
        if nxt is not None:
            params += [("offset", str(nxt)), ("as_of", str(result["as_of"]))]
            result["next"] = f"{request.url.path}?{urlencode(params)}"
        else:
            result["next"] = None
        return result

    @app.get("/api/search")
    async def search_get(
        request: Request,
        q: list[str] = Query_([], description="query texts (or item:ID): the positive parts"),
        negative: list[str] = Query_([], description="texts (or item:ID) to move away from"),
        keywords: str | None = None,
        keyword_syntax: str = "plain",
        mode: str | None = Query_(None, description="vector, keyword or hybrid"),
        top_k: int | None = None,
        offset: int | None = None,
        page: int | None = None,
        where: str | None = None,
        sort: str | None = None,
        matches_only: bool = False,
        min_probability: float | None = None,
        min_score: float | None = None,
        as_of: int | None = None,
        rrf_k: float | None = None,
        window: int | None = None,
    ) -> dict[str, Any]:
        body = _search_body(
            locals(),
            positive=[PartBody(text=t) for t in q],
            negative=[PartBody(text=t) for t in negative],
        )
        label = " + ".join(q) if q else None
        return with_next(request, await search(body, label=label))

    @app.post("/api/search")
    async def search_post(body: SearchBody) -> dict[str, Any]:
        return await search(body, label=body.query)

    @app.post("/api/search/image")
    async def search_image(
        file: UploadFile = File(...),
        top_k: int | None = Form(None),
        where: str | None = Form(None),
        negative: list[str] = Form([]),
        mode: str | None = Form(None),
        keywords: str | None = Form(None),
        sort: str | None = Form(None),
        offset: int | None = Form(None),
        page: int | None = Form(None),
        matches_only: bool = Form(False),
        min_probability: float | None = Form(None),
        min_score: float | None = Form(None),
        as_of: int | None = Form(None),
    ) -> dict[str, Any]:
        body = _search_body(locals(), negative=[PartBody(text=t) for t in negative if t.strip()])
        options(body)  # refuse bad options before decoding the image
        image = engine.decode_upload(await _read(file, config), file.filename or "upload")
        return await search(body, images=[Part(image)], label=file.filename)

    @app.get("/api/search/similar")
    async def search_similar(
        request: Request,
        id: list[int] = Query_(..., description="the items to find more like (one or more)"),
        negative: list[str] = Query_([], description="texts (or item:ID) to move away from"),
        top_k: int | None = None,
        offset: int | None = None,
        page: int | None = None,
        where: str | None = None,
        matches_only: bool = False,
        min_probability: float | None = None,
        min_score: float | None = None,
        as_of: int | None = None,
    ) -> dict[str, Any]:
        body = _search_body(
            locals(),
            positive=[PartBody(item=i) for i in id],
            negative=[PartBody(text=t) for t in negative],
        )
        label = id[0] if len(id) == 1 else ", ".join(str(i) for i in id)
        return with_next(request, await search(body, label=label))  # type: ignore[arg-type]

    @app.post("/api/embed/text")
    async def embed_text(body: EmbedBody) -> dict[str, Any]:
        texts = [engine.check_text(t, f"texts[{i}]") for i, t in enumerate(body.texts)]
        return {"embeddings": (await run(engine.embed_texts, texts)).tolist()}

    @app.post("/api/embed/image")
    async def embed_image(file: UploadFile = File(...)) -> dict[str, Any]:
        image = engine.decode_upload(await _read(file, config), file.filename or "upload")
        return {"embedding": (await run(engine.embed_image, image)).tolist()}

    @app.post("/api/match")
    async def match(file: UploadFile = File(...), caption: str = Form(...)) -> dict[str, Any]:
        caption = engine.check_text(caption, "caption")
        image = engine.decode_upload(await _read(file, config), file.filename or "upload")
        return await run(engine.match, image, caption)

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return await run(engine.item, item_id)

    @app.get("/api/items/{item_id}/thumbnail")
    async def thumbnail(item_id: int, size: int | None = None) -> Response:
        side = min(size or config.thumbnail_size, config.thumbnail_size)
        data = await run(engine.thumbnail, item_id, max(16, side))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    @app.post("/api/update")
    async def update() -> dict[str, Any]:
        if config.read_only:
            raise RequestError(403, "the service is read-only; start it with read_only=false")
        return await run(engine.update)

    metrics.install(app)  # GET /metrics; counts what the guard refuses
    access_log.install(app, config)  # outermost: logs every request with its X-Request-ID
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        warnings.warn(
            f"serving on {config.host}: other machines can reach this service"
            + ("" if config.token else "; set token=... to require a bearer token"),
            ServiceWarning,
            stacklevel=2,
        )
    return app


async def _read(file: UploadFile, config: ServeConfig) -> bytes:
    data = await file.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise RequestError(
            413,
            f"upload {file.filename!r} is over the limit of {config.max_upload_bytes} bytes "
            "(max_upload_bytes)",
        )
    return data


def _search_body(parameters: dict[str, Any], **parts: list[PartBody]) -> SearchBody:
    """The search a GET or form route asks for: its parameters that are search options
    (the route's ``locals()``; the others are ignored) and its query ``parts``."""
    options = {k: v for k, v in parameters.items() if k in SearchBody.model_fields}
    return SearchBody(**{**options, **parts})


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)
