"""Remote image reads vs. local files: the same JPEGs embedded from disk and from a local
HTTP server that adds latency to every request.

The server runs on 127.0.0.1 in this process (a thread per request). The model is a
randomly initialised CLIP ViT-B/32 saved and loaded like a real checkpoint, so the
model time is what a user's run has; the question is whether the loader's I/O pool
hides the network latency behind it.

    uv run python bench/bench_remote_inputs.py                     # 200 images, 50 ms
    uv run python bench/bench_remote_inputs.py --images 64 --latency-ms 200
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from mmsim import Matcher


def write_jpegs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
        path = folder / f"img{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=85)
        paths.append(path)
    return paths


def serve(folder: Path, latency_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(latency_s)
            body = (folder / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def timed(matcher: Matcher, items: list) -> float:
    start = time.perf_counter()
    matcher.extract_embedding(items)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from mmsim_openai_clip.testing import save_random_clip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        paths = write_jpegs(root / "images", args.images)
        checkpoint = save_random_clip(root / "clip-vit-b32")  # transformers' default: ViT-B/32
        matcher = Matcher(checkpoint=str(checkpoint), progress=False, batch_size=args.batch_size)
        httpd = serve(root / "images", args.latency_ms / 1000)
        urls = [f"http://127.0.0.1:{httpd.server_address[1]}/{p.name}" for p in paths]
        matcher.extract_embedding(paths[: args.batch_size])  # warm-up
        disk = timed(matcher, paths)
        remote = timed(matcher, urls)
        httpd.shutdown()
    print(
        f"{args.images} images, {args.latency_ms:g} ms latency per request, batch "
        f"{args.batch_size}: disk {args.images / disk:.1f} img/s, http "
        f"{args.images / remote:.1f} img/s, ratio http/disk {disk / remote:.2f}"
    )


if __name__ == "__main__":
    main()
