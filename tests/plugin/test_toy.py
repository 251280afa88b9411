"""The toy encoder: registered like any component, deterministic, fine-tunable, saved and
loaded through the same path a fine-tuned checkpoint takes."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.errors import CheckpointNotFoundError, DamagedFileError
from mmsim.plugin import ExportError
from mmsim.plugin.loading import describe_plugins, get_registry


def test_toy_is_a_core_component_found_through_the_registry():
    component = get_registry().get("encoder", "toy")
    assert component.owner == "mmsim"
    core = next(p for p in describe_plugins() if p["name"] == "mmsim")
    assert "toy" in [c["name"] for c in core["components"]["encoder"]]


def test_same_options_give_the_same_embeddings_and_seeds_differ(image_paths):
    items = [str(p) for p in image_paths] + ["a red circle", "a blue square"]
    a = Matcher("toy", progress=False).extract_embedding(items)
    b = Matcher("toy", progress=False).extract_embedding(items)
    other = Matcher({"name": "toy", "seed": 1}, progress=False).extract_embedding(items)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, other)
    assert a.shape == (len(items), 32)


def test_texts_that_share_words_are_closer_than_texts_that_do_not():
    emb = Matcher("toy", progress=False).extract_embedding(
        ["a red circle", "a red circle on the left", "two green triangles"], modality="text"
    )
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_fine_tuned_weights_save_and_load_back(tmp_path):
    matcher = Matcher("toy", progress=False)
    model = matcher.assembly.sources["image"].trainable.model
    folder = tmp_path / "checkpoint"
    options = matcher.assembly.sources["image"].trainable.save(folder)
    assert options == {"checkpoint": str(folder)}
    loaded = Matcher({"name": "toy", **options}, progress=False)
    reloaded = loaded.assembly.sources["image"].trainable.model
    for (name, a), b in zip(
        model.state_dict().items(), reloaded.state_dict().values(), strict=True
    ):
        assert a.equal(b), name


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not a folder saved by the toy encoder"):
        Matcher("toy", checkpoint=str(tmp_path))
    Matcher("toy", progress=False).assembly.sources["image"].trainable.save(tmp_path / "c")
    (tmp_path / "c" / "weights.pt").write_bytes(b"truncated")
    with pytest.raises(DamagedFileError, match="cannot be loaded"):
        Matcher("toy", checkpoint=str(tmp_path / "c"))


def test_toy_towers_are_not_exportable(tmp_path):
    matcher = Matcher("toy", progress=False)
    assert not any(tower.exportable for tower in matcher.towers.values())
    with pytest.raises(ExportError, match="cannot be exported to ONNX"):
        matcher.image_tower.export_onnx()
