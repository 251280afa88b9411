"""``mmsim index build|update|info|optimize|duplicates|calibrate``: the collection index."""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmsim.cli.common import build_matcher, emit_json, output_path, pairs_table
from mmsim.files import write_atomic
from mmsim.index.ann_search import ann_summary
from mmsim.index.engine import engine_for
from mmsim.index.gallery import duplicates_page
from mmsim.index.index import Index
from mmsim.index.video_plan import VideoOptions
from mmsim.inputs.tables import read_lines
from mmsim.inputs.video import timecode


def _list(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in OmegaConf.to_container(value)]  # type: ignore[union-attr]


def _video(cfg: DictConfig) -> dict[str, object]:
    """The ``video.*`` options given (None: as recorded, else the defaults), checked."""
    given = OmegaConf.to_container(cfg.video) if cfg.get("video") is not None else {}
    options = {str(k): v for k, v in (given or {}).items() if v is not None}  # type: ignore[union-attr]
    VideoOptions.parse(options)  # a bad value fails before any model loads
    return options


def build(cfg: DictConfig) -> None:
    video = _video(cfg)
    engine = engine_for(cfg.engine)  # checked (and a cluster joined) first
    matcher = build_matcher(cfg)
    index = Index.build(
        cfg.source,
        matcher,
        cfg.output,
        include=_list(cfg.include),
        exclude=_list(cfg.exclude),
        column=cfg.column,
        key_column=cfg.key_column,
        modality=cfg.modality,
        dtype=cfg.dtype,
        commit_every=cfg.commit_every,
        progress=cfg.runtime.progress,
        engine=engine,
        video=video,
    )
    _report(index.last_report, index.folder)


def update(cfg: DictConfig) -> None:
    video = _video(cfg)
    index = Index.open(cfg.index)
    engine = engine_for(cfg.engine)
    report = index.update(
        cfg.source, commit_every=cfg.commit_every, progress=cfg.progress, engine=engine, video=video
    )
    _report(report, index.folder)


def _report(report, folder) -> None:  # type: ignore[no-untyped-def]
    print(f"{folder}: {report.summary()}")
    for row in report.skipped[:20]:
        print(f"  skipped {row['item']}: {row['reason']}")
    if len(report.skipped) > 20:
        print(f"  ... and {len(report.skipped) - 20} more (see `mmsim index info`)")
    for gap in report.gaps[:20]:
        print(
            f"  unreadable part of {gap['item']}: {_span(gap)} ({gap['reason']}); the frames "
            "around it are indexed"
        )
    if len(report.gaps) > 20:
        print(f"  ... and {len(report.gaps) - 20} more unreadable parts (`mmsim index info`)")


def _span(gap: dict[str, Any]) -> str:
    return f"{timecode(gap['start'])}-{timecode(gap['end'])}"


def info(cfg: DictConfig) -> None:
    details = Index.open(cfg.index).info()
    if cfg.format == "json":
        print(json.dumps(details, indent=2))
        return
    if cfg.format != "text":
        raise ValueError(f"format must be 'text' or 'json', got '{cfg.format}'")
    encoder = details["encoders"]["image_encoder"]
    print(f"index     {details['path']}")
    videos = details["videos"]
    frames = f", {details['frames']} frames of {videos} videos" if videos else ""
    print(
        f"items     {details['items']} ({details['images']} images, {details['texts']} texts"
        f"{frames}); {details['deleted']} deleted rows not yet purged"
    )
    if videos:
        video = details["video"]
        how = {
            "interval": f"every {video['every']:g} s",
            "shots": "at shot changes",
            "both": f"every {video['every']:g} s and at shot changes",
        }[video["mode"]]
        print(f"videos    sampled {how}, at most {video['max_frames']} frames each")
        for gap in details["gaps"][:20]:
            print(f"  unreadable {gap['item']} {_span(gap)}: {gap['reason']}")
        if len(details["gaps"]) > 20:
            print(f"  ... and {len(details['gaps']) - 20} more unreadable parts (format=json)")
    print(f"model     {encoder['name']} {encoder.get('checkpoint', '')}")
    print(f"vectors   {details['dim']} dims, {details['dtype']}, {details['shards']} shards")
    print(f"on disk   {details['size_bytes'] / 1e6:.1f} MB")
    print(f"columns   {', '.join(details['metadata_columns']) or '(none)'}")
    threshold = details["threshold"]
    state = "calibrated" if threshold["calibrated"] else "not calibrated (`mmsim index calibrate`)"
    print(f"threshold {threshold['name']}, {state}")
    if not details["keyword_search"]:
        print("keywords  none yet: `mmsim index update` adds them (an index of an older mmsim)")
    ann = details["ann"]
    if ann is None:
        print("ann       none (exact search; `mmsim index optimize` builds one)")
    else:
        print(
            f"ann       {ann['backend']} {ann['param']}={ann['value']} over {ann['count']} rows, "
            f"recall@10 {ann['recall_at_10']} ({ann['tuning_query_source']}); "
            f"{ann['rows_searched_exactly']} newer rows searched exactly"
        )
        print(f"          {ann_summary(ann)}")
    print(f"skipped   {len(details['skipped'])}")
    for row in details["skipped"][:20]:
        print(f"  {row['item']}: {row['reason']}")


