"""``mmsim match``: a table of pairs -> the same rows with score, p_match and match."""

from __future__ import annotations

import csv

from omegaconf import DictConfig

from mmsim.cli.common import given, output_path
from mmsim.cli.tables import columns_of, read_pairs
from mmsim.matcher import Matcher


def build_matcher(cfg: DictConfig) -> Matcher:
    """A saved matcher when ``matcher=DIR`` is given (with its own column names unless
    the command line sets ``columns.*``), else one from the config groups."""
    if cfg.get("matcher"):
        columns = cfg.get("columns") or {}
        overrides = {}
        if given("columns."):  # else the saved matcher's own column names
            overrides = {"query": columns.get("query"), "response": columns.get("response")}
        return Matcher.load(
            cfg.matcher,
            progress=cfg.runtime.progress,
            on_error=cfg.runtime.on_error,
            **overrides,
        )
    return Matcher.from_config(cfg)


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    header, rows = read_pairs(cfg, columns=(matcher.query, matcher.response))
    data = columns_of(rows, (matcher.query, matcher.response))
    scores = matcher.score_pairs(data)
    ok = scores == scores  # NaN marks a pair skipped with runtime.on_error=skip
    proba = matcher.threshold.proba(scores[ok])
    decisions = matcher.threshold.decide(scores[ok])
    out = output_path(cfg.output)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*header, "score", "p_match", "match"])
        writer.writeheader()
        results = iter(zip(scores[ok], proba, decisions, strict=True))
        for row, scored in zip(rows, ok, strict=True):
            s, p, d = next(results) if scored else ("", "", "")
            writer.writerow(
                {
                    **row,
                    "score": f"{s:.6f}" if scored else "",
                    "p_match": f"{p:.6f}" if scored else "",
                    "match": int(d) if scored else "",
                }
            )
    print(
        f"scored {int(ok.sum())} of {len(rows)} pairs: {int(decisions.sum())} match "
        f"(threshold '{matcher.threshold.config.name}') -> {out}"
    )
