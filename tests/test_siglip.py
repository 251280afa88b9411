"""The SigLIP plugin: parity with SiglipModel, fixed-length padding, scale and bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, SiglipModel

from mmsim import Matcher
from mmsim.embedding import TruncationWarning
from mmsim.errors import CheckpointNotFoundError

from .conftest import hub_cache

TEXTS = ["a red dog", "a cat", "a blue car"]  # short: the tiny tokenizer is nearly per-letter


@pytest.fixture(scope="module")
def reference(tiny_siglip_dir):
    return SiglipModel.from_pretrained(tiny_siglip_dir).eval(), AutoProcessor.from_pretrained(
        tiny_siglip_dir
    )


@pytest.fixture(scope="module")
def matcher(tiny_siglip_dir):
    return Matcher(
        "siglip", checkpoint=str(tiny_siglip_dir), query="image", response="text", progress=False
    )


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_embeddings_equal_siglip_model(matcher, reference, image_paths):
    model, processor = reference
    images = [Image.open(p).convert("RGB") for p in image_paths]
    tokens = processor(text=TEXTS, padding="max_length", truncation=True, return_tensors="pt")
    with torch.no_grad():
        img = F.normalize(
            _features(model.get_image_features(**processor(images=images, return_tensors="pt"))),
            dim=-1,
        )
        txt = F.normalize(_features(model.get_text_features(**tokens)), dim=-1)
    assert (
        np.abs(matcher.extract_embedding([str(p) for p in image_paths]) - img.numpy()).max() < 1e-5
    )
    assert np.abs(matcher.extract_embedding(TEXTS) - txt.numpy()).max() < 1e-5


def test_texts_are_padded_to_the_trained_length(matcher):
    batch = matcher.text_tower.tokenize(["a dog"])
    assert batch.inputs["input_ids"].shape == (1, 16)


def test_scale_and_bias_give_siglips_own_pair_probability(matcher, reference, image_paths):
    model, processor = reference
    assert matcher.text_tower.logit_scale == pytest.approx(10.0)
    assert matcher.text_tower.logit_bias == pytest.approx(-10.0)
    images = [Image.open(p).convert("RGB") for p in image_paths[:2]]
    inputs = processor(text=TEXTS[:2], images=images, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits_per_image.diagonal()).numpy()
    cos = matcher.score_pairs({"image": [str(p) for p in image_paths[:2]], "text": TEXTS[:2]})
    own = 1 / (1 + np.exp(-(matcher.text_tower.logit_scale * cos + matcher.text_tower.logit_bias)))
    assert np.abs(own - expected).max() < 1e-5


def test_truncation_is_reported(matcher):
    with pytest.warns(TruncationWarning, match="1 of 2 texts .* 16 tokens"):
        matcher.extract_embedding(["a dog", "a photo of a red dog on the beach " * 4])


def test_hub_id_from_cache_and_offline_error(tiny_siglip_dir, tmp_path, monkeypatch, matcher):
    cache = hub_cache(tmp_path / "hub", "acme/tiny-siglip", tiny_siglip_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = Matcher(
        "siglip",
        checkpoint="acme/tiny-siglip",
        encoder_options={"cache_dir": str(cache)},
        progress=False,
    )
    assert np.abs(cached.extract_embedding(TEXTS) - matcher.extract_embedding(TEXTS)).max() == 0
    with pytest.raises(CheckpointNotFoundError, match="'google/siglip-base-patch16-224'"):
        Matcher("siglip", encoder_options={"cache_dir": str(tmp_path / "empty")})


def test_a_non_siglip_checkpoint_is_refused(tiny_clip_dir):
    with pytest.raises(Exception, match="is a 'clip' model; this encoder loads siglip and siglip2"):
        Matcher("siglip", checkpoint=str(tiny_clip_dir))


def test_siglip2_embeddings_equal_siglip2_model(tmp_path, image_paths):
    from transformers import AutoProcessor, Siglip2Model

    from mmsim_siglip.testing import save_random_siglip2

    checkpoint = save_random_siglip2(tmp_path / "siglip2")
    matcher = Matcher("siglip", checkpoint=str(checkpoint), progress=False)
    model = Siglip2Model.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)
    images = [Image.open(p).convert("RGB") for p in image_paths]
    texts = ["a dog", "a red car"]
    pixels = processor.image_processor(images=images, return_tensors="pt")  # patches + mask
    tokens = processor.tokenizer(texts, padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        img = F.normalize(_features(model.get_image_features(**pixels)), dim=-1).numpy()
        txt = F.normalize(_features(model.get_text_features(**tokens)), dim=-1).numpy()
    assert np.abs(matcher.extract_embedding([str(p) for p in image_paths]) - img).max() < 1e-5
    assert np.abs(matcher.extract_embedding(texts) - txt).max() < 1e-5
    assert matcher.text_tower.logit_bias == pytest.approx(-10.0)
