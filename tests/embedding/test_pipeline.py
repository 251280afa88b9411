"""The one embedding pipeline: every item decoded or tokenised once, failures recorded as
they are found, the first bad item in input order raised, the rest's work kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mmsim.embedding.loader as loader
from mmsim import Matcher
from mmsim.embedding.batch import ItemBatch
from mmsim.embedding.pipeline import embed
from mmsim.embedding.results import EmbeddingResult, ErrorPolicy
from mmsim.errors import ConfigError, ItemError

SURROGATE = "bad \ud800 text"


@pytest.fixture
def counted(monkeypatch, image_paths):
    """A toy matcher whose decoding, tokenising, preprocessing and encoding are counted."""
    matcher = Matcher("toy", batch_size=2, progress=False)
    calls = {"decode": [], "tokenize": [], "preprocess": 0, "encode_image": 0, "encode_text": 0}
    real_load = loader.load_image

    def load(item):
        calls["decode"].append(item)
        return real_load(item)

    monkeypatch.setattr(loader, "load_image", load)
    image, text = matcher.image_tower, matcher.text_tower
    real = {
        "tokenize": text.tokenize,
        "preprocess": image.preprocess,
        "encode_image": image.encode,
        "encode_text": text.encode,
    }

    def tokenize(texts):
        calls["tokenize"] += list(texts)
        return real["tokenize"](texts)

    def counter(name):
        def call(arg):
            calls[name] += 1
            return real[name](arg)

        return call

    monkeypatch.setattr(text, "tokenize", tokenize)
    monkeypatch.setattr(image, "preprocess", counter("preprocess"))
    monkeypatch.setattr(image, "encode", counter("encode_image"))
    monkeypatch.setattr(text, "encode", counter("encode_text"))
    return matcher, calls, [str(p) for p in image_paths]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_each_item_is_decoded_and_tokenised_once(counted, on_error):
    matcher, calls, images = counted
    texts = ["a red circle", "two blue squares on the left", "a dog"]
    items = [images[0], texts[0], images[1], texts[1], images[2], texts[2]]
    out = matcher.extract_embedding(items, on_error=on_error)
    embeddings = out.embeddings if on_error == "skip" else out
    assert embeddings.shape == (6, 32)
    assert sorted(calls["decode"]) == sorted(images[:3])
    assert sorted(calls["tokenize"]) == sorted(texts)
    alone = matcher.extract_embedding(texts[1], modality="text")
    np.testing.assert_allclose(embeddings[3], alone[0], atol=1e-6)


@pytest.mark.parametrize(
    ("items", "first"),
    [
        (["IMG0", SURROGATE, "missing.png", None], 1),  # a text found before any image
        (["IMG0", "missing.png", SURROGATE, None], 1),  # an image before a bad text
        (["a dog", None, "missing.png"], 1),  # found while detecting
        (["IMG0", "IMG1", "IMG2", "a dog", "gone.jpg"], 4),  # the last item
    ],
)
def test_raise_mode_raises_the_first_bad_item_and_stops_there(counted, items, first):
    matcher, calls, images = counted
    items = [images[int(i[3])] if isinstance(i, str) and i.startswith("IMG") else i for i in items]
    with pytest.raises(ItemError) as info:
        matcher.extract_embedding(items)
    assert info.value.index == first
    later = {i for i, item in enumerate(items) if i > first}
    assert not [item for item in calls["decode"] if items.index(item) in later]
    assert not [t for t in calls["tokenize"] if items.index(t) in later]
    assert calls["encode_text"] == 0  # texts are encoded only when nothing is wrong


def test_images_before_a_known_failure_are_decoded_but_not_encoded(counted):
    matcher, calls, images = counted
    with pytest.raises(ItemError, match="item 3"):
        matcher.extract_embedding([images[0], images[1], images[2], SURROGATE])
    assert sorted(calls["decode"]) == sorted(images[:3])  # an earlier bad image would win
    assert calls["encode_image"] == 0


def test_skip_mode_keeps_every_other_item_exact(counted, tmp_path):
    matcher, _, images = counted
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items = [images[0], None, "a dog", str(broken), SURROGATE, images[1]]
    result = matcher.extract_embedding(items, on_error="skip")
    assert isinstance(result, EmbeddingResult)
    assert result.indices == [0, 2, 5]
    assert [s.index for s in result.skipped] == [1, 3, 4]
    assert "not a readable image" in result.skipped[1].reason
    alone = matcher.extract_embedding([images[0], "a dog", images[1]])
    np.testing.assert_allclose(result.embeddings, alone, atol=1e-6)


def test_a_bad_preprocess_is_found_per_image_without_preprocessing_the_rest_twice(
    counted, monkeypatch
):
    matcher, _, images = counted
    tower = matcher.image_tower
    preprocess = tower.preprocess
    batches = []

    def picky(batch):
        batches.append(len(batch))
        if any(image.size[0] == 1 for image in batch):
            raise ValueError("this tower refuses 1-pixel-wide images")
        return preprocess(batch)

    monkeypatch.setattr(tower, "preprocess", picky)
    thin = Image.new("RGB", (1, 4), "red")
    result = matcher.extract_embedding([images[0], thin], on_error="skip")
    assert result.indices == [0]
    assert "preprocessing failed: this tower refuses" in result.skipped[0].reason
    # the batch once, then each image alone; the good image's inputs are reused
    assert batches == [2, 1, 1]
    np.testing.assert_allclose(
        result.embeddings[0], matcher.extract_embedding(images[0])[0], atol=1e-6
    )


def test_the_pipeline_takes_a_detected_batch_and_an_error_policy(image_paths):
    matcher = Matcher("toy", progress=False)
    batch = ItemBatch.detect([str(image_paths[0]), "a dog", 3.5])
    assert (batch.images, batch.texts, [f.index for f in batch.failures]) == ([0], [1], [2])
    towers = matcher.assembly.towers()
    result = embed(towers, batch, policy=ErrorPolicy.SKIP, batch_size=4, progress=False)
    assert result.indices == [0, 1] and result.embeddings.dtype == np.float32
    assert ErrorPolicy.of("skip") is ErrorPolicy.SKIP and ErrorPolicy.SKIP == "skip"
    with pytest.raises(ConfigError, match=r"on_error must be one of 'raise', 'skip'; got 'ignore'"):
        ErrorPolicy.of("ignore")
