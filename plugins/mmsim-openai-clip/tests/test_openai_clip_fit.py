"""Fine-tuning CLIPModel: the best epoch saved in transformers' own format and loaded
back through the plugin, per-block freezing, towers of two checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmsim import Matcher, synthetic
from mmsim.inputs.pairs import read_pairs

SCRATCH = {
    "text_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
    },
    "vision_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
    "projection_dim": 32,
}
FAST = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0}


@pytest.fixture(scope="module")
def scratch_clip(tmp_path_factory) -> Path:
    """A small random CLIP with a tokenizer over the scene vocabulary."""
    from mmsim_openai_clip.scratch import save_new_clip, word_tokenizer

    folder = tmp_path_factory.mktemp("scratch_clip")
    tokenizer = word_tokenizer(folder, synthetic.VOCABULARY, max_length=16)
    return save_new_clip(folder, tokenizer, SCRATCH, seed=0)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("shapes"), 64, seed=0, size=32, renderer="canonical"
    )


def _matcher(checkpoint: Path) -> Matcher:
    return Matcher("openai_clip", checkpoint=str(checkpoint), progress=False)


def test_a_short_fit_raises_training_recall(scratch_clip, shapes, tmp_path):
    matcher = _matcher(scratch_clip)
    result = matcher.fit(shapes, validation=shapes, output_dir=tmp_path, epochs=15, **FAST)
    before, after = result.history[0], result.history[-1]
    assert np.mean(result.losses[-4:]) < 0.85 * np.mean(result.losses[:4])
    assert after["mean_hit_rate"] > max(0.3, 3 * before["mean_hit_rate"])


def test_fitted_model_is_saved_natively_and_loads_through_the_plugin(
    scratch_clip, shapes, tmp_path
):
    from transformers import CLIPModel

    matcher = _matcher(scratch_clip)
    result = matcher.fit(shapes, output_dir=tmp_path, epochs=2, validation_split=0.25, **FAST)
    folder = result.checkpoints["model"]
    assert folder == tmp_path / "checkpoint"
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    CLIPModel.from_pretrained(folder)  # the format transformers itself reads
    texts = ["a small red circle on the left", "a blue square above a green triangle"]
    expected = matcher.extract_embedding(texts)
    assert np.abs(_matcher(folder).extract_embedding(texts) - expected).max() < 1e-6
    reloaded = Matcher.load(tmp_path)  # matcher.json points at the checkpoint
    assert reloaded.spec.image_encoder.options["checkpoint"] == str(folder)
    assert np.abs(reloaded.extract_embedding(texts) - expected).max() < 1e-6
    # the trained scale travels with the checkpoint
    assert reloaded.image_tower.logit_scale == pytest.approx(matcher.image_tower.logit_scale)
    # validation images never appear in training: 25% of the 64 images are held out
    assert result.history[0]["image_to_text/queries"] == 16


def test_freeze_and_last_blocks_train_only_what_was_asked(scratch_clip, shapes, tmp_path):
    matcher = _matcher(scratch_clip)
    model = matcher.assembly.sources["image"].trainable.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    matcher.fit(shapes, output_dir=tmp_path, epochs=1, freeze="text", trainable_blocks=1, **FAST)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "nothing trained"
    assert not any(n.startswith(("text_model", "text_projection")) for n in changed)
    assert not any(n.startswith("vision_model.embeddings") for n in changed)
    assert not any("encoder.layers.0." in n for n in changed)
    assert any("vision_model.encoder.layers.1." in n for n in changed)
    assert any(n.startswith("visual_projection") for n in changed)
    assert "logit_scale" in changed


def test_towers_of_two_checkpoints_are_saved_side_by_side(scratch_clip, shapes, tmp_path):
    from mmsim_openai_clip.scratch import save_new_clip, word_tokenizer

    other = tmp_path / "other"
    save_new_clip(other, word_tokenizer(other, synthetic.VOCABULARY, 16), SCRATCH, seed=5)
    matcher = Matcher(
        "openai_clip",
        checkpoint=str(scratch_clip),
        text_encoder={"name": "openai_clip", "checkpoint": str(other)},
        progress=False,
    )
    result = matcher.fit(shapes, output_dir=tmp_path / "out", epochs=1, freeze="text", **FAST)
    assert result.checkpoints == {
        "image": tmp_path / "out" / "image_checkpoint",
        "text": tmp_path / "out" / "text_checkpoint",
    }
    reloaded = Matcher.load(tmp_path / "out")
    items = ["a red circle", str(read_pairs(shapes).images[0])]
    assert np.abs(reloaded.extract_embedding(items) - matcher.extract_embedding(items)).max() < 1e-6
