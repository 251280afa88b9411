"""The HTTP service with the real app (ASGI client) over a real index."""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import subprocess
import threading
import time
import warnings
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsim import Matcher
from mmsim.index import Index
from mmsim.plugin.testing import fill_disk, write_collection, write_images
from mmsim.serve import ServeConfig, create_app
from mmsim.serve.app import ServiceWarning


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, Matcher]:
    root = tmp_path_factory.mktemp("serve")
    write_collection(root / "photos")
    matcher = Matcher("toy", progress=False)
    Index.build(root / "photos", matcher, root / "idx", progress=False)
    return root, root / "idx", matcher


@pytest.fixture(scope="module")
def client(built):
    with TestClient(create_app(built[1])) as c:
        yield c


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds almost none."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return png_chunks(header, zlib.compress(b"\x00" * 64))


def png_of_zeros(width: int, height: int) -> bytes:
    """A complete, valid greyscale PNG of ``width`` x ``height`` black pixels: a few
    hundred KB that decode to width x height bytes (a decompression bomb by its size)."""
    packer = zlib.compressobj(1)
    row = bytes(width + 1)  # a filter byte and the row's pixels
    data = b"".join([packer.compress(row) for _ in range(height)] + [packer.flush()])
    return png_chunks(struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), data)


def png_chunks(header: bytes, data: bytes) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def same_hits(got: list[dict], want: list[dict]) -> None:
    """Equal hits; scores to float32 precision (the query ran in another thread/batch)."""
    strip = [{k: v for k, v in h.items() if k != "score"} for h in got]
    assert strip == [{k: v for k, v in h.items() if k != "score"} for h in want]
    np.testing.assert_allclose([h["score"] for h in got], [h["score"] for h in want], atol=1e-6)


def test_text_and_image_search_equal_the_index(client, built):
    root, idx, matcher = built
    index = Index.open(idx)
    got = client.get("/api/search", params={"q": "a red car", "top_k": 3}).json()
    same_hits(got["hits"], index.search("a red car", top_k=3)[0])
    posted = client.post("/api/search", json={"query": "a red car", "top_k": 3}).json()
    assert posted["hits"] == got["hits"]
    filtered = client.get("/api/search", params={"q": "x", "where": "folder = 'city'"}).json()
    assert {h["metadata"]["folder"] for h in filtered["hits"]} == {"city"}
    image = (root / "photos" / "city" / "c2.png").read_bytes()
    hits = client.post("/api/search/image", files={"file": ("c2.png", image)}, data={"top_k": "2"})
    assert hits.status_code == 200 and hits.json()["hits"][0]["path"].endswith("c2.png")
    first = hits.json()["hits"][0]["response_id"]
    similar = client.get("/api/search/similar", params={"id": first, "top_k": 2}).json()
    assert similar["hits"][0]["response_id"] == first and similar["hits"][0]["score"] > 0.9999
    texts = client.post("/api/embed/text", json={"texts": ["a red car"]}).json()["embeddings"]
    np.testing.assert_allclose(texts[0], matcher.extract_embedding(["a red car"])[0], atol=1e-6)
    vector = client.post("/api/embed/image", files={"file": ("c2.png", image)}).json()["embedding"]
    np.testing.assert_allclose(vector, index.vectors([first])[0], atol=1e-5)
    assert client.get("/api/health").json() == {"status": "ok", "items": 8}
    info = client.get("/api/info").json()
    assert info["items"] == 8 and info["matcher"]["threshold"] == "fixed"
    document = client.get("/openapi.json").json()
    assert info["api_version"] == document["info"]["version"] == "2"
    assert "/api/search" in document["paths"]


def test_match_uses_the_matchers_threshold(client, built):
    root, _, matcher = built
    matcher.query, matcher.response = "image", "text"
    path = str(root / "photos" / "beach" / "img0.jpg")
    expected = matcher.predict_proba({"image": [path], "text": ["a red car"]})[0, 1]
    got = client.post(
        "/api/match",
        files={"file": ("img0.jpg", Path(path).read_bytes())},
        data={"caption": "a red car"},
    ).json()
    assert got["p_match"] == pytest.approx(expected, abs=1e-6)
    assert got["match"] == bool(matcher.predict({"image": [path], "text": ["a red car"]})[0])


