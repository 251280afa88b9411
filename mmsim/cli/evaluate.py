"""``mmsim evaluate``: retrieval and pair metrics as JSON."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import build_matcher, emit_json, pairs_table
from mmsim.inputs.tables import read_table


def _id_table(path: str, what: str) -> dict[str, str]:
    table = read_table(path)
    if not {"id", "item"} <= set(table.header):
        raise KeyError(f"{what} file {path} needs columns 'id' and 'item'; it has {table.header}")
    return dict(zip(table.column("id"), table.column("item"), strict=True))


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    cutoffs = tuple(int(k) for k in cfg.cutoffs)
    if cfg.qrels:
        if not (cfg.queries and cfg.responses):
            raise ValueError("qrels=... needs queries=FILE and responses=FILE (columns id, item)")
        qrels = read_table(cfg.qrels).columns()
        report = matcher.evaluate(
            qrels=qrels,
            queries=_id_table(cfg.queries, "queries"),
            responses=_id_table(cfg.responses, "responses"),
            cutoffs=cutoffs,
        )
    elif cfg.pairs:
        extra = (cfg.label,) if cfg.label else ()
        table = pairs_table(cfg, extra_columns=extra, columns=(matcher.query, matcher.response))
        data = table.columns((matcher.query, matcher.response, *extra))
        report = matcher.evaluate(data, label=cfg.label, cutoffs=cutoffs)
    else:
        raise ValueError(
            "give pairs=FILE (aligned pairs) or qrels=FILE with queries= and responses="
        )
    emit_json(report, cfg.output)
