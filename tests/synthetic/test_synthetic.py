"""The synthetic shapes world: deterministic, true captions, continuous geometry, held-out
combinations per split, and two renderers that draw what the geometry says."""

from __future__ import annotations

import colorsys
import csv
import itertools
import math

import numpy as np
import pytest

from mmsim import synthetic
from mmsim.synthetic import (
    COLOURS,
    HELD_OUT,
    VALIDATION_HELD_OUT,
    generate,
    prompt_templates,
    write_dataset,
)
from mmsim.synthetic.independent_renderer import PALETTES
from mmsim.synthetic.independent_renderer import render as render_independent
from mmsim.synthetic.training_renderer import render as render_training
from mmsim.synthetic.training_renderer import sample_colour
from mmsim.synthetic.world import HUES, Layout, Shape, position_of, sample_layout, size_of


def _combos(scene) -> set[tuple[str, str]]:
    return {(o.colour, o.shape) for o in scene.objects}


@pytest.mark.parametrize("renderer", ["training", "canonical", "independent"])
def test_deterministic_per_seed(renderer):
    a, b = (generate(12, seed=3, renderer=renderer) for _ in range(2))
    assert [s.caption for s in a] == [s.caption for s in b]
    assert all(x.image.tobytes() == y.image.tobytes() for x, y in zip(a, b, strict=True))
    assert [s.caption for s in generate(12, seed=4, renderer=renderer)] != [s.caption for s in a]


def test_each_split_keeps_its_own_held_out_combinations():
    train = generate(400, seed=0, split="train")
    validation = generate(200, seed=0, split="validation")
    heldout = generate(200, seed=0, split="heldout")
    assert not any(_combos(s) & (HELD_OUT | VALIDATION_HELD_OUT) for s in train)
    assert all(_combos(s) & VALIDATION_HELD_OUT and not _combos(s) & HELD_OUT for s in validation)
    assert all(_combos(s) & HELD_OUT and not _combos(s) & VALIDATION_HELD_OUT for s in heldout)
    assert not HELD_OUT & VALIDATION_HELD_OUT
    with pytest.raises(ValueError, match="split must be one of"):
        generate(1, split="test")


@pytest.mark.parametrize("turns", [0.0, 1.0])
def test_captions_say_what_the_geometry_is(turns):
    for scene in generate(300, seed=1, split="all", turns=turns):
        for obj in scene.objects:
            assert obj.colour in scene.caption and obj.shape in scene.caption
        if len(scene.objects) == 1:
            (obj,) = scene.objects
            assert position_of(obj.x, obj.y) == obj.position and size_of(obj.extent) == obj.size
            assert f"{obj.size} {obj.colour} {obj.shape}" in scene.caption
        else:
            a, b = scene.objects
            along = {
                "left of": b.x - a.x,
                "right of": a.x - b.x,
                "above": b.y - a.y,
                "below": a.y - b.y,
            }
            relation = next(r for r in synthetic.RELATIONS if f" {r} " in scene.caption)
            assert along[relation] > (a.extent + b.extent) / 2  # apart, in that direction
            assert (a.colour, a.shape) != (b.colour, b.shape)
        for obj in scene.objects:  # inside the frame
            assert obj.extent / 2 < obj.x < 1 - obj.extent / 2
            assert obj.extent / 2 < obj.y < 1 - obj.extent / 2
        assert " a orange" not in scene.caption and not scene.caption.startswith("a orange")


def test_geometry_is_continuous_not_a_few_fixed_templates():
    objects = [o for s in generate(500, seed=2, split="all") for o in s.objects]
    for field in ("x", "y", "extent", "angle", "aspect"):
        values = {round(getattr(o, field), 6) for o in objects}
        assert len(values) > len(objects) * 0.3, field
    assert {o.position for o in objects} >= set(synthetic.POSITIONS)


def _coverage(image, background) -> float:
    pixels = np.asarray(image, dtype=np.float64)
    return float(np.abs(pixels - background).max(axis=2).clip(0, 1).mean())


