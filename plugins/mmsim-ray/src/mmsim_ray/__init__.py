"""mmsim's Ray engine: build and update an index on a Ray cluster.

Chunks are embedded by a pool of Ray Data actors (one matcher each, built once from the
index's saved ``matcher.json``) with the same code as a local build; the driver writes
their shards into the index and commits them one transaction each, so a killed run
resumes where it stopped and the result equals a local build (see docs/scale-out.md)::

    import ray
    from mmsim import Matcher
    from mmsim_ray import EngineOptions, build

    ds = ray.data.read_parquet("s3://bucket/images.parquet")   # a column of paths, URLs or bytes
    build(ds, Matcher("openai_clip"), "idx/", engine=EngineOptions(actors=8, gpus_per_actor=1))
"""

from __future__ import annotations

from mmsim.plugin import lazy_exports

# imported on first use: mmsim loads this package's entry point (mmsim_ray.plugin) to
# list plugins and check options, which must not import Ray, torch or the index
_PUBLIC = {
    "DatasetSource": "mmsim_ray.source",
    "EngineOptions": "mmsim_ray.cluster",
    "RayEngine": "mmsim_ray.runner",
    "build": "mmsim_ray.api",
    "connect": "mmsim_ray.cluster",
    "update": "mmsim_ray.api",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
