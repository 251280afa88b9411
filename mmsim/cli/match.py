"""``mmsim match``: a table of pairs -> the same rows with score, p_match and match."""

from __future__ import annotations

import csv
import io

from omegaconf import DictConfig

from mmsim.cli.common import build_matcher, output_path, pairs_table
from mmsim.files import write_atomic


def run(cfg: DictConfig) -> None:
    matcher = build_matcher(cfg)
    table = pairs_table(cfg, columns=(matcher.query, matcher.response))
    scores = matcher.score_pairs(table.columns((matcher.query, matcher.response)))
    ok = scores == scores  # NaN marks a pair skipped with runtime.on_error=skip
    proba = matcher.threshold.proba(scores[ok])
    decisions = matcher.threshold.decide(scores[ok])
    out = output_path(cfg.output)
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=[*table.header, "score", "p_match", "match"])
    writer.writeheader()
    results = iter(zip(scores[ok], proba, decisions, strict=True))
    for row, scored in zip(table.rows, ok, strict=True):
        s, p, d = next(results) if scored else ("", "", "")
        writer.writerow(
            {
                **row,
                "score": f"{s:.6f}" if scored else "",
                "p_match": f"{p:.6f}" if scored else "",
                "match": int(d) if scored else "",
            }
        )
    write_atomic(out, handle.getvalue())  # whole or not at all, on a full disk too
    print(
        f"scored {int(ok.sum())} of {len(table)} pairs: {int(decisions.sum())} match "
        f"(threshold '{matcher.threshold.config.name}') -> {out}"
    )
