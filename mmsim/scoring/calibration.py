"""Fitting P(match | score) and choosing thresholds from labelled pairs.

The maths behind the fittable thresholding strategies, kept free of any model code:
logistic (Platt) and isotonic (pool-adjacent-violators) calibration, and threshold
choices by F1, false-positive rate and precision.
"""

from __future__ import annotations

import numpy as np

from mmsim.scoring.metrics import _check, threshold_sweep


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def fit_logistic(
    scores: np.ndarray, labels: np.ndarray, *, slope: float | None = None, iterations: int = 100
) -> tuple[float, float]:
    """Fit P(match) = sigmoid(a * score + b) by Newton's method; returns (a, b).

    Uses Platt's smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2)), which keeps the
    fit finite on separable data. With ``slope`` given, only the intercept is fitted.
    Each Newton step is halved until the log-loss decreases, so steep slopes (CLIP's
    logit scale is 100) converge from any start.
    """
    y, s = _check(labels, scores)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        raise ValueError("calibration needs both matching (1) and non-matching (0) pairs")
    target = np.where(y == 1, (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0))

    def loss(a: float, b: float) -> float:
        z = a * s + b
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    a = float(slope) if slope is not None else 1.0
    b = float(np.log((pos + 1.0) / (neg + 1.0)) - a * s.mean())  # right base rate at the mean
    current = loss(a, b)
    for _ in range(iterations):
        p = sigmoid(a * s + b)
        w = np.maximum(p * (1.0 - p), 1e-12)
        g_b = float(np.sum(p - target))
        if slope is not None:
            step = np.array([0.0, g_b / float(np.sum(w))])
        else:
            g_a = float(np.sum((p - target) * s))
            h = np.array([[np.sum(w * s * s), np.sum(w * s)], [np.sum(w * s), np.sum(w)]])
            step = np.linalg.solve(h + np.eye(2) * 1e-9, np.array([g_a, g_b]))
        t = 1.0
        while t > 1e-10 and loss(a - t * step[0], b - t * step[1]) > current:
            t /= 2.0
        a, b = a - t * float(step[0]), b - t * float(step[1])
        previous, current = current, loss(a, b)
        if previous - current < 1e-12 * max(1.0, abs(previous)):
            break
    return a, b


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing P(match | score) by pool-adjacent-violators.

    Returns knots (x, y): the mean score and match rate of each pooled block; predict
    with :func:`isotonic_predict` (linear between knots, flat outside).
    """
    y, s = _check(labels, scores)
    order = np.argsort(s, kind="mergesort")
    values, starts = np.unique(s[order], return_index=True)  # equal scores form one block
    sums = np.add.reduceat(y[order].astype(np.float64), starts)
    counts = np.diff(np.r_[starts, len(s)]).astype(np.float64)
    blocks: list[list[float]] = []  # [sum of labels, count, sum of scores]
    for value, total, count in zip(values, sums, counts, strict=True):
        blocks.append([total, count, value * count])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][i] + last[i] for i in range(3)]
    knots_x = np.array([b[2] / b[1] for b in blocks])
    knots_y = np.array([b[0] / b[1] for b in blocks])
    return knots_x, knots_y


def isotonic_predict(knots_x: np.ndarray, knots_y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.interp(np.asarray(scores, dtype=np.float64), knots_x, knots_y)


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold ("match if score >= t") with the highest F1; ties: higher t.

    The cut is placed halfway between the lowest score it accepts and the highest
    score it rejects, as decision trees place a split. Every fitted pair is decided
    the same as at the accepted score itself, but new pairs in the gap are not all
    rejected: cutting at the lowest accepted positive puts the threshold at the edge
    of the positives, and positives from a shifted distribution (new classes, new
    images) that score a little lower are lost although the negatives are far below.
    """
    sweep = threshold_sweep(labels, scores)
    f1 = 2 * sweep["tp"] / (sweep["tp"] + sweep["fp"] + sweep["positives"])
    best = int(np.argmax(f1))
    cut = float(sweep["thresholds"][best])
    if best + 1 == len(sweep["thresholds"]):
        return cut  # everything is accepted: no rejected score to be halfway to
    rejected = float(sweep["thresholds"][best + 1])
    halfway = (cut + rejected) / 2
    return halfway if rejected < halfway < cut else cut


def threshold_for_fpr(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The lowest threshold whose false-positive rate is at most ``target``."""
    sweep = threshold_sweep(labels, scores)
    if sweep["negatives"] == 0:
        raise ValueError("a false-positive rate needs non-matching (0) pairs")
    fpr = sweep["fp"] / sweep["negatives"]
    ok = np.nonzero(fpr <= target)[0]
    if len(ok) == 0:  # even the highest score lets too many through: match nothing
        return float(np.nextafter(sweep["thresholds"][0], np.inf))
    return float(sweep["thresholds"][ok[-1]])


def threshold_for_precision(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The lowest threshold whose precision is at least ``target`` (most recall)."""
    sweep = threshold_sweep(labels, scores)
    precision = sweep["tp"] / (sweep["tp"] + sweep["fp"])
    ok = np.nonzero(precision >= target)[0]
    if len(ok) == 0:
        raise ValueError(f"no threshold reaches precision {target} on these pairs")
    return float(sweep["thresholds"][ok[-1]])
