"""The FastAPI application: JSON API under ``/api``, the web page at ``/``.

Errors are JSON ``{"error": message, "status": code}``. Inference runs on the
engine's single worker thread, never on the event loop; text searches go through the
micro-batcher. OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import hmac
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from mmsim.index import Index
from mmsim.serve.batching import MicroBatcher
from mmsim.serve.config import ServeConfig
from mmsim.serve.engine import Engine, RequestError, TextSearch

try:
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mmsim.serve needs FastAPI, uvicorn and python-multipart: pip install 'mmsim[serve]'"
    ) from exc

STATIC = files("mmsim.serve") / "static"


class SearchBody(BaseModel):
    query: str
    top_k: int | None = None
    where: str | None = None


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
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

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

    async def text_search(query: str, top_k: int | None, where: str | None) -> dict[str, Any]:
        job = TextSearch(
            engine.check_text(query), engine.check_top_k(top_k), engine.check_where(where)
        )
        return {"query": query, "hits": await batcher.submit(job)}

    @app.get("/api/search")
    async def search_get(
        q: str = Query(..., description="the text query"),
        top_k: int | None = None,
        where: str | None = None,
    ) -> dict[str, Any]:
        return await text_search(q, top_k, where)

    @app.post("/api/search")
    async def search_post(body: SearchBody) -> dict[str, Any]:
        return await text_search(body.query, body.top_k, body.where)

    @app.post("/api/search/image")
    async def search_image(
        file: UploadFile = File(...), top_k: int | None = Form(None), where: str | None = Form(None)
    ) -> dict[str, Any]:
        top_k = engine.check_top_k(top_k)
        where = engine.check_where(where)
        image = engine.decode_upload(await _read(file, config), file.filename or "upload")
        vector = await run(engine.embed_image, image)
        return {
            "query": file.filename,
            "hits": await run(engine.search_vector, vector, top_k, where),
        }

    @app.get("/api/search/similar")
    async def search_similar(
        id: int, top_k: int | None = None, where: str | None = None
    ) -> dict[str, Any]:
        top_k = engine.check_top_k(top_k)
        where = engine.check_where(where)
        vector = await run(engine.item_vector, id)
        return {"query": id, "hits": await run(engine.search_vector, vector, top_k, where)}

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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)
