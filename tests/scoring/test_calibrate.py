"""Fitting thresholds through a real (toy) model, saving and loading the matcher."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher
from mmsim.errors import ConfigError
from mmsim.scoring.thresholds import NotFittedError


def matcher_for(threshold="platt", **options):
    return Matcher(
        "toy",
        query="query",
        response="response",
        threshold=threshold,
        progress=False,
        **options,
    )


@pytest.mark.parametrize(
    "threshold", ["platt", "isotonic", "best_f1", {"name": "target_fpr", "fpr": 0.1}]
)
def test_calibrate_fits_and_reports(labelled_pairs, threshold):
    matcher = matcher_for(threshold)
    report = matcher.calibrate(labelled_pairs, label="label", holdout=0.25, seed=3)
    assert report.pairs == 48 and report.evaluation == "holdout"
    assert report.fitted_on + report.evaluated_on == 48 and report.evaluated_on == 12
    assert report.roc_auc > 0.95  # copies outscore other scenes
    assert report.f1 > 0.6 and 0 <= report.ece <= 1 and 0 <= report.brier <= 1
    assert report.threshold is not None and report.state
    assert sum(b.count for b in report.bins) == 12
    decisions = matcher.predict(labelled_pairs)
    assert decisions.shape == (48,) and set(decisions.tolist()) <= {0, 1}


def test_native_fits_only_the_bias_for_a_model_without_one(labelled_pairs):
    matcher = matcher_for("native")
    report = matcher.calibrate(labelled_pairs)
    assert set(report.state) == {"bias"}  # the slope stays the model's logit scale
    p = matcher.predict_proba(labelled_pairs)[:, 1]
    scale = matcher.image_tower.logit_scale
    scores = matcher.score_pairs(labelled_pairs)
    assert np.allclose(p, 1 / (1 + np.exp(-(scale * scores + report.state["bias"]))))
    assert p.mean() == pytest.approx(
        (16 + 1) / (16 + 2) * 16 / 48 + 1 / (32 + 2) * 32 / 48, abs=1e-3
    )


def test_unfitted_and_unfittable_strategies_say_what_to_do(labelled_pairs):
    with pytest.raises(NotFittedError, match="calibrate"):
        matcher_for("platt").predict_proba(labelled_pairs)
    with pytest.raises(ConfigError, match="not fitted from data; choose one of platt"):
        matcher_for("fixed").calibrate(labelled_pairs)
    bad = {**labelled_pairs, "label": ["yes"] * 47 + ["maybe"]}
    with pytest.raises(ValueError, match="row 47: label column 'label' holds 'maybe'"):
        matcher_for().calibrate(bad)
    one_class = {k: v[:1] for k, v in labelled_pairs.items()}
    with pytest.raises(ValueError, match="need both matches"):
        matcher_for().calibrate(one_class)


def test_save_and_load_round_trip_offline(labelled_pairs, tmp_path):
    weights = tmp_path / "weights"  # a checkpoint folder, as a fine-tuning run writes one
    Matcher("toy").assembly.sources["image"].trainable.save(weights)
    matcher = matcher_for(
        {"name": "target_precision", "precision": 0.9},
        similarity="logit",
        encoder_options={"checkpoint": str(weights)},
    )
    matcher.calibrate(labelled_pairs)
    folder = matcher.save(tmp_path / "saved").parent
    document = json.loads((folder / "matcher.json").read_text())
    assert document["threshold"] == {"name": "target_precision", "precision": 0.9}
    assert document["similarity"]["name"] == "logit"
    assert set(document["threshold_state"]) == {"a", "b", "threshold"}
    assert document["image_encoder"]["checkpoint"] == str(weights)
    assert [p.name for p in folder.iterdir()] == ["matcher.json"]  # JSON only, no pickles
    probe = (
        "import json, sys; from mmsim import Matcher; "
        "data = json.loads(sys.stdin.read()); m = Matcher.load(sys.argv[1], progress=False); "
        "print(json.dumps(m.predict_proba(data)[:, 1].tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(folder)],
        input=json.dumps(labelled_pairs),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert np.allclose(json.loads(out.stdout), matcher.predict_proba(labelled_pairs)[:, 1])
    loaded = Matcher.load(folder, progress=False, response="other")
    assert loaded.response == "other" and loaded.threshold.threshold == matcher.threshold.threshold


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved matcher"):
        Matcher.load(tmp_path)
    (tmp_path / "matcher.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ConfigError, match="not an mmsim matcher"):
        Matcher.load(tmp_path)


def test_reliability_diagram_is_written(labelled_pairs, tmp_path):
    report = matcher_for("isotonic").calibrate(labelled_pairs)
    path = report.write_reliability_png(tmp_path / "reliability.png", size=300)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (300, 300)
        assert len(image.getcolors(maxcolors=1 << 16)) > 3  # something was drawn
    saved = json.loads(report.save(tmp_path / "report.json").read_text())
    assert saved["strategy"] == "isotonic" and len(saved["bins"]) == 10
