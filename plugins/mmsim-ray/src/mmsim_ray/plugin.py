"""Entry point of the ``ray`` engine (group ``mmsim``): ``engine=ray`` on the command
line, ``Index.build(..., engine="ray")`` in Python. Ray is imported when the engine is
built (which joins or starts the cluster), never when plugins are listed."""

from __future__ import annotations

from mmsim.plugin import Registry, hookimpl, lazy_factory
from mmsim_ray.cluster import EngineOptions


@hookimpl
def mmsim_register(registry: Registry) -> None:
    registry.register_engine(
        "ray",
        lazy_factory("mmsim_ray.runner:RayEngine"),
        EngineOptions,
        description="embed on a Ray cluster: a pool of actors, one matcher each",
    )
