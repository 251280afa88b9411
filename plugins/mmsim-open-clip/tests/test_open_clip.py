"""The OpenCLIP plugin: every checkpoint form, parity with open_clip, exact text trimming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmsim import Matcher
from mmsim.embedding.results import TruncationWarning
from mmsim.errors import CheckpointNotFoundError, DamagedFileError
from mmsim.plugin.testing import hub_cache

TEXTS = ["a dog", "a cat on a red mat in the sun", "There is a carriage in the image."]


def open_clip_matcher(**options) -> Matcher:
    return Matcher({"name": "open_clip", **options}, progress=False)


@pytest.fixture(scope="module")
def forms(open_clip_dirs):
    """The same plugin reading each on-disk form."""
    return {
        "local-dir": open_clip_matcher(checkpoint=f"local-dir:{open_clip_dirs['clip_dir']}"),
        "plain folder": open_clip_matcher(checkpoint=str(open_clip_dirs["siglip_dir"])),
        "arch + weights file": open_clip_matcher(
            checkpoint="mmsim-tiny-clip",
            pretrained=str(open_clip_dirs["arch_weights"]),
            model_config=str(open_clip_dirs["arch_config"]),
        ),
    }


@pytest.mark.parametrize("form", ["local-dir", "plain folder", "arch + weights file"])
def test_embeddings_equal_open_clip_forward(forms, form, image_paths):
    matcher = forms[form]
    model = matcher.text_tower.model
    tokenizer, transform = matcher.text_tower.tokenizer, matcher.image_tower.transform
    images = [Image.open(p).convert("RGB") for p in image_paths]
    with torch.no_grad():
        expected_img = F.normalize(
            model.encode_image(torch.stack([transform(i) for i in images])), dim=-1
        )
        expected_txt = F.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1)  # all positions
    got_img = matcher.extract_embedding([str(p) for p in image_paths])
    got_txt = matcher.extract_embedding(TEXTS, modality="text")
    assert np.abs(got_img - expected_img.numpy()).max() < 1e-5
    assert np.abs(got_txt - expected_txt.numpy()).max() < 1e-5


def test_causal_text_tower_runs_only_up_to_the_longest_text(forms, open_clip_dirs):
    tower = forms["local-dir"].text_tower
    assert tower.causal is not None
    assert tower.tokenize(["a dog", "a black dog"]).inputs.shape == (2, 5)  # not 77
    untrimmed = open_clip_matcher(
        checkpoint=f"local-dir:{open_clip_dirs['clip_dir']}", trim_text=False
    )
    assert untrimmed.text_tower.tokenize(["a dog"]).inputs.shape == (1, 77)
    diff = forms["local-dir"].extract_embedding(TEXTS) - untrimmed.extract_embedding(TEXTS)
    assert np.abs(diff).max() < 1e-5


def test_siglip_style_model_keeps_padding_bias_and_preprocessing(forms):
    matcher = forms["plain folder"]
    assert matcher.text_tower.causal is None  # bidirectional: padding is part of the input
    assert matcher.text_tower.tokenize(["a dog"]).inputs.shape == (1, 16)
    assert matcher.text_tower.logit_bias == pytest.approx(-10.0)
    steps = {type(t).__name__: t for t in matcher.image_tower.transform.transforms}
    assert "CenterCrop" not in steps  # resize_mode 'squash' from the checkpoint's config
    assert list(steps["Normalize"].mean) == [0.5, 0.5, 0.5]
    assert forms["local-dir"].text_tower.logit_bias is None


def test_truncation_is_reported(forms):
    with pytest.warns(TruncationWarning, match="1 of 2 texts .* 16 tokens"):
        forms["plain folder"].extract_embedding(["short", "word " * 40])


def test_hf_hub_reference_loads_from_the_cache(open_clip_dirs, tmp_path, monkeypatch, forms):
    cache = hub_cache(tmp_path, "acme/tiny-open-clip", open_clip_dirs["clip_dir"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = open_clip_matcher(checkpoint="hf-hub:acme/tiny-open-clip", cache_dir=str(cache))
    assert cached.text_tower.name == "open_clip:hf-hub:acme/tiny-open-clip"
    diff = cached.extract_embedding(TEXTS) - forms["local-dir"].extract_embedding(TEXTS)
    assert np.abs(diff).max() == 0


def test_uncached_pretrained_tag_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError, match=r"ViT-B-32 \(pretrained=laion2b_s34b_b79k\)"):
        open_clip_matcher(
            checkpoint="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path)
        )


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"weights file .*nope.safetensors"):
        open_clip_matcher(checkpoint="ViT-B-32", pretrained=str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointNotFoundError, match=r"has no open_clip_config\.json"):
        open_clip_matcher(checkpoint=f"local-dir:{tmp_path}")


def test_damaged_open_clip_weights_in_the_hub_cache_are_named(
    open_clip_dirs, tmp_path, monkeypatch
):
    cache = hub_cache(tmp_path, "acme/tiny-open-clip", open_clip_dirs["clip_dir"])
    snapshot = cache / "models--acme--tiny-open-clip" / "snapshots" / "0123abc"
    (weights,) = snapshot.glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DamagedFileError, match=rf"{weights.name} is damaged"):
        Matcher(
            {
                "name": "open_clip",
                "checkpoint": "hf-hub:acme/tiny-open-clip",
                "cache_dir": str(cache),
            }
        )
