"""``mmsim match``: a CSV of pairs -> the same rows with score, p_match and match."""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig

from mmsim.cli.common import output_path
from mmsim.matcher import Matcher


def read_pairs(cfg: DictConfig) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(cfg.pairs).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {cfg.pairs}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    for key in ("query", "response"):
        name = cfg.columns[key]
        if name not in header:
            raise KeyError(
                f"columns.{key}='{name}' is not a column of {cfg.pairs}; its columns are {header}"
            )
    if cfg.image_root:
        root = Path(cfg.image_root).expanduser()
        for row in rows:
            for name in (cfg.columns.query, cfg.columns.response):
                candidate = root / row[name]
                if candidate.is_file():
                    row[name] = str(candidate)
    return header, rows


def run(cfg: DictConfig) -> None:
    header, rows = read_pairs(cfg)
    matcher = Matcher.from_config(cfg)
    data = {name: [row[name] for row in rows] for name in (matcher.query, matcher.response)}
    scores = matcher.score_pairs(data)
    proba = matcher.threshold.proba(scores)
    decisions = matcher.threshold.decide(scores)
    out = output_path(cfg.output)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*header, "score", "p_match", "match"])
        writer.writeheader()
        for row, s, p, d in zip(rows, scores, proba, decisions, strict=True):
            ok = s == s  # NaN marks a pair skipped with runtime.on_error=skip
            writer.writerow(
                {
                    **row,
                    "score": f"{s:.6f}" if ok else "",
                    "p_match": f"{p:.6f}" if ok else "",
                    "match": int(d) if ok else "",
                }
            )
    scored = int((scores == scores).sum())
    print(
        f"scored {scored} of {len(rows)} pairs: {int(decisions[scores == scores].sum())} "
        f"match (threshold '{matcher.threshold.config.name}') -> {out}"
    )
