"""Training-time augmentation: reproducible per item, sub-pixel crops, real JPEG artefacts,
and ``fit`` trains on the augmented images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher, synthetic
from mmsim.errors import ConfigError
from mmsim.training.augment import Augmenter
from mmsim.training.options import AugmentConfig
from tests.training.test_fit import FAST


def _ramp(size: int = 64) -> Image.Image:
    """A horizontal ramp: a pixel's value says which column of the original it shows."""
    row = np.linspace(0, 255, size)
    return Image.fromarray(np.repeat(np.stack([row] * 3, -1)[None], size, 0).astype(np.uint8))


def test_same_seed_epoch_and_item_give_the_same_image_others_differ():
    augment = Augmenter(AugmentConfig(crop_scale=[0.6, 0.9], jpeg_p=0.5), seed=3)
    image = synthetic.generate(1, seed=0)[0].image
    first = augment(image, 1, 7).tobytes()
    assert augment(image, 1, 7).tobytes() == first
    assert augment(image, 2, 7).tobytes() != first  # a new epoch, a new crop
    assert augment(image, 1, 8).tobytes() != first
    assert Augmenter(augment.config, seed=4)(image, 1, 7).tobytes() != first


def test_crops_keep_the_size_and_move_content_by_fractions_of_a_pixel():
    augment = Augmenter(AugmentConfig(crop_scale=[0.5, 0.9], crop_ratio=[1.0, 1.0]), seed=0)
    ramp = _ramp()
    offsets = []
    for i in range(40):
        out = np.asarray(augment(ramp, 1, i), dtype=np.float64)[32, :, 0]
        assert augment(ramp, 1, i).size == ramp.size
        offsets.append(out[0] / 255 * 63)  # the original column now at column 0
    fractional = [abs(o - round(o)) for o in offsets]
    assert max(offsets) - min(offsets) > 8  # shifts of more than a patch
    assert np.mean(fractional) > 0.1  # and not whole pixels (let alone whole patches)


def test_jpeg_reencoding_adds_compression_artefacts():
    image = synthetic.generate(1, seed=1, renderer="canonical")[0].image
    out = Augmenter(AugmentConfig(jpeg_p=1.0, jpeg_quality=[20, 20]), seed=0)(image, 1, 0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=20)
    assert out.tobytes() == Image.open(buffer).convert("RGB").tobytes()
    assert out.tobytes() != image.tobytes()


def test_flip_is_off_unless_asked_and_mirrors_when_on():
    ramp = _ramp()
    assert not AugmentConfig().enabled
    flips = Augmenter(AugmentConfig(hflip=True), seed=0)
    mirrored = [np.asarray(flips(ramp, 1, i))[0, 0, 0] > 128 for i in range(20)]
    assert 0 < sum(mirrored) < 20


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"crop_scale": [0.0, 1.0]}, "augment.crop_scale must be"),
        ({"crop_scale": [0.9, 0.5]}, "augment.crop_scale must be"),
        ({"jpeg_quality": [10, 120]}, "augment.jpeg_quality must be"),
        ({"jpeg_p": 2.0}, "augment.jpeg_p must be in"),
    ],
)
def test_bad_augment_options_are_named(tmp_path, option, message):
    matcher = Matcher("toy", progress=False)
    with pytest.raises(ConfigError, match=message):
        matcher.fit(([], []), output_dir=tmp_path, augment=option)


def _trained(data, folder, **augment) -> np.ndarray:
    matcher = Matcher("toy", progress=False)
    options = {**FAST, "epochs": 1, "seed": 0}
    matcher.fit(data, output_dir=folder, augment=augment, **options)
    return matcher.extract_embedding(data[0][:4], progress=False)


def test_fit_trains_on_augmented_images_reproducibly(tmp_path):
    scenes = synthetic.generate(64, seed=0, size=32)
    data = ([s.image for s in scenes], [s.caption for s in scenes])
    plain = _trained(data, tmp_path / "plain")
    again = _trained(data, tmp_path / "again")
    augmented = _trained(data, tmp_path / "aug", crop_scale=[0.5, 0.8], jpeg_p=1.0)
    repeat = _trained(data, tmp_path / "rep", crop_scale=[0.5, 0.8], jpeg_p=1.0)
    np.testing.assert_array_equal(plain, again)
    np.testing.assert_array_equal(augmented, repeat)  # the same seed, the same augmentations
    assert np.abs(augmented - plain).max() > 1e-3  # the model saw other pixels