def optimize(cfg: DictConfig) -> None:
    index = Index.open(cfg.index)
    backend = str(cfg.backend)
    ann = None if backend.lower() == "none" else {"name": backend, **cfg.options}
    queries = read_lines(cfg.queries) if cfg.queries else None
    report = index.optimize(
        ann,
        target_recall=cfg.target_recall,
        queries=queries,
        compact=cfg.compact,
        memory=cfg.memory,
        retrain=cfg.retrain,
        shards=str(cfg.shards),
    )
    compaction = report.get("compaction")
    if compaction:
        print(
            f"shards: {compaction['shards_before']} -> {compaction['shards_after']} "
            f"({compaction['dtype']}), {compaction['purged']} deleted rows purged"
        )
    state = report.get("ann")
    if state:
        print(
            f"ann: {state['backend']} {state['factory']} ({state['mode']}) over "
            f"{state['count']} rows in {state['build_seconds']} s; "
            f"{state['param']}={state['value']} gives recall@10 {state['recall_at_10']} "
            f"(target {state['target_recall']}, {state['tuning_queries']} "
            f"{state['tuning_query_source']})"
        )
    else:
        print("ann: removed; searches are exact")


def duplicates(cfg: DictConfig) -> None:
    index = Index.open(cfg.index)
    groups = index.duplicates(cfg.min_similarity, max_group=cfg.max_group)
    if cfg.output and str(cfg.output).lower().endswith((".html", ".htm")):
        out = output_path(cfg.output)
        write_atomic(out, duplicates_page(f"Near duplicates in {index.folder}", groups))
        print(f"{len(groups)} groups of near duplicates (threshold {cfg.min_similarity}) -> {out}")
        return
    emit_json(groups, cfg.output)


def calibrate(cfg: DictConfig) -> None:
    index = Index.open(cfg.index)
    matcher = index.matcher
    query = cfg.columns.query or matcher.query or "image"
    response = cfg.columns.response or matcher.response or "caption"
    table = pairs_table(cfg, extra_columns=(cfg.label,), columns=(query, response))
    data = table.columns((query, response, cfg.label))
    strategy = cfg.strategy
    if strategy is not None and not isinstance(strategy, str):
        strategy = OmegaConf.to_container(strategy)
    report = index.calibrate(
        data,
        label=cfg.label,
        threshold=strategy,
        holdout=cfg.holdout,
        seed=cfg.seed,
        query=query,
        response=response,
    )
    print(report.summary())
    print(
        f"{index.folder}: threshold '{index.matcher.spec.threshold.name}' calibrated and saved; "
        "searches take matches_only=true and hits carry p_match"
    )


COMMANDS = {
    "build": build,
    "update": update,
    "info": info,
    "optimize": optimize,
    "duplicates": duplicates,
    "calibrate": calibrate,
}
