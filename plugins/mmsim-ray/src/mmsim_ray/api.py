"""Python entry points: build or update an index on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmsim.plugin.engines import Index, Matcher, UpdateReport
from mmsim_ray.cluster import EngineOptions
from mmsim_ray.runner import RayEngine
from mmsim_ray.source import DatasetSource


def _is_dataset(source: Any) -> bool:
    try:
        from ray.data import Dataset
    except ImportError:  # pragma: no cover - ray is this package's dependency
        return False
    return isinstance(source, Dataset)


def build(
    source: Any,
    matcher: Matcher,
    output: str | Path,
    *,
    engine: EngineOptions | None = None,
    column: str | None = None,
    key_column: str | None = None,
    modality: str | None = None,
    **build_options: Any,
) -> Index:
    """``Index.build`` with chunks embedded on Ray. ``source`` is anything
    ``Index.build`` takes (a folder, a table, Python data) or a ``ray.data.Dataset`` of
    items (a column of paths, URLs, texts or image bytes, plus metadata columns).
    Building into an existing index resumes it. ``build_options`` go to
    ``Index.build`` (``dtype``, ``commit_every``, ``include``, ``progress``...)."""
    ray_engine, src = _prepare(source, engine, column, key_column, modality)
    if src is not source:
        column = key_column = modality = None  # the Dataset source carries them
    return Index.build(
        src,
        matcher,
        output,
        engine=ray_engine,
        column=column,
        key_column=key_column,
        modality=modality,
        **build_options,
    )


def update(
    index: Index,
    source: Any = None,
    *,
    engine: EngineOptions | None = None,
    column: str | None = None,
    key_column: str | None = None,
    modality: str | None = None,
    **update_options: Any,
) -> UpdateReport:
    """``index.update`` with chunks embedded on Ray (``source``: a Dataset to compare
    with, or None for the recorded folder or table)."""
    ray_engine, src = _prepare(source, engine, column, key_column, modality)
    return index.update(src, engine=ray_engine, **update_options)


def _prepare(
    source: Any,
    engine: EngineOptions | None,
    column: str | None,
    key_column: str | None,
    modality: str | None,
) -> tuple[RayEngine, Any]:
    """The engine (cluster joined first) and the source: a Dataset becomes a
    :class:`DatasetSource`, anything else goes to the index as it is."""
    dataset = DatasetSource(source, column, key_column, modality) if _is_dataset(source) else None
    return RayEngine(engine), dataset if dataset is not None else source
