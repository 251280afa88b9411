"""Fine-tuning an open_clip model: the best epoch saved as a ``local-dir:`` checkpoint."""

from __future__ import annotations

import numpy as np

from mmsim import Matcher, synthetic

FAST = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0}


def test_open_clip_fit_saves_a_local_dir_checkpoint(open_clip_dirs, tmp_path):
    data = synthetic.write_dataset(tmp_path / "data", 16, seed=2, size=32)
    matcher = Matcher("open_clip", checkpoint=str(open_clip_dirs["clip_dir"]), progress=False)
    result = matcher.fit(data, output_dir=tmp_path / "out", epochs=1, trainable_blocks=1, **FAST)
    folder = result.checkpoints["model"]
    assert (folder / "open_clip_config.json").is_file()
    reloaded = Matcher("open_clip", checkpoint=f"local-dir:{folder}", progress=False)
    images = [str(p) for p in sorted((tmp_path / "data").glob("*.png"))[:4]]
    diff = reloaded.extract_embedding(images) - matcher.extract_embedding(images)
    assert np.abs(diff).max() < 1e-5