def test_limits_answer_with_clear_4xx(built):
    config = ServeConfig(
        max_upload_bytes=20_000,
        max_pixels=100_000,
        max_query_chars=50,
        max_top_k=10,
        max_body_bytes=200_000,
        max_where_chars=30,
    )
    with TestClient(create_app(built[1], config)) as c:

        def error(response, status: int, *words: str) -> None:
            assert response.status_code == status, response.text
            body = response.json()
            assert body["status"] == status and all(w in body["error"] for w in words), body

        error(c.get("/api/search", params={"q": "x" * 51}), 413, "max_query_chars")
        error(c.get("/api/search", params={"q": " "}), 422, "empty")
        error(c.get("/api/search", params={"q": "x", "top_k": 11}), 422, "top_k", "equal to 10")
        error(c.get("/api/search", params={"q": "x", "top_k": "many"}), 422, "top_k")
        error(
            c.get("/api/search", params={"q": "x", "where": "nosuch = 1"}),
            422,
            "not a valid filter",
        )
        error(c.get("/api/search", params={"q": "x", "where": "a" * 31}), 413, "max_where_chars")
        error(c.get("/api/search", params={"q": "x", "page": 99}), 422, "past the end")
        error(c.get("/api/search", params={"q": "x", "sort": "nosuch"}), 422, "no column")
        big = png(200, 200)
        assert 20_000 < len(big) < 200_000
        error(
            c.post("/api/search/image", files={"file": ("big.png", big)}), 413, "max_upload_bytes"
        )
        bomb = io.BytesIO()
        Image.new("RGB", (1000, 1000)).save(bomb, "PNG")  # tiny file, a million pixels
        error(
            c.post("/api/search/image", files={"file": ("bomb.png", bomb.getvalue())}),
            413,
            "1000x1000",
            "max_pixels",
        )
        error(
            c.post(
                "/api/search", content=b"x" * 210_000, headers={"content-type": "application/json"}
            ),
            413,
            "max_body_bytes",
        )
        chunks = (b" " * 1000 for _ in range(300))  # chunked: no Content-Length to refuse
        error(
            c.post("/api/search", content=chunks, headers={"content-type": "application/json"}),
            413,
            "max_body_bytes",
        )
        error(
            c.post("/api/search", content=b'{"q": ', headers={"content-type": "application/json"}),
            400,
            "not valid JSON",
            "at character 6",
        )
        error(c.post("/api/search", json={"negative": [{"text": "x"}]}), 422, "positive part")
        error(c.post("/api/search", json={"query": 3}), 422, "query")
        error(c.post("/api/match", files={"file": ("a.png", png())}), 422, "caption")
        error(c.get("/api/search/similar", params={"id": 12345}), 404, "12345")
        error(c.post("/api/update"), 403, "read-only")
        # a broken upload does not affect the next request
        ok = c.post("/api/search/image", files={"file": ("ok.png", png())}, data={"top_k": "3"})
        assert ok.status_code == 200 and len(ok.json()["hits"]) == 3