def test_turns_turn_shapes_through_the_full_turn_and_nothing_else():
    """``turns`` is the share of scenes whose shapes take any angle; the others keep
    the tilts of at most 20 degrees, and canonical scenes stay round."""
    for turns in (0.0, 0.5, 1.0):
        scenes = generate(400, seed=12, split="all", turns=turns)
        turned = [any(not -20 <= o.angle <= 20 for o in s.objects) for s in scenes]
        assert abs(np.mean(turned) - turns * 340 / 360) < 0.08, turns
    angles = [o.angle for s in generate(400, seed=12, turns=1.0) for o in s.objects]
    assert min(angles) >= 0 and max(angles) < 360
    assert np.histogram(angles, bins=8, range=(0, 360))[0].min() > len(angles) / 8 * 0.6
    canonical = [o for s in generate(50, seed=1, renderer="canonical", turns=1) for o in s.objects]
    assert {o.aspect for o in canonical} == {1.0} and len({o.angle for o in canonical}) > 40
    with pytest.raises(ValueError, match=r"turns is the share .* from 0 to 1; got 1\.5"):
        generate(1, turns=1.5)


def test_turns_off_leaves_every_seed_as_it_was():
    """The README's evaluation sets stay the same images: with ``turns=0`` (the default)
    no random number is drawn for it, so these scenes are the ones drawn before."""
    first = generate(3, seed=123, split="heldout", unique=True)
    assert [(s.caption, round(s.objects[0].angle, 3)) for s in first] == [
        ("a large blue circle on the right", 0.0),
        ("a green square above a red circle", 1.082),
        ("a large green square in the middle", -3.656),
    ]
    drawn = generate(2, seed=11, split="all", renderer="independent", two_object_share=0.0)
    assert [(s.caption, round(s.objects[0].angle, 3)) for s in drawn] == [
        ("a small purple triangle at the bottom", -7.393),
        ("a large orange triangle at the top", -3.838),
    ]


def _painted(image: np.ndarray, x: float, y: float) -> bool:
    """Whether the pixel at (x, y) (shares of the side) differs from the corner's."""
    side = image.shape[0]
    return bool(np.abs(image[int(y * side), int(x * side)] - image[0, 0]).max() > 60)


@pytest.mark.parametrize("renderer", ["canonical", "independent"])
def test_both_renderers_turn_a_square_into_a_diamond_at_45_degrees(renderer):
    """Shapes are drawn at any angle (what footage of a spinning shape needs): a large
    square turned 45 (or 405, or 135) degrees has a corner straight above its centre
    and none where the upright square's corner is."""

    def draw(angle: float) -> np.ndarray:
        layout = Layout((Shape("blue", "square", "large", "middle", 0.5, 0.5, 0.5, angle),), "")
        rng = np.random.default_rng(1)  # a filled square in the independent renderer
        if renderer == "independent":
            return np.asarray(render_independent(layout, 200, rng), dtype=np.float64)
        return np.asarray(render_training(layout, 200, rng, varied=False), dtype=np.float64)

    tip, corner = (0.5, 0.5 - 0.23), (0.5 + 0.16, 0.5 + 0.16)  # diamond's tip, square's corner
    upright = draw(0.0)
    assert _painted(upright, *corner) and not _painted(upright, *tip)
    for angle in (45.0, 405.0, 135.0):
        diamond = draw(angle)
        assert _painted(diamond, *tip) and not _painted(diamond, *corner), angle
    assert np.abs(draw(90.0) - upright).mean() < 1.0  # a quarter turn: the same square


@pytest.mark.parametrize("angle", [17.0, 235.0])
@pytest.mark.parametrize("shape", synthetic.SHAPES)
def test_both_renderers_draw_the_shape_with_its_true_area(shape, angle):
    """A filled shape covers its geometric area (circle pi r^2, square 2 r^2, triangle
    3 sqrt(3)/4 r^2 for circumradius r), tilted or turned: both renderers draw the
    geometry, not a sprite."""
    obj = Shape("red", shape, "large", "middle", 0.5, 0.5, 0.42, angle, 1.1)
    r = 0.21 * 400
    area = {"circle": math.pi * r**2, "square": 2 * r**2, "triangle": 3 * math.sqrt(3) / 4 * r**2}
    expected = area[shape] * 1.1 / 400**2
    layout = Layout((obj,), "")
    canonical = np.asarray(render_training(layout, 400, np.random.default_rng(0), varied=False))
    assert _coverage(canonical, 235) == pytest.approx(expected, rel=0.03)
    assert tuple(canonical[200, 200]) == COLOURS["red"]
    for seed in range(8):  # filled ones: the outline option draws less
        rng = np.random.default_rng(seed)
        independent = np.asarray(render_independent(layout, 400, rng), dtype=np.float64)
        paper = independent[0, 0]
        if tuple(independent[200, 200].astype(int)) in {p["red"] for p in PALETTES.values()}:
            covered = (np.abs(independent - paper).max(axis=2) > 0).mean()
            assert covered == pytest.approx(expected, rel=0.03)


