"""Fitting a thresholding strategy on the scores of labelled pairs, and its report.

The strategy fitted here is a fresh one (the matcher hands over an unfitted copy of
its own): what it learns becomes the threshold state of a new spec, so a calibrated
matcher is a new spec rather than an edited one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmsim.errors import ConfigError
from mmsim.scoring.report import CalibrationReport, evaluate
from mmsim.scoring.thresholds import ThresholdStrategy

_TRUE = {"1", "true", "yes", "match"}
_FALSE = {"0", "false", "no", "nomatch", "no_match"}


def parse_labels(values: list[Any], name: str) -> np.ndarray:
    """0/1 labels from ints, bools or their usual spellings in CSV files."""
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        text = str(value).strip().lower()
        if isinstance(value, (bool, np.bool_)) or text in _TRUE | _FALSE:
            out[i] = int(bool(value)) if isinstance(value, (bool, np.bool_)) else int(text in _TRUE)
        else:
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if number not in (0.0, 1.0):
                raise ValueError(f"row {i}: label column '{name}' holds {value!r}; use 1 or 0")
            out[i] = int(number)
    return out


def split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, held out), stratified so both sides keep the label balance."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    everything = np.arange(len(labels))
    if holdout == 0.0:
        return everything, everything
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for value in (0, 1):
        members = rng.permutation(everything[labels == value])
        held.append(members[: round(holdout * len(members))])
    held_out = np.sort(np.concatenate(held))
    return np.setdiff1d(everything, held_out), held_out


def require_fittable(strategy: ThresholdStrategy) -> None:
    """Refuse a strategy that learns nothing from labelled pairs, saying which do."""
    if not strategy.fittable:
        raise ConfigError(
            f"threshold '{strategy.config.name}' is not fitted from data; choose one "
            "of platt, isotonic, best_f1, target_fpr, target_precision, native"
        )


def check_labels(labels: np.ndarray, label: str, pairs: int, query: str | None) -> None:
    """Refuse a label column whose length is not the number of pairs."""
    if len(labels) != pairs:
        raise ValueError(
            f"label column '{label}' has {len(labels)} values but column '{query}' "
            f"has {pairs} pairs; every pair needs exactly one label"
        )


def fit_threshold(
    strategy: ThresholdStrategy,
    similarity: str,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    holdout: float,
    seed: int,
    bins: int,
) -> CalibrationReport:
    """Fit ``strategy`` (unfitted, bound to the towers) on labelled pair ``scores`` and
    report how well it does: on held-out pairs when ``holdout`` is in (0, 1), else on
    the fitted pairs. Pairs scored NaN (skipped items) are left out and counted."""
    require_fittable(strategy)
    usable = ~np.isnan(scores)
    scores, labels = scores[usable], labels[usable]
    fit_idx, eval_idx = split(labels, holdout, seed)
    for side, idx in (("fitting", fit_idx), ("evaluation", eval_idx)):
        if len(set(labels[idx].tolist())) < 2:
            raise ValueError(
                f"the {side} pairs need both matches (1) and non-matches (0); "
                f"got {len(idx)} pairs with labels {sorted(set(labels[idx].tolist()))}"
            )
    strategy.fit(scores[fit_idx], labels[fit_idx])
    return evaluate(
        strategy,
        similarity,
        scores[eval_idx],
        labels[eval_idx],
        pairs=len(usable),
        fitted_on=len(fit_idx),
        evaluation="holdout" if holdout else "fitted pairs",
        bins=bins,
        skipped=int((~usable).sum()),
    )