def jpeg(width: int = 120, height: int = 90) -> bytes:
    pixels = (np.random.default_rng(1).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


UPLOAD_ROUTES = ("/api/search/image", "/api/embed/image", "/api/match")
BAD_UPLOADS = {  # name: (bytes, status, words the error has)
    "empty.png": (b"", 422, "empty"),
    "notes.png": (b"not an image at all", 422, "not a readable image"),
    "cut.png": (png(200, 150)[:3000], 422, "truncated"),
    "cut.jpg": (jpeg()[:2000], 422, "truncated"),
    "nothing.png": (png_header(0, 10), 422, "0x10: it has no pixels"),
    "header-bomb.png": (png_header(20_000, 20_000), 413, "decompression bomb"),
    "size-bomb.png": (png_of_zeros(8000, 6000), 413, "8000x6000 pixels; the limit is 40000000"),
}


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_every_upload_the_service_will_not_decode_is_a_4xx_naming_why(client, route):
    """Bombs by header and by size, truncated, not an image, no pixels, empty: refused
    with the upload's name and the reason, the next request unaffected."""
    caption = {"caption": "a red car"} if route == "/api/match" else None
    for name, (data, status, words) in BAD_UPLOADS.items():
        response = client.post(route, files={"file": (name, data)}, data=caption)
        assert response.status_code == status, (name, response.text)
        assert repr(name) in response.json()["error"] and words in response.json()["error"], (
            name,
            response.json(),
        )
    fine = client.post(route, files={"file": ("ok.png", png())}, data=caption)
    assert fine.status_code == 200, fine.text


def test_thumbnails_only_for_indexed_files(client, built, tmp_path):
    hits = client.get("/api/search", params={"q": "x", "top_k": 8}).json()["hits"]
    response = client.get(f"/api/items/{hits[0]['response_id']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size[0] <= 256
    url = f"/api/items/{hits[0]['response_id']}/thumbnail"
    small = client.get(url, params={"size": 16})
    assert max(Image.open(io.BytesIO(small.content)).size) == 16
    for size in (0, -5, 15, 257):  # the range the schema declares: 16 to thumbnail_size
        refused = client.get(url, params={"size": size})
        assert refused.status_code == 422 and "size" in refused.json()["error"], size
    for path in (
        "/api/items/..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/api/items/%2Fetc%2Fpasswd/thumbnail",
        "/api/items/1%2F..%2F2/thumbnail",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/../../index/manifest.py",
    ):
        response = client.get(path)
        assert response.status_code in (404, 422) and "root:" not in response.text, path
    # an indexed file replaced by a link to a file outside the collection
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(seed=9))
    victim = next(h for h in hits if h["path"].endswith("c3.png"))
    target = Path(victim["path"])
    saved = target.read_bytes()
    target.unlink()
    target.symlink_to(secret)
    try:
        response = client.get(f"/api/items/{victim['response_id']}/thumbnail")
        assert (
            response.status_code == 403 and "link out of the collection" in response.json()["error"]
        )
    finally:
        target.unlink()
        target.write_bytes(saved)


def test_token_protects_every_route(built):
    with TestClient(create_app(built[1], ServeConfig(token="s3cret"))) as c:
        document = c.get("/openapi.json?token=s3cret").json()  # clients are told to send it
        assert document["security"] == [{"bearer": []}, {"token": []}]
        schemes = document["components"]["securitySchemes"]
        assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
        assert schemes["token"] == {"type": "apiKey", "in": "query", "name": "token"}
        for path in ("/", "/api/health", "/api/search?q=x", "/docs", "/static/app.js"):
            assert c.get(path).status_code == 401, path
        assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/health?token=s3cret").status_code == 200
        document = c.get("/openapi.json?token=s3cret").json()  # 401 declared on every route
        assert all(
            "401" in op["responses"] for p in document["paths"].values() for op in p.values()
        )


def test_non_loopback_host_warns(built):
    with pytest.warns(ServiceWarning, match="other machines can reach"):
        create_app(built[1], ServeConfig(host="0.0.0.0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_app(built[1], ServeConfig(host="127.0.0.1"))


def test_index_updated_while_serving(tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    matcher = Matcher("toy", progress=False)
    Index.build(photos, matcher, tmp_path / "idx", progress=False)
    with TestClient(create_app(tmp_path / "idx", ServeConfig(read_only=False))) as c:
        assert c.get("/api/health").json()["items"] == 3
        new = write_images(tmp_path / "more", 5)[4]
        (photos / "new.png").write_bytes(new.read_bytes())
        Index.open(tmp_path / "idx").update(progress=False)  # another writer, same machine
        assert c.get("/api/health").json()["items"] == 4  # seen without a restart
        hits = c.get("/api/search", params={"q": "x", "top_k": 10}).json()["hits"]
        assert any(h["path"].endswith("new.png") for h in hits)
        (photos / "new.png").unlink()
        assert "1 deleted" in c.post("/api/update").json()["summary"]
        assert c.get("/api/health").json()["items"] == 3


def test_concurrent_text_queries_share_batches(built):
    app = create_app(built[1], ServeConfig(batch_wait_ms=50, batch_max=32))
    sizes: list[int] = []
    app.state.batcher.on_batch = sizes.append  # (in place of the metrics' histogram)
    queries = [f"query number {i}" for i in range(16)]

    async def go() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            answers = await asyncio.gather(
                *(c.get("/api/search", params={"q": q, "top_k": 3}) for q in queries)
            )
        return [a.json() for a in answers]

    answers = asyncio.run(go())
    assert sum(sizes) == 16 and len(sizes) <= 4  # 16 requests, a few model calls
    index = Index.open(built[1])
    for query, answer in zip(queries, answers, strict=True):
        same_hits(answer["hits"], index.search(query, top_k=3)[0])


def test_the_default_demo_index_works_offline(tmp_path):
    from mmsim.demo.demo_index import demo_index

    folder = demo_index(tmp_path / "cache", scenes=40)
    with TestClient(create_app(folder)) as c:
        assert c.get("/api/health").json()["items"] == 40
        hits = c.get("/api/search", params={"q": "a large red circle", "top_k": 3}).json()["hits"]
        assert len(hits) == 3 and all("caption" in h["metadata"] for h in hits)
        best = hits[0]
        image = c.get(f"/api/items/{best['response_id']}/thumbnail")
        assert image.status_code == 200
        verdict = c.post(
            "/api/match",
            files={"file": ("scene.png", Path(best["path"]).read_bytes())},
            data={"caption": best["metadata"]["caption"]},
        ).json()
        assert verdict["threshold"] == "best_f1" and verdict["match"] is True
    assert demo_index(tmp_path / "cache", scenes=40) == folder  # built once, then reused


def test_the_thread_share_reaches_the_onnx_sessions_of_the_demo(tmp_path):
    """inference_threads bounds onnxruntime too (the demo runs its graphs there): its
    sessions are made with the share, since they cannot change their threads later."""
    import sys

    from threadpoolctl import threadpool_limits

    from mmsim.demo.demo_index import demo_index

    folder = demo_index(tmp_path / "cache", scenes=12)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=None):  # the share is process-wide: give it back after
        app = create_app(folder, ServeConfig(inference_threads=1))
        with TestClient(app) as c:
            assert c.get("/api/search", params={"q": "a red circle"}).status_code == 200
            matcher = app.state.engine.index.matcher
            sessions = [t.session.graph.get_session_options() for t in matcher.towers.values()]
            assert [o.intra_op_num_threads for o in sessions] == [1, 1]
    if torch:
        torch.set_num_threads(torch_threads)


def test_a_full_disk_makes_the_update_route_a_507_and_searches_go_on(small_disk, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    Index.build(photos, Matcher("toy", progress=False), small_disk / "idx", progress=False)
    for extra in write_images(tmp_path / "more", 12):
        (photos / f"new_{extra.name}").write_bytes(extra.read_bytes())
    with TestClient(create_app(small_disk / "idx", ServeConfig(read_only=False))) as c:
        ballast = fill_disk(small_disk)  # not a byte nor a file more
        full = c.post("/api/update")
        assert full.status_code == 507, full.text
        body = full.json()
        assert body["status"] == 507 and f"index {small_disk / 'idx'}" in body["error"]
        assert f"the file system {small_disk} " in body["error"], body  # full, or out of files
        assert f"on {small_disk} and run the same command again" in body["error"], body
        searched = c.get("/api/search", params={"q": "x", "top_k": 10})
        assert searched.status_code == 200 and searched.json()["total"] == 3
        assert c.get("/api/health/ready").json()["items"] == 3
        shutil.rmtree(ballast)  # space again: the same update completes
        assert "12 added" in c.post("/api/update").json()["summary"]
        assert c.get("/api/health").json()["items"] == 15


def test_an_index_on_a_read_only_mount_is_searched_and_its_update_is_a_403(small_disk, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, 3)
    Index.build(photos, Matcher("toy", progress=False), small_disk / "idx", progress=False).close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with TestClient(create_app(small_disk / "idx", ServeConfig(read_only=False))) as c:
        refused = c.post("/api/update")
        assert refused.status_code == 403, refused.text
        assert "read-only" in refused.json()["error"]
        searched = c.get("/api/search", params={"q": "x", "top_k": 10})
        assert searched.status_code == 200 and searched.json()["total"] == 3


def test_live_at_once_ready_once_the_model_and_the_index_are_loaded(built):
    app = create_app(built[1])
    worker_free = threading.Event()
    app.state.engine.executor.submit(worker_free.wait, 60)  # the warm-up queues behind this
    with TestClient(app) as c:
        assert c.get("/api/health/live").json() == {"status": "live"}
        waiting = c.get("/api/health/ready")
        assert waiting.status_code == 503, waiting.text
        assert waiting.json() == {
            "error": "not ready: the model and the index are still loading",
            "status": 503,
            "state": "loading",
        }
        worker_free.set()
        deadline = time.monotonic() + 60
        while (ready := c.get("/api/health/ready")).status_code == 503:
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.05)
        assert ready.json() == {"status": "ready", "items": 8}
        assert c.get("/api/health").json() == {"status": "ok", "items": 8}


def test_uploads_are_decoded_off_the_event_loop(client, monkeypatch):
    """Decoding an upload (up to max_pixels) must not hold up every other request."""
    import mmsim.serve.uploads as uploads

    decoded_on_loop: list[bool] = []
    real = uploads.load_image

    def watched(data):  # the real decoder, noting whether an event loop runs here
        try:
            asyncio.get_running_loop()
            decoded_on_loop.append(True)
        except RuntimeError:
            decoded_on_loop.append(False)
        return real(data)

    monkeypatch.setattr(uploads, "load_image", watched)
    for route in UPLOAD_ROUTES:
        sent = client.post(route, files={"file": ("a.png", png())}, data={"caption": "a car"})
        assert sent.status_code == 200, sent.text
    assert decoded_on_loop == [False, False, False]
