"""Similarity and thresholding strategies on synthetic scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsim.plugin.loading import get_registry
from mmsim.plugin.towers import Runtime, Tower
from mmsim.scoring import calibration, metrics
from mmsim.scoring.thresholds import NotFittedError

# a small sample whose operating points can be worked out by hand
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
LABELS = np.array([1, 1, 0, 1, 0, 0])


class FakeTower(Tower):
    modality = "text"


def tower(scale=None, bias=None) -> FakeTower:
    return FakeTower(
        name="t", embedding_dim=2, runtime=Runtime(), logit_scale=scale, logit_bias=bias
    )


def make(kind: str, name: str, bind_to=(None, None), **options):
    component = get_registry().get(kind, name)
    strategy = component.factory(component.make_config(options))
    if kind == "similarity":
        strategy.bind(*bind_to)
    else:
        strategy.bind(*bind_to, make("similarity", "cosine"))
    return strategy


def gaussians(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Matches score N(+1, 1), non-matches N(-1, 1), equal priors: P(match|s) = sigmoid(2s)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return rng.normal(np.where(labels == 1, 1.0, -1.0), 1.0), labels


def test_platt_recovers_the_true_posterior_of_two_gaussians():
    scores, labels = gaussians()
    a, b = calibration.fit_logistic(scores, labels)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(0.0, abs=0.05)
    platt = make("threshold", "platt")
    platt.fit(scores, labels)
    grid = np.linspace(-3, 3, 13)
    assert np.abs(platt.proba(grid) - 1 / (1 + np.exp(-2 * grid))).max() < 0.02
    assert platt.threshold == pytest.approx(0.0, abs=0.05)


def test_isotonic_is_monotone_and_matches_step_frequencies():
    scores = np.repeat(np.arange(10.0), 100)
    labels = np.concatenate([np.r_[np.ones(10 * i), np.zeros(100 - 10 * i)] for i in range(10)])
    x, y = calibration.fit_isotonic(scores, labels.astype(int))
    assert np.allclose(y, np.arange(10) / 10) and np.allclose(x, np.arange(10.0))
    iso = make("threshold", "isotonic")
    iso.fit(*gaussians(4000))
    p = iso.proba(np.linspace(-4, 4, 100))
    assert (np.diff(p) >= 0).all() and iso.threshold == pytest.approx(0.0, abs=0.25)
    cut = iso.threshold
    assert iso.proba(np.array([cut]))[0] == pytest.approx(0.5)  # the cut is where P = 0.5
    assert iso.decide(np.array([cut - 1e-6, cut + 1e-6])).tolist() == [0, 1]


def test_operating_points_on_a_hand_worked_sample():
    # F1 by threshold: .9->.5 .8->.8 .7->.667 .6->.857 .5->.75 .4->.667; the cut is
    # halfway between the lowest accepted (.6) and the highest rejected score (.5)
    assert calibration.best_f1_threshold(SCORES, LABELS) == pytest.approx(0.55)
    # FPR by threshold: .9,.8->0  .7,.6->1/3  .5->2/3  .4->1
    assert calibration.threshold_for_fpr(SCORES, LABELS, 1 / 3) == 0.6
    assert calibration.threshold_for_fpr(SCORES, LABELS, 0.0) == 0.8
    # precision by threshold: .9,.8->1  .7->2/3  .6->3/4  .5->3/5
    assert calibration.threshold_for_precision(SCORES, LABELS, 0.75) == 0.6
    assert calibration.threshold_for_precision(SCORES, LABELS, 1.0) == 0.8
    for name, options, expected in (
        ("best_f1", {}, 0.55),
        ("target_fpr", {"fpr": 0.0}, 0.8),
        ("target_precision", {"precision": 0.75}, 0.6),
    ):
        strategy = make("threshold", name, **options)
        strategy.fit(SCORES, LABELS)
        assert strategy.threshold == pytest.approx(expected)
        assert strategy.decide(SCORES).tolist() == (expected <= SCORES).astype(int).tolist()
        assert ((strategy.proba(SCORES) >= 0) & (strategy.proba(SCORES) <= 1)).all()


def test_best_f1_cut_lies_in_the_middle_of_the_gap_between_the_classes():
    """Separable pairs: the cut is halfway between the highest negative and the lowest
    positive, so a positive a little below every fitted one still matches."""
    scores = np.array([0.95, 0.9, 0.8, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    cut = calibration.best_f1_threshold(scores, labels)
    assert cut == pytest.approx(0.6)
    strategy = make("threshold", "best_f1")
    strategy.fit(scores, labels)
    assert strategy.decide(np.array([0.7, 0.5])).tolist() == [1, 0]
    assert strategy.decide(scores).tolist() == labels.tolist()
    everything = calibration.best_f1_threshold(np.array([0.5, 0.4]), np.array([1, 1]))
    assert everything == 0.4  # all accepted: no rejected score to be halfway to


def test_native_probability_with_and_without_a_model_bias():
    siglip = make("threshold", "native", (tower(10.0, -10.0), None))
    assert siglip.proba(np.array([1.0]))[0] == pytest.approx(0.5)
    assert siglip.threshold == pytest.approx(1.0)
    with pytest.raises(Exception, match="has its own logit bias"):
        siglip.fit(SCORES, LABELS)
    clip = make("threshold", "native", (tower(100.0), None))
    with pytest.raises(NotFittedError, match="no native pair probability"):
        clip.proba(SCORES)
    rng = np.random.default_rng(1)  # labels drawn from sigmoid(100 * s - 25): bias -25
    scores = rng.uniform(0.1, 0.4, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-(100 * scores - 25)))).astype(int)
    clip.fit(scores, labels)
    assert clip.state()["bias"] == pytest.approx(-25.0, abs=1.0)
    logit = make("similarity", "logit", (tower(10.0, -10.0), None))
    identity = (
        get_registry()
        .get("threshold", "native")
        .factory(get_registry().get("threshold", "native").make_config({}))
    )
    identity.bind(tower(10.0, -10.0), None, logit)
    assert identity.proba(np.array([0.0]))[0] == pytest.approx(0.5)  # scores are logits


def test_autogluon_rule_and_fixed():
    ag = make("threshold", "autogluon")
    assert ag.proba(np.array([-1.0, 0.0, 0.5])).tolist() == [0.0, 0.5, 0.75]
    assert ag.decide(np.array([-0.01, 0.0])).tolist() == [0, 1]
    fixed = make("threshold", "fixed", (tower(50.0), None), value=0.3)
    assert fixed.proba(np.array([0.3]))[0] == pytest.approx(0.5)
    assert fixed.sharpness == 50.0
    with pytest.raises(Exception, match="nothing to fit"):
        fixed.fit(SCORES, LABELS)


@pytest.mark.parametrize("name", ["platt", "isotonic", "best_f1", "target_fpr", "target_precision"])
def test_fitted_state_round_trips_and_is_required(name):
    strategy = make("threshold", name)
    with pytest.raises(NotFittedError):
        strategy.proba(SCORES)
    scores, labels = gaussians(500)
    strategy.fit(scores, labels)
    fresh = make("threshold", name)
    fresh.load_state(__import__("json").loads(__import__("json").dumps(strategy.state())))
    assert np.array_equal(fresh.proba(scores), strategy.proba(scores))
    assert np.array_equal(fresh.decide(scores), strategy.decide(scores))


def test_similarity_strategies():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    assert make("similarity", "cosine").pairwise(a, b).item() == pytest.approx(24 / 25)
    assert make("similarity", "dot").pairwise(a, b).item() == pytest.approx(24.0)
    logit = make("similarity", "logit", (tower(10.0, -10.0), None))
    assert logit.pairwise(a, b).item() == pytest.approx(10 * 24 / 25 - 10)
    assert logit.matrix(a, b).item() == pytest.approx(10 * 24 / 25 - 10)
    clip_logit = make("similarity", "logit", (tower(100.0), None))
    assert clip_logit.pairwise(a, a).item() == pytest.approx(100.0)  # no bias: 0
    with pytest.raises(Exception, match="needs a logit scale"):
        make("similarity", "logit", (tower(), None))


def test_metrics_match_hand_computed_values():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    labels = rng.integers(0, 2, 200)
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert metrics.roc_auc(labels, scores) == pytest.approx(brute)
    assert metrics.brier_score(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(0.1)
    half = np.array([1, 0] * 50)
    assert metrics.expected_calibration_error(half, np.full(100, 0.9)) == pytest.approx(0.4)
    c = metrics.confusion(LABELS, (SCORES >= 0.6).astype(int))
    assert (c.tp, c.fp, c.tn, c.fn) == (3, 1, 2, 0)
    assert c.f1 == pytest.approx(6 / 7) and c.false_positive_rate == pytest.approx(1 / 3)
