"""The locust users of bench/bench_load.py (its locustfile; not run on its own).

Each user loops without pause over a mix of what the web page does: text searches
(real captions), image searches (uploads of real scene images), "more like this"
(similar items) and thumbnails. ``MMSIM_LOAD`` (set by bench_load.py) names a JSON file
with the captions, the image files and the index's first and last item id.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

WORK = json.loads(Path(os.environ["MMSIM_LOAD"]).read_text())
CAPTIONS: list[str] = WORK["captions"]
IMAGES: list[bytes] = [Path(p).read_bytes() for p in WORK["images"]]
FIRST, LAST = WORK["ids"]  # the index's item ids


class PageUser(FastHttpUser):
    """One browser's worth of requests, back to back (a closed loop: throughput is what
    the service sustains for this many users)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random(id(self))

    def item(self) -> int:
        return self.rng.randint(FIRST, LAST)

    @task(4)
    def text_search(self) -> None:
        caption = self.rng.choice(CAPTIONS)
        self.client.get("/api/search", params={"q": caption, "top_k": 20}, name="text search")

    @task(2)
    def image_search(self) -> None:
        image = self.rng.choice(IMAGES)
        self.client.post(
            "/api/search/image",
            files={"file": ("scene.png", image, "image/png")},
            data={"top_k": "20"},
            name="image search",
        )

    @task(2)
    def similar_items(self) -> None:
        params = {"id": self.item(), "top_k": 20}
        self.client.get("/api/search/similar", params=params, name="similar items")

    @task(4)
    def thumbnail(self) -> None:
        self.client.get(f"/api/items/{self.item()}/thumbnail", name="thumbnail")
