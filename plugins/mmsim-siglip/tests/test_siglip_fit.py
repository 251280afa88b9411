"""Fine-tuning SigLIP with the sigmoid loss: the model's own scale and bias train and
travel with the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim import Matcher, synthetic
from mmsim.embedding.results import TruncationWarning

FAST = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0}


def _matcher(checkpoint, encoder: str) -> Matcher:
    return Matcher(encoder, checkpoint=str(checkpoint), progress=False)


def test_siglip_loss_trains_siglip_scale_and_bias(tiny_siglip_dir, tmp_path):
    from mmsim_siglip.testing import TINY

    size = TINY["vision_config"]["image_size"]
    data = synthetic.write_dataset(tmp_path / "data", 16, seed=1, size=size)
    matcher = _matcher(tiny_siglip_dir, "siglip")
    bias = matcher.text_tower.logit_bias
    with pytest.warns(TruncationWarning, match="trained truncated"):  # SigLIP pads to 16
        result = matcher.fit(data, output_dir=tmp_path / "out", epochs=2, loss="siglip", **FAST)
    assert matcher.text_tower.logit_bias != bias  # the learnable bias moved
    reloaded = Matcher.load(tmp_path / "out")
    assert reloaded.text_tower.logit_bias == pytest.approx(matcher.text_tower.logit_bias)
    texts = ["a red circle", "a blue square"]
    diff = reloaded.extract_embedding(texts) - matcher.extract_embedding(texts)
    assert np.abs(diff).max() < 1e-6
    assert result.checkpoints["model"].joinpath("config.json").is_file()
