"""Checking engine options and joining a Ray cluster, with errors that name the option.

``ray.init(address=...)`` waits a long time on an address where nothing listens, so
the address is probed with a plain TCP connect first: a typo fails in seconds, naming
``engine.address`` and the value.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from mmsim.plugin import ConfigError, EngineConfig

PROBE_SECONDS = 5.0


@dataclass
class EngineOptions(EngineConfig):
    """Options of the ``ray`` engine (``engine=ray engine.actors=8 ...``).

    ``actors`` matchers (one per actor), each holding ``gpus_per_actor`` GPUs and
    ``cpus_per_actor`` CPUs; ``address`` of an existing cluster (None: start a local
    one, ``"auto"``: the one running on this machine); ``staging`` an fsspec URL where
    actors put shard files (None: shards come back through Ray's object store);
    ``batch_size`` the model batch (None: the matcher's)."""

    name: str = "ray"
    actors: int = 1
    gpus_per_actor: float = 0
    cpus_per_actor: float = 1
    address: str | None = None
    staging: str | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.actors, bool) or not isinstance(self.actors, int) or self.actors < 1:
            raise ConfigError(f"engine.actors must be a whole number >= 1, got {self.actors!r}")
        for name in ("gpus_per_actor", "cpus_per_actor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"engine.{name} must be a number >= 0, got {value!r}")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ConfigError(f"engine.batch_size must be null or >= 1, got {self.batch_size!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise ConfigError(f"engine.address must be host:port or 'auto', got {self.address!r}")


def connect(options: EngineOptions) -> None:
    """Join the cluster at ``options.address``, or start a local one; reuse a connection
    this process already has (tests share one cluster)."""
    address = options.address
    if address not in (None, "auto", "local"):
        _probe(address)
    elif address is None and "ray" not in sys.modules:
        # a local cluster shares this machine's environment: skip Ray's `uv run` hook,
        # which would package the working folder for every worker (read on import)
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    _check_resources(options)


def _probe(address: str) -> None:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(
            f"engine.address={address!r} is not host:port (e.g. 10.0.0.5:6379), 'auto' or "
            "null (start a local cluster)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise ConfigError(
            f"engine.address={address!r}: no Ray cluster answers there ({exc}); start one "
            "with `ray start --head` or leave engine.address unset for a local cluster"
        ) from None


def _check_resources(options: EngineOptions) -> None:
    """Refuse a pool that can never start (it would wait forever for resources)."""
    import ray

    total = ray.cluster_resources()
    for key, per_actor in (("GPU", options.gpus_per_actor), ("CPU", options.cpus_per_actor)):
        if per_actor and total.get(key, 0) < per_actor:
            raise ConfigError(
                f"engine.{key.lower()}s_per_actor={per_actor:g} but the cluster has "
                f"{total.get(key, 0):g} {key}s in all; lower it or add nodes"
            )
