"""Image URLs served by a real HTTP server on 127.0.0.1: concurrent reads, retries,
timeouts, size caps, and ``mmsim.matcher.autogluon.download``."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import mmsim.inputs.remote
from mmsim import Matcher
from mmsim.errors import ItemError
from mmsim.matcher.autogluon import download


class Server:
    """Serves files from ``root``; ``/flaky/...`` fails with 503 once per path, ``/slow/...``
    answers after ``slow_s``; every request is counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.slow_s = 0.0
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.hits[self.path] += 1
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                    first = server.hits[self.path] == 1
                try:
                    self._answer(first)
                finally:
                    with server.lock:
                        server.active -= 1

            def _answer(self, first: bool) -> None:
                kind, _, name = self.path.strip("/").partition("/")
                if kind == "slow":
                    time.sleep(server.slow_s)
                if kind == "flaky" and first:
                    self.send_error(503)
                    return
                file = server.root / name
                if not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def server(image_paths) -> Iterator[Server]:
    srv = Server(image_paths[0].parent)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(scope="module")
def matcher():
    return Matcher("toy", progress=False)


def test_urls_embed_like_the_files_and_are_read_concurrently(matcher, server, image_paths):
    server.slow_s = 0.2
    urls = [f"{server.url}/slow/{p.name}" for p in image_paths] * 4  # 20 reads
    start = time.perf_counter()
    got = matcher.extract_embedding(urls, batch_size=20)
    elapsed = time.perf_counter() - start
    want = matcher.extract_embedding(image_paths * 4, batch_size=20)
    assert np.abs(got - want).max() < 1e-6
    assert server.peak >= 8  # one at a time would take 20 x 0.2 s
    assert elapsed < 20 * server.slow_s / 2


def test_transient_failures_are_retried(matcher, server, image_paths):
    got = matcher.extract_embedding([f"{server.url}/flaky/{image_paths[1].name}"])
    assert server.hits[f"/flaky/{image_paths[1].name}"] == 2
    assert np.abs(got - matcher.extract_embedding([image_paths[1]])).max() < 1e-6


def test_http_failures_are_per_item(matcher, server, image_paths, monkeypatch):
    monkeypatch.setattr(mmsim.inputs.remote, "MAX_BYTES", 1000)
    monkeypatch.setattr(mmsim.inputs.remote, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(mmsim.inputs.remote, "RETRIES", 0)
    server.slow_s = 1.0
    items = [
        f"{server.url}/img/missing.jpg",
        f"{server.url}/img/{image_paths[0].name}",  # > 1000 bytes
        f"{server.url}/slow/{image_paths[1].name}",
        "a caption",
    ]
    result = matcher.extract_embedding(items, on_error="skip")
    assert result.indices == [3]
    reasons = [s.reason for s in result.skipped]
    assert "HTTP 404" in reasons[0]
    assert "larger than the 0.000953674 MiB limit" in reasons[1]
    assert "(1 attempt)" in reasons[2] and "timed out" in reasons[2]
    with pytest.raises(ItemError, match=r"item 0 .*missing\.jpg.*HTTP 404"):
        matcher.extract_embedding(items)


def test_download_is_cached_atomic_and_checked(server, image_paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = image_paths[2].name
    url = f"{server.url}/img/{name}"
    path = download(url)
    assert path == name and Path(path).read_bytes() == image_paths[2].read_bytes()
    assert download(url) == name and server.hits[f"/img/{name}"] == 1  # cached
    sha1 = hashlib.sha1(image_paths[2].read_bytes()).hexdigest()
    folder = tmp_path / "dl"
    folder.mkdir()
    assert download(url, path=folder, sha1_hash=sha1) == str(folder / name)
    with pytest.raises(OSError, match="not the expected"):
        download(url, path=tmp_path / "other.jpg", sha1_hash="0" * 40)
    assert not (tmp_path / "other.jpg").exists()
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no temp files left
    with pytest.raises(OSError, match="HTTP 404"):
        download(f"{server.url}/img/nothing.jpg", retries=1)
    with pytest.raises(ValueError, match="url must be a URL"):
        download("photos/cat.jpg")
