"""Towers composed across plugins: one set of CLIP weights served by two backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from mmsim import Matcher, semantic_search
from mmsim.errors import IncompatibleTowersError

TEXTS = ["a dog", "a cat on a mat", "There is a carriage in the image.", "a red car", "two men"]


@pytest.fixture(scope="module")
def converted_dir(tiny_clip_dir, tmp_path_factory):
    """The tiny transformers CLIP converted to open_clip's local-dir format."""
    from mmsim_open_clip import convert
    from mmsim_open_clip.testing import save_local_dir

    hf = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    return save_local_dir(
        tmp_path_factory.mktemp("converted"),
        convert.model_config(hf.config),
        state_dict=convert.state_dict(hf),
    )


@pytest.fixture(scope="module")
def backends(tiny_clip_dir, converted_dir):
    hf = Matcher("openai_clip", checkpoint=str(tiny_clip_dir), progress=False)
    oc = Matcher({"name": "open_clip", "checkpoint": str(converted_dir)}, progress=False)
    return hf, oc


def test_same_weights_give_the_same_embeddings_through_both_plugins(backends):
    hf, oc = backends
    assert np.abs(hf.extract_embedding(TEXTS) - oc.extract_embedding(TEXTS)).max() < 1e-5
    pixels = torch.randn(4, 3, 32, 32)  # identical pixels: the two processors resize differently
    with torch.inference_mode():
        a = F.normalize(hf.image_tower.encode({"pixel_values": pixels}), dim=-1)
        b = F.normalize(oc.image_tower.encode(pixels), dim=-1)
    assert (a - b).abs().max() < 1e-5
    assert hf.image_tower.logit_scale == pytest.approx(oc.image_tower.logit_scale)


def _ranking(matcher, images):
    text_emb = matcher.extract_embedding(TEXTS)
    image_emb = matcher.extract_embedding(images)
    hits = semantic_search(
        matcher, query_embeddings=text_emb, response_embeddings=image_emb, top_k=len(images)
    )
    return [[h["response_id"] for h in ranked] for ranked in hits]


def test_mixed_towers_rank_exactly_like_either_backend(
    tiny_clip_dir, converted_dir, backends, image_paths
):
    hf, oc = backends
    images = [str(p) for p in image_paths]
    hf_image_oc_text = Matcher(
        "openai_clip",
        checkpoint=str(tiny_clip_dir),
        progress=False,
        text_encoder={"name": "open_clip", "checkpoint": str(converted_dir)},
    )
    oc_image_hf_text = Matcher(
        {"name": "open_clip", "checkpoint": str(converted_dir)},
        text_encoder={"name": "openai_clip", "checkpoint": str(tiny_clip_dir)},
        progress=False,
    )
    assert hf_image_oc_text.text_tower.name.startswith("open_clip:")
    assert hf_image_oc_text.image_tower.name.startswith("openai_clip:")
    assert _ranking(hf_image_oc_text, images) == _ranking(hf, images)
    assert _ranking(oc_image_hf_text, images) == _ranking(oc, images)


def test_towers_of_different_dimensions_are_refused(tiny_clip_dir, tiny_siglip_dir):
    with pytest.raises(
        IncompatibleTowersError,
        match=r"image tower 'openai_clip:.*' embeds into 16 .* text tower 'siglip:.*' into 32",
    ):
        Matcher(
            "openai_clip",
            checkpoint=str(tiny_clip_dir),
            text_encoder={"name": "siglip", "checkpoint": str(tiny_siglip_dir)},
        )


def test_declared_spaces_must_agree(tiny_clip_dir, converted_dir):
    with pytest.raises(
        IncompatibleTowersError, match=r"declares embedding space 'clip-b' .* 'other'"
    ):
        Matcher(
            {"name": "openai_clip", "checkpoint": str(tiny_clip_dir), "space": "clip-b"},
            text_encoder={"name": "open_clip", "checkpoint": str(converted_dir), "space": "other"},
        )