def test_varied_colours_stay_inside_their_names_hue_range():
    rng = np.random.default_rng(0)
    for name, (low, high) in HUES.items():
        for _ in range(50):
            hue = colorsys.rgb_to_hsv(*(c / 255 for c in sample_colour(rng, name)))[0] * 360
            hue = hue - 360 if hue > 180 and low < 0 else hue
            assert low - 1.5 <= hue <= high + 1.5, (name, hue)


def test_varied_renderer_changes_backgrounds_edges_and_fills():
    rng = np.random.default_rng(0)
    layout = sample_layout(rng, "all", two_object_share=0.0)
    images = [np.asarray(render_training(layout, 64, np.random.default_rng(s))) for s in range(30)]
    corners = {tuple(im[0, 0]) for im in images}
    assert len(corners) > 20  # backgrounds differ
    flat = [im for im in images if len({tuple(p) for p in im[:6, :6].reshape(-1, 3)}) == 1]
    assert 0 < len(flat) < len(images)  # some flat, some noisy/gradient/textured


def _words(text: str) -> list[str]:
    """A caption's attribute words, each position phrase as one word."""
    for word, phrase in synthetic.world.PHRASES.items():
        text = text.replace(phrase, word)
    return text.split()


def test_negative_captions_are_false_and_differ_in_one_attribute():
    swapped_shapes = 0
    for split in ("train", "heldout"):
        allowed = set(synthetic.world.combinations(split))
        for scene in generate(300, seed=8, split=split):
            ours, theirs = _words(scene.caption), _words(scene.negative)
            changed = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
            assert len(changed) == 1, (scene.caption, scene.negative)
            swapped_shapes += changed[0][0] in synthetic.SHAPES
            named = {(c, s) for c, s in itertools.pairwise(theirs) if c in COLOURS}
            assert named <= allowed  # training never reads a held-out combination
    assert swapped_shapes > 0.5 * 600  # mostly the shape: the contrast batches lack


def test_captions_without_colours_keep_every_other_word_and_read_well():
    assert synthetic.without_colours("an orange square left of a blue circle") == (
        "a square left of a circle"
    )
    for scene in generate(200, seed=8, split="all"):
        plain = synthetic.without_colours(scene.caption)
        kept = [w for w in _words(scene.caption) if w not in (*COLOURS, "a", "an")]
        assert kept == [w for w in _words(plain) if w != "a"]
        assert "an " not in plain and plain.split()[0] == "a"  # sizes and shapes: "a"
        assert set(plain.split()) <= set(synthetic.VOCABULARY)  # the tokenizer reads it


def test_unique_scenes_give_each_caption_one_image():
    scenes = generate(1000, seed=5, split="heldout", unique=True)
    assert len({s.key for s in scenes}) == len(scenes) > 200
    assert len({s.caption for s in scenes}) == len(scenes)


def test_write_dataset_and_class_folders(tmp_path):
    path = write_dataset(tmp_path / "a", 5, seed=2, split="heldout", size=32)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 5 and all((tmp_path / "a" / r["image"]).is_file() for r in rows)
    assert [r["caption"] for r in rows] == [s.caption for s in generate(5, seed=2, split="heldout")]

    folder = tmp_path / "b"
    write_dataset(folder, 30, by="shape", renderer="independent", split="all", two_object_share=0)
    for row in csv.DictReader((folder / "captions.csv").open()):
        assert row["image"].split("/")[0] in row["caption"]  # the folder is the shape
    templates = (folder / "templates.txt").read_text().splitlines()
    assert templates == prompt_templates("shape") and all("{}" in t for t in templates)
    with pytest.raises(ValueError, match="two_object_share=0"):
        write_dataset(tmp_path / "c", 3, by="colour")


def test_prompt_templates_cover_every_other_word():
    colour = prompt_templates("colour")
    assert len(colour) == 3 * 2 * 5 and "a small {} circle on the left" in colour
    shape = prompt_templates("shape")
    assert len(shape) == 6 * 2 * 5 and "a large orange {} in the middle" in shape
    filled = {t.format("red") for t in colour}
    assert {
        s.caption
        for s in generate(200, seed=1, two_object_share=0, split="all")
        if s.objects[0].colour == "red"
    } <= filled


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
