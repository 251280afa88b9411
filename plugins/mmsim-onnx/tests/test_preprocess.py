"""The exported towers' preprocessing computes only the pixels the center crop keeps:
the same model input as resizing the whole image and cropping it afterwards, as
transformers (``int``) and torchvision (``round``) place the crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmsim_onnx.preprocess import preprocess


def spec(crop: list[int] | None, rounding: str, resampler: str, interpolation: str) -> dict:
    return {
        "resize": "shortest",
        "size": 64,
        "crop": crop,
        "crop_rounding": rounding,
        "interpolation": interpolation,
        "resampler": resampler,
        "mean": [0.48, 0.46, 0.41],
        "std": [0.27, 0.26, 0.28],
    }


@pytest.mark.parametrize("resampler", ["torch", "pil"])
@pytest.mark.parametrize("rounding", ["int", "round"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_cropping_while_resizing_gives_the_resized_image_cropped(
    resampler, rounding, interpolation
):
    rng = np.random.default_rng(5)
    for height, width in [(720, 1280), (1281, 719), (97, 301), (64, 65), (333, 64)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for crop in ([64, 64], [60, 50], [64, 63]):
            whole = preprocess([image], spec(None, rounding, resampler, interpolation))[0]
            h, w = whole.shape[1:]
            if rounding == "round":  # torchvision's CenterCrop
                top, left = round((h - crop[0]) / 2.0), round((w - crop[1]) / 2.0)
            else:  # transformers' center_crop
                top, left = int((h - crop[0]) / 2.0), int((w - crop[1]) / 2.0)
            expected = whole[:, top : top + crop[0], left : left + crop[1]]
            got = preprocess([image], spec(crop, rounding, resampler, interpolation))[0]
            np.testing.assert_array_equal(got, expected, err_msg=f"{height}x{width} {crop}")


def test_a_crop_larger_than_the_image_pads_it_with_zeros():
    image = Image.fromarray(np.full((64, 96, 3), 200, np.uint8))
    got = preprocess([image], spec([80, 80], "int", "torch", "bicubic"))[0]
    mean, std = np.float32(0.48), np.float32(0.27)
    assert got.shape == (3, 80, 80)
    assert np.allclose(got[0, :8], (0 - mean) / std) and np.allclose(
        got[0, 8:72, 8:72], (200 / 255 - mean) / std
    )
