"""Metrics for scored, labelled pairs: ranking quality, decisions, and calibration.

Plain numpy, so that the numbers in a calibration report can be checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    v = np.asarray(values, dtype=np.float64)
    if y.shape != v.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and values {v.shape} must be equal-length 1-D arrays")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(np.int64), v


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2."""
    y, s = _check(labels, scores)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    start = 0
    while start < len(s):  # average ranks over ties
        end = start
        while end + 1 < len(s) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


@dataclass(frozen=True)
class Confusion:
    """Counts and rates of 0/1 decisions against labels."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / (self.tp + self.fp + self.tn + self.fn)


def confusion(labels: np.ndarray, decisions: np.ndarray) -> Confusion:
    y, d = _check(labels, decisions)
    d = d.astype(np.int64)
    return Confusion(
        tp=int(((d == 1) & (y == 1)).sum()),
        fp=int(((d == 1) & (y == 0)).sum()),
        tn=int(((d == 0) & (y == 0)).sum()),
        fn=int(((d == 0) & (y == 1)).sum()),
    )


def threshold_sweep(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Counts for every candidate threshold "match if score >= t", t over the distinct scores.

    Returned arrays are aligned: ``thresholds`` descending, and ``tp``/``fp`` the counts
    of positives/negatives at or above each.
    """
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    last_of_value = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    return {
        "thresholds": s_sorted[last_of_value],
        "tp": tp[last_of_value],
        "fp": fp[last_of_value],
        "positives": np.int64(y.sum()),
        "negatives": np.int64(len(y) - y.sum()),
    }


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between P(match) and the 0/1 label (lower is better)."""
    y, p = _check(labels, probabilities)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_probability: float
    fraction_positive: float


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins of P(match) with the observed fraction of matches in each."""
    y, p = _check(labels, probabilities)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        out.append(
            ReliabilityBin(
                float(edges[b]),
                float(edges[b + 1]),
                count,
                float(p[mask].mean()) if count else float("nan"),
                float(y[mask].mean()) if count else float("nan"),
            )
        )
    return out


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """Count-weighted mean |mean P(match) - observed match rate| over equal-width bins."""
    table = reliability_bins(labels, probabilities, bins)
    total = sum(b.count for b in table)
    return float(
        sum(b.count * abs(b.mean_probability - b.fraction_positive) for b in table if b.count)
        / total
    )
