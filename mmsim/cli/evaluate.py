"""``mmsim evaluate``: retrieval and pair metrics as JSON."""

from __future__ import annotations

from omegaconf import DictConfig

from mmsim.cli.common import emit_json
from mmsim.cli.match import build_matcher
from mmsim.cli.tables import columns_of, read_pairs
from mmsim.tables import read_table


def _id_table(path: str, what: str) -> dict[str, str]:
    header, rows = read_table(path)
    if not {"id", "item"} <= set(header):
        raise KeyError(f"{what} file {path} needs columns 'id' and 'item'; it has {header}")
    return {row["id"]: row["item"] for row in rows}


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    cutoffs = tuple(int(k) for k in cfg.cutoffs)
    if cfg.qrels:
        if not (cfg.queries and cfg.responses):
            raise ValueError("qrels=... needs queries=FILE and responses=FILE (columns id, item)")
        header, rows = read_table(cfg.qrels)
        qrels = columns_of(rows, header)
        report = matcher.evaluate(
            qrels=qrels,
            queries=_id_table(cfg.queries, "queries"),
            responses=_id_table(cfg.responses, "responses"),
            cutoffs=cutoffs,
        )
    elif cfg.pairs:
        extra = (cfg.label,) if cfg.label else ()
        _, rows = read_pairs(cfg, extra_columns=extra, columns=(matcher.query, matcher.response))
        names = (matcher.query, matcher.response, *extra)
        data = columns_of(rows, names)
        report = matcher.evaluate(data, label=cfg.label, cutoffs=cutoffs)
    else:
        raise ValueError(
            "give pairs=FILE (aligned pairs) or qrels=FILE with queries= and responses="
        )
    emit_json(report, cfg.output)
