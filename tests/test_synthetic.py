"""The synthetic shapes generator: deterministic, faithful captions, held-out combinations."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mmsim.synthetic import COLOURS, HELD_OUT, POSITIONS, generate, write_dataset


def test_deterministic_per_seed():
    a, b = generate(20, seed=3), generate(20, seed=3)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert all(x.image.tobytes() == y.image.tobytes() for x, y in zip(a, b, strict=True))
    assert [s.caption for s in generate(20, seed=4)] != [s.caption for s in a]


def test_held_out_combinations_are_split():
    train = generate(300, seed=0, split="train")
    heldout = generate(100, seed=0, split="heldout")
    assert not any((o.colour, o.shape) in HELD_OUT for s in train for o in s.objects)
    assert all(any((o.colour, o.shape) in HELD_OUT for o in s.objects) for s in heldout)


def test_captions_describe_what_is_drawn():
    for scene in generate(60, seed=1, split="all", size=64):
        pixels = np.asarray(scene.image)
        for obj in scene.objects:
            assert obj.colour in scene.caption and obj.shape in scene.caption
            x, y = (int(c * 64) for c in POSITIONS[obj.position])
            assert tuple(pixels[y + 2, x]) == COLOURS[obj.colour]  # the shape sits there
        if len(scene.objects) == 2:
            assert scene.objects[0] != scene.objects[1]
        assert " a orange" not in scene.caption and not scene.caption.startswith("a orange")


def test_write_dataset(tmp_path):
    path = write_dataset(tmp_path, 5, seed=2, split="heldout", size=32)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 5 and all((tmp_path / r["image"]).is_file() for r in rows)
    assert [r["caption"] for r in rows] == [s.caption for s in generate(5, seed=2, split="heldout")]
    with pytest.raises(ValueError, match="split must be"):
        generate(1, split="test")


def test_unique_scenes_give_each_caption_one_image():
    scenes = generate(1000, seed=5, split="heldout", unique=True)
    keys = [s.key for s in scenes]
    assert len(set(keys)) == len(keys) and 250 < len(scenes) < 1000  # every distinct one
    assert len({s.caption for s in scenes}) == len(scenes)
    assert [s.caption for s in generate(10, seed=5, split="heldout", unique=True)] == [
        s.caption for s in scenes[:10]
    ]


def test_pairs_file_labels_matches_and_mismatches(tmp_path):
    write_dataset(tmp_path, 30, seed=4)
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    captions = {
        r["image"]: r["caption"] for r in csv.DictReader((tmp_path / "captions.csv").open())
    }
    for row in rows:
        assert (row["caption"] == captions[row["image"]]) == (row["label"] == "1")
    assert sum(r["label"] == "1" for r in rows) == 30 and sum(r["label"] == "0" for r in rows) > 20


def test_scene_vocabulary_tokenizes_word_by_word(tmp_path):
    from transformers import AutoTokenizer

    from mmsim.synthetic import VOCABULARY
    from mmsim_openai_clip.scratch import word_tokenizer

    word_tokenizer(tmp_path, VOCABULARY, max_length=16)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)  # the way the plugin loads it
    for scene in generate(20, seed=6, split="all"):
        assert len(tokenizer.tokenize(scene.caption)) == len(scene.caption.split())
    assert len(tokenizer.tokenize("zebra")) == 5  # unknown words still tokenize, byte by byte
    assert len(tokenizer) < 700
