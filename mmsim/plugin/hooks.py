"""The hooks a plugin implements.

A plugin is a module (or object) with functions decorated by ``hookimpl`` whose names
start with ``mmsim_``. It is found through an entry point in the group ``mmsim``::

    [project.entry-points.mmsim]
    my_backbone = "my_package.plugin"

The hook receives a :class:`~mmsim.plugin.registry.Registry` to fill (the tox / llm pattern):
registering through a callback lets mmsim record which plugin owns which component, so
that duplicates and failures can name the plugin responsible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mmsim.plugin.registry import Registry

PROJECT = "mmsim"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mmsim_register(registry: Registry) -> None:
    """Register encoders, similarity and thresholding strategies, and ANN backends.

    Call ``registry.register_encoder(...)``, ``registry.register_similarity(...)``,
    ``registry.register_threshold(...)`` and ``registry.register_ann(...)``. Import heavy
    libraries inside the factories you register, not at module level, so that listing
    plugins stays fast.
    """
