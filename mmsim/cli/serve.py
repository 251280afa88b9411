"""``mmsim serve``: the HTTP search service and web page (see docs/serve.md)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields

from omegaconf import DictConfig

ENV = "MMSIM_SERVE"


def run(cfg: DictConfig) -> None:
    try:
        import uvicorn

        from mmsim.serve.config import ServeConfig
        from mmsim.serve.metrics import multiprocess_folder
    except ImportError:
        raise ValueError("mmsim serve needs the serve extra: pip install 'mmsim[serve]'") from None
    config = ServeConfig(**{f.name: cfg[f.name] for f in fields(ServeConfig)}).validate()
    index = cfg.index
    if not index:
        from mmsim.demo.demo_index import demo_index

        print("no index given: serving the demo index of generated scenes (demo encoder)")
        index = str(demo_index())
    os.environ[ENV] = json.dumps(
        {"index": str(index), "matcher": cfg.matcher, "config": asdict(config)}
    )
    print(f"mmsim serve: http://{config.host}:{config.port}/  (API docs at /docs)")
    with multiprocess_folder(config.workers):  # /metrics adds up the workers' counts
        uvicorn.run(
            "mmsim.cli.serve:app_from_environment",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            log_level="warning",
            access_log=False,  # the service writes its own JSON access log (access_log=)
            timeout_graceful_shutdown=config.timeout_graceful_shutdown,
        )


def app_from_environment():  # type: ignore[no-untyped-def]
    """The app of one worker process, from the options ``run`` put in the environment
    (uvicorn starts each worker from an import string)."""
    from mmsim.index import Index
    from mmsim.matcher.matcher import Matcher
    from mmsim.serve import ServeConfig, create_app

    options = json.loads(os.environ[ENV])
    matcher = Matcher.load(options["matcher"], progress=False) if options["matcher"] else None
    index = Index.open(options["index"], matcher)
    return create_app(index, ServeConfig(**options["config"]))
