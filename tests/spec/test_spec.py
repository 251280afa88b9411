"""The typed spec behind a Matcher: validated once, frozen, and replaced (never edited)
when a matcher is calibrated, fine-tuned or given new columns."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mmsim import Matcher, MatcherSpec
from mmsim.errors import ConfigError, IncompatibleTowersError, UnknownComponentError
from mmsim.spec.assembly import Assembly
from mmsim.spec.document import read_spec, save_spec


def test_create_validates_every_part_and_fills_defaults():
    spec = MatcherSpec.create("toy", threshold={"name": "fixed", "value": 0.3}, dtype="bf16")
    assert spec.image_encoder == spec.text_encoder
    assert spec.image_encoder.as_dict() == {
        "name": "toy",
        "checkpoint": "random",
        "space": None,
        "seed": 0,
        "dim": 32,
    }
    assert spec.threshold.options["value"] == 0.3 and spec.threshold.options["sharpness"] is None
    assert spec.runtime.dtype == "bfloat16" and spec.runtime.on_error == "raise"
    with pytest.raises(ConfigError, match="invalid options for encoder 'toy'"):
        MatcherSpec.create("toy", encoder_options={"dim": "wide"})
    with pytest.raises(UnknownComponentError, match=r"no threshold named 'bestf1'.*best_f1"):
        MatcherSpec.create("toy", threshold="bestf1")
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        MatcherSpec.create("toy", batch_size=0)


def test_a_spec_and_its_options_cannot_be_changed_in_place():
    spec = MatcherSpec.create("toy", threshold="best_f1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.columns = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.image_encoder.options["dim"] = 8  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.threshold_state["threshold"] = 0.5  # type: ignore[index]


def test_calibrating_gives_the_matcher_a_new_spec_and_keeps_its_towers(labelled_pairs):
    matcher = Matcher("toy", query="query", response="response", threshold="best_f1")
    before = matcher.spec
    towers = matcher.image_tower
    matcher.calibrate(labelled_pairs)
    assert before.threshold_state == {}  # the old spec is untouched
    assert matcher.spec is not before and matcher.spec.threshold_state["threshold"] is not None
    assert matcher.spec.replace(threshold_state=before.threshold_state) == before
    assert matcher.image_tower is towers  # same encoder and runtime: no model reload
    rebuilt = Matcher.from_spec(matcher.spec)
    np.testing.assert_array_equal(rebuilt.predict(labelled_pairs), matcher.predict(labelled_pairs))


def test_columns_set_on_a_matcher_are_a_new_spec():
    matcher = Matcher("toy")
    spec = matcher.spec
    matcher.query, matcher.response = "image", "caption"
    assert (spec.columns.query, spec.columns.response) == (None, None)
    assert (matcher.spec.columns.query, matcher.spec.columns.response) == ("image", "caption")


def test_the_saved_document_reads_back_as_the_same_spec(tmp_path, labelled_pairs):
    matcher = Matcher(
        "toy", query="query", response="response", threshold="platt", batch_size=7, progress=False
    )
    matcher.calibrate(labelled_pairs)
    save_spec(matcher.spec, tmp_path)
    document = json.loads((tmp_path / "matcher.json").read_text())
    assert document["image_encoder"] == {"name": "toy", "space": None, "seed": 0, "dim": 32}
    assert document["runtime"] == {"device": "cpu", "dtype": "float32", "batch_size": 7}
    assert read_spec(tmp_path, progress=False) == matcher.spec
    assert read_spec(tmp_path, batch_size=3).runtime.batch_size == 3


def test_an_assembly_builds_one_model_for_one_encoder_and_checks_the_spaces():
    assembly = Assembly.build(MatcherSpec.create("toy"))
    assert assembly.image.model is assembly.text.model
    assert assembly.sources["image"] is assembly.sources["text"]
    declared = MatcherSpec.create({"name": "toy", "space": "a"}, text_encoder={"name": "toy"})
    assert Assembly.build(declared).space == "a"
    with pytest.raises(IncompatibleTowersError, match=r"space 'a' but text .* declares 'b'"):
        Assembly.build(
            MatcherSpec.create(
                {"name": "toy", "space": "a"}, text_encoder={"name": "toy", "space": "b"}
            )
        )
