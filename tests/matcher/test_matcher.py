"""Matcher API: embedding inputs of every kind, errors per item, pair matching, composition.

The toy encoder stands in for a backbone: nothing here depends on which model it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmsim import EmbeddingResult, Matcher
from mmsim.errors import ConfigError, IncompatibleTowersError, ItemError
from mmsim.scoring.pairs import SkippedPairsWarning


@pytest.fixture(scope="module")
def matcher():
    return Matcher("toy", query="image", response="text", progress=False)


def test_mixed_list_keeps_input_order(matcher, image_paths):
    items = ["a dog", str(image_paths[0]), Image.open(image_paths[1]), "a cat", image_paths[2]]
    mixed = matcher.extract_embedding(items)
    assert mixed.shape == (5, 32) and mixed.dtype == np.float32
    assert np.allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-6)
    texts = matcher.extract_embedding(["a dog", "a cat"])
    images = matcher.extract_embedding([str(p) for p in image_paths[:3]])
    expected = np.stack([texts[0], images[0], images[1], texts[1], images[2]])
    assert np.abs(mixed - expected).max() < 1e-6


def test_other_image_forms_match_the_file(matcher, image_paths):
    path = image_paths[0]
    pil = Image.open(path).convert("RGB")
    forms = [path.read_bytes(), np.asarray(pil), pil, path]
    got = matcher.extract_embedding(forms)
    assert np.abs(got - got[0]).max() < 1e-6


def test_batching_does_not_change_results(matcher, image_paths):
    small = Matcher("toy", batch_size=2, progress=False)
    items = [str(p) for p in image_paths] + ["one", "two words", "three words here"]
    assert np.abs(small.extract_embedding(items) - matcher.extract_embedding(items)).max() < 1e-6


def test_as_tensor_gives_cpu_float32(matcher):
    out = matcher.extract_embedding(["a dog"], as_tensor=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu"


def test_columnar_inputs(matcher, image_paths):
    data = {"image": [str(p) for p in image_paths[:2]], "text": ["a", "b"]}
    both = matcher.extract_embedding(data)
    assert set(both) == {"image", "text"} and both["image"].shape == (2, 32)
    only = matcher.extract_embedding({"text": ["a", "b"]})
    assert np.array_equal(only, both["text"])
    frame = matcher.extract_embedding(pd.DataFrame(data), signature="response")
    assert np.array_equal(frame, both["text"])


def test_modality_override(matcher):
    as_text = matcher.extract_embedding(["holiday/cat.jpg"], modality="text")
    assert as_text.shape == (1, 32)
    with pytest.raises(ItemError, match="image file not found"):
        matcher.extract_embedding(["holiday/cat.jpg"])  # detected as a (missing) image


def test_missing_image_names_item_and_reason(matcher, image_paths, tmp_path):
    items = [str(image_paths[0]), str(tmp_path / "gone.jpg")]
    with pytest.raises(ItemError, match=r"item 1 \('.*gone.jpg'\): image file not found"):
        matcher.extract_embedding(items)


def test_corrupt_image_names_item_and_reason(matcher, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ItemError, match=r"item 0 .*broken.png.*not a readable image"):
        matcher.extract_embedding([bad])


def test_skip_keeps_the_other_items_work(matcher, image_paths, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"garbage")
    items = [str(image_paths[0]), str(bad), "a dog", None, str(image_paths[1])]
    result = matcher.extract_embedding(items, on_error="skip", batch_size=2)
    assert isinstance(result, EmbeddingResult)
    assert result.indices == [0, 2, 4]
    assert [(s.index, s.reason.split(" (")[0]) for s in result.skipped] == [
        (1, "not a readable image"),
        (3, "missing value"),
    ]
    clean = matcher.extract_embedding([items[0], items[2], items[4]])
    assert np.abs(result.embeddings - clean).max() < 1e-6


def test_unsupported_items_are_named(matcher):
    with pytest.raises(ItemError, match=r"item 1 \(3\): unsupported type int"):
        matcher.extract_embedding(["a dog", 3])


def test_predict_and_proba_shapes_and_consistency(matcher, image_paths):
    data = {"image": [str(p) for p in image_paths[:3]], "text": ["a dog", "a cat", "a car"]}
    scores = matcher.score_pairs(data)
    proba = matcher.predict_proba(data)
    pred = matcher.predict(data)
    assert proba.shape == (3, 2) and pred.shape == (3,) and pred.dtype == np.int64
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(pred, (scores >= 0.25).astype(int))
    assert np.array_equal(pred, (proba[:, 1] >= 0.5).astype(int))
    # the score is the cosine of the two embeddings
    img = matcher.extract_embedding(data["image"])
    txt = matcher.extract_embedding(data["text"])
    assert np.allclose(scores, (img * txt).sum(axis=1), atol=1e-6)


def test_threshold_is_configurable(matcher, image_paths):
    data = {"image": [str(image_paths[0])], "text": ["a dog"]}
    score = matcher.score_pairs(data)[0]
    below = Matcher(
        "toy",
        query="image",
        response="text",
        threshold={"name": "fixed", "value": score - 0.01},
        progress=False,
    )
    above = Matcher(
        "toy",
        query="image",
        response="text",
        threshold={"name": "fixed", "value": score + 0.01},
        progress=False,
    )
    assert below.predict(data)[0] == 1 and above.predict(data)[0] == 0
    assert below.predict_proba(data)[0, 1] > 0.5 > above.predict_proba(data)[0, 1]


def test_predict_skip_marks_bad_rows(matcher, image_paths, tmp_path):
    data = {"image": [str(image_paths[0]), str(tmp_path / "nope.jpg")], "text": ["a", "b"]}
    with pytest.raises(ItemError, match="column 'image': image file not found"):
        matcher.predict(data)
    with pytest.warns(SkippedPairsWarning, match="row 1 column 'image'"):
        pred = matcher.predict(data, on_error="skip")
    assert pred[1] == -1 and pred[0] in (0, 1)
    with pytest.warns(SkippedPairsWarning):
        proba = matcher.predict_proba(data, on_error="skip")
    assert np.isnan(proba[1]).all() and not np.isnan(proba[0]).any()


def test_pair_matching_needs_column_names():
    plain = Matcher("toy", progress=False)
    with pytest.raises(ConfigError, match="query='image'"):
        plain.predict({"image": [], "text": []})


def test_missing_column_is_named(matcher):
    with pytest.raises(KeyError, match="column 'text' not found; the data has columns"):
        matcher.predict({"image": ["x.jpg"], "caption": ["a"]})


def test_towers_from_different_encoders_must_share_dimension(outside_plugin):
    with pytest.raises(
        IncompatibleTowersError,
        match=r"image tower 'outside:outside-v1' .* 8 .* text tower 'toy:random' .* 32",
    ):
        Matcher("toy", image_encoder="outside")


def test_towers_from_different_encoders_compose(outside_plugin, image_paths):
    mixed = Matcher(
        encoder="outside",
        text_encoder={"name": "outside", "dim": 8, "checkpoint": "other"},
        progress=False,
    )
    assert (
        mixed.image_tower.name == "outside:outside-v1" and mixed.text_tower.name == "outside:other"
    )
    declared = {"name": "outside", "space": "space-a"}
    with pytest.raises(IncompatibleTowersError, match=r"'space-a' but text tower .* 'space-b'"):
        Matcher(encoder=declared, text_encoder={"name": "outside", "space": "space-b"})


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match=r"encoder 'toy'.*no_such_option"):
        Matcher("toy", encoder_options={"no_such_option": 1})
    with pytest.raises(ConfigError, match="unknown dtype 'float8'"):
        Matcher("toy", dtype="float8")
    with pytest.raises(ValueError, match="on_error must be one of"):
        Matcher("toy", on_error="ignore")
