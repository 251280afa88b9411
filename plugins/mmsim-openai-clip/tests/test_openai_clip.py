"""The OpenAI CLIP plugin, loaded through its entry point from a save_pretrained directory."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, CLIPModel

from mmsim import Matcher
from mmsim.embedding.results import TruncationWarning
from mmsim.errors import CheckpointNotFoundError
from mmsim.plugin.testing import hub_cache

CAPTIONS = [
    "A cheetah chases prey on across a field.",
    "a dog",
    "There is a carriage in the image.",
    "A man is riding a white horse on an enclosed ground.",
    "",
]


@pytest.fixture(scope="module")
def reference(tiny_clip_dir):
    """transformers' own model and processor for the same checkpoint."""
    return CLIPModel.from_pretrained(tiny_clip_dir).eval(), AutoProcessor.from_pretrained(
        tiny_clip_dir
    )


@pytest.fixture(scope="module")
def matcher(tiny_clip_dir):
    return Matcher("openai_clip", checkpoint=str(tiny_clip_dir), progress=False)


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_image_embeddings_equal_clipmodel(matcher, reference, image_paths):
    model, processor = reference
    images = [Image.open(p).convert("RGB") for p in image_paths]
    with torch.no_grad():
        expected = _features(
            model.get_image_features(**processor(images=images, return_tensors="pt"))
        )
    expected = F.normalize(expected, dim=-1).numpy()
    got = matcher.extract_embedding([str(p) for p in image_paths])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5


def test_text_embeddings_equal_clipmodel_padded_to_77(matcher, reference):
    model, processor = reference
    tokens = processor(text=CAPTIONS, return_tensors="pt", padding="max_length", max_length=77)
    with torch.no_grad():
        expected = F.normalize(_features(model.get_text_features(**tokens)), dim=-1).numpy()
    got = matcher.extract_embedding(CAPTIONS, modality="text")
    assert np.abs(got - expected).max() < 1e-5


def test_text_embeddings_equal_openai_convention_without_a_mask(matcher, reference):
    """OpenAI's ``clip.tokenize``: [SOT] pieces [EOT], zero padding to 77, EOT kept on
    truncation; ``encode_text`` (and the conversion script's check) takes no attention
    mask. mmsim trims the padding and passes a mask: causal attention pooled at EOT makes
    both invisible, which this checks against the upstream convention."""
    model, processor = reference
    texts = [*CAPTIONS, "a red car near a lake " * 20]
    rows = []
    for text in texts:
        ids = processor.tokenizer(text, verbose=False)["input_ids"]
        ids = [*ids[:76], ids[-1]] if len(ids) > 77 else ids
        rows.append([*ids, *[0] * (77 - len(ids))])
    with torch.no_grad():
        expected = _features(model.get_text_features(input_ids=torch.tensor(rows)))
    with pytest.warns(TruncationWarning):
        got = matcher.extract_embedding(texts, modality="text")
    assert np.abs(got - F.normalize(expected, dim=-1).numpy()).max() < 1e-5


def test_text_batches_are_padded_to_their_longest_text(matcher):
    batch = matcher.text_tower.tokenize(["a dog", "a black dog runs"])
    ids = batch.inputs["input_ids"]
    assert ids.shape == (2, 6)  # BOS + 4 tokens + EOS, not 77
    assert batch.inputs["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]


def test_long_texts_are_truncated_visibly_and_exactly(matcher, reference):
    model, processor = reference
    long_text = "horse " * 120
    tokens = processor(text=[long_text], return_tensors="pt", truncation=True, max_length=77)
    assert tokens["input_ids"].shape[1] == 77
    batch = matcher.text_tower.tokenize([long_text, "short"])
    assert batch.truncated == [0]
    assert batch.inputs["input_ids"][0].tolist() == tokens["input_ids"][0].tolist()
    with pytest.warns(TruncationWarning, match=r"1 of 2 texts exceeded .* 77 tokens .*items 1"):
        got = matcher.extract_embedding(["short", long_text])
    with torch.no_grad():
        expected = F.normalize(_features(model.get_text_features(**tokens)), dim=-1).numpy()
    assert np.abs(got[1] - expected[0]).max() < 1e-5


def test_tower_metadata(matcher, reference):
    model, _ = reference
    assert matcher.embedding_dim == model.config.projection_dim == 16
    assert matcher.text_tower.max_length == 77
    assert matcher.image_tower.logit_scale == pytest.approx(model.logit_scale.exp().item())
    assert matcher.image_tower.logit_bias is None  # CLIP has a scale only


def test_bfloat16_keeps_float32_outputs_close_to_fp32(tiny_clip_dir, matcher, image_paths):
    bf16 = Matcher("openai_clip", checkpoint=str(tiny_clip_dir), dtype="bfloat16", progress=False)
    assert next(bf16.image_tower.model.parameters()).dtype == torch.bfloat16
    items = [str(image_paths[0]), "a dog on the grass"]
    low, full = bf16.extract_embedding(items), matcher.extract_embedding(items)
    assert low.dtype == np.float32
    cosines = (low * full).sum(axis=1)
    assert cosines.min() > 0.99


def test_missing_local_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointNotFoundError, match=r"looks like a local path.*does not exist"):
        Matcher("openai_clip", checkpoint=str(missing))


def test_uncached_hub_id_offline_fails_fast_naming_the_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(
        CheckpointNotFoundError, match=r"'openai/clip-vit-base-patch32'.*hf download"
    ):
        Matcher("openai_clip", encoder_options={"cache_dir": str(tmp_path)})
    assert time.monotonic() - start < 30  # no network wait


def test_local_files_only_option_never_downloads(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="downloads are switched off"):
        Matcher(
            "openai_clip",
            checkpoint="someone/not-cached",
            encoder_options={"local_files_only": True, "cache_dir": str(tmp_path)},
        )


def test_hub_id_resolves_from_the_hf_cache(tiny_clip_dir, tmp_path, monkeypatch, matcher):
    """A hub id whose files sit in the Hugging Face cache layout loads with no network."""
    cache = hub_cache(tmp_path, "acme/tiny-clip", tiny_clip_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = Matcher(
        "openai_clip",
        checkpoint="acme/tiny-clip",
        encoder_options={"cache_dir": str(cache)},
        progress=False,
    )
    texts = ["a dog", "a cat"]
    assert np.abs(cached.extract_embedding(texts) - matcher.extract_embedding(texts)).max() == 0
