"""The service's options and limits (also the ``mmsim serve`` config schema)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    """Where the service listens and what it accepts.

    Limits answer with a 4xx JSON error naming the limit: ``max_upload_bytes`` (one
    uploaded image), ``max_body_bytes`` (a whole request), ``max_pixels`` (an uploaded
    image's width x height, checked before decoding: decompression bombs),
    ``max_query_chars`` (a text query or caption), ``max_where_chars`` (a filter),
    ``max_top_k``, ``max_offset`` (the deepest page), ``max_clip_seconds`` (a clip cut
    from a video by ``/api/items/{id}/clip``). ``thumbnail_cache``: thumbnails cut from
    videos kept in memory (a cut costs a seek and a decode; an image's costs a read).
    ``batch_max`` /
    ``batch_wait_ms``: text queries that queue up while a batch runs are embedded and
    searched together as the next batch, up to
    ``batch_max`` (``batch_max=1`` turns micro-batching off); ``batch_wait_ms`` > 0
    also holds a batch's first query that long for company (latency for throughput). ``token``: when
    set, every route needs ``Authorization: Bearer <token>`` (or ``?token=`` for links
    and images). ``read_only=False`` enables ``POST /api/update``. ``access_log``: where
    the JSON access log goes (``stderr``, ``off`` or a file, appended to).
    ``timeout_graceful_shutdown``: seconds a SIGTERM waits for in-flight requests before
    cancelling them (uvicorn's option of that name). ``inference_threads``: the BLAS
    (and torch or onnxruntime) threads of the inference thread's work; 0 leaves a core to the event
    loop: (cores - 1) / workers, at least 1; None leaves the libraries' own defaults
    (every core), as an app in a host process should.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    read_only: bool = True
    max_upload_bytes: int = 20 * 1024 * 1024
    max_body_bytes: int = 24 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_query_chars: int = 1000
    max_where_chars: int = 500
    max_top_k: int = 200
    max_offset: int = 100_000
    batch_max: int = 32
    batch_wait_ms: float = 0.0
    thumbnail_size: int = 256
    thumbnail_cache: int = 512
    max_clip_seconds: int = 300
    access_log: str = "stderr"
    timeout_graceful_shutdown: int = 30
    inference_threads: int | None = None

    def validate(self) -> ServeConfig:
        for name in (
            "port",
            "workers",
            "max_upload_bytes",
            "max_body_bytes",
            "max_pixels",
            "max_query_chars",
            "max_where_chars",
            "max_top_k",
            "max_offset",
            "batch_max",
            "thumbnail_size",
            "thumbnail_cache",
            "max_clip_seconds",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "port" else 1):
                raise ValueError(f"serve option {name} must be a positive integer, got {value!r}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        grace = self.timeout_graceful_shutdown
        if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
            raise ValueError(
                f"serve option timeout_graceful_shutdown must be a whole number of seconds "
                f">= 0, got {grace!r}"
            )
        threads = self.inference_threads
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 0
        ):
            raise ValueError(
                f"serve option inference_threads must be null, 0 (a core left to the event "
                f"loop) or a number of threads, got {threads!r}"
            )
        if not isinstance(self.access_log, str) or not self.access_log.strip():
            raise ValueError(
                f"serve option access_log must be stderr, off or a file path, got "
                f"{self.access_log!r}"
            )
        return self
