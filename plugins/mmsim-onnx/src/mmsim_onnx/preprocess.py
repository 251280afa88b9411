"""Image preprocessing from an export manifest's spec, in numpy and PIL only.

It reproduces the source tower's own pipeline: resize (shortest side or squash), center
crop, scale to [0, 1], normalise. Two resamplers: ``pil`` is ``PIL.Image.resize`` (what
open_clip's torchvision transforms do on PIL images, so it is exact); ``torch`` is
torch's antialiased uint8 interpolation (what transformers' torchvision image
processors do), written out here as separable fixed-point passes so no torch or
torchvision is needed. It agrees with torch's SIMD kernel to within one grey level on
under 1% of pixels (the kernel's rounding inside a pass is not reproduced).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_SUPPORT = {"bicubic": 2.0, "bilinear": 1.0}


def _kernel(x: np.ndarray, interpolation: str) -> np.ndarray:
    x = np.abs(x)
    if interpolation == "bilinear":
        return np.clip(1.0 - x, 0.0, None)
    a = -0.5  # torch's antialiased bicubic (the same kernel as PIL's)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def resample_matrix(size_in: int, size_out: int, interpolation: str) -> np.ndarray:
    """(size_out, size_in) weights of torch's antialiased 1-D interpolation."""
    scale = size_in / size_out
    support = _SUPPORT[interpolation] * (scale if scale >= 1.0 else 1.0)
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), size_in)
        w = _kernel((np.arange(lo, hi) - center + 0.5) * invscale, interpolation)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights


def output_size(height: int, width: int, spec: dict[str, Any]) -> tuple[int, int]:
    """(height, width) after the resize, with torchvision's / transformers' rounding."""
    if spec["resize"] == "squash":
        h, w = spec["size"]
        return int(h), int(w)
    target = int(spec["size"])
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(target * long / short)
    return (new_long, target) if width <= height else (target, new_long)


def _resize(
    image: Image.Image, size: tuple[int, int], spec: dict[str, Any], keep: tuple[slice, slice]
) -> np.ndarray:
    """uint8 (H, W, 3) pixels resized to ``size``, only its rows and columns in ``keep``
    (what the crop keeps: each output pixel depends on its own row and column only, so
    the rest need not be computed)."""
    if (image.height, image.width) == size:
        return np.asarray(image, dtype=np.uint8)[keep]
    interpolation = spec["interpolation"]
    if spec["resampler"] == "pil":
        resized = image.resize((size[1], size[0]), _PIL_FILTERS[interpolation])
        return np.asarray(resized, dtype=np.uint8)[keep]
    # horizontal pass first, then vertical, as torch does; the horizontal pass reads only
    # the rows the vertical one needs for its kept rows. Channel by channel: each plane
    # is a plain (rows, columns) matrix for BLAS, with no transposed copy of the frame
    rows, (top, bottom) = _pass_weights(image.height, size[0], keep[0], interpolation)
    columns, (left, right) = _pass_weights(image.width, size[1], keep[1], interpolation)
    pixels = np.asarray(image, dtype=np.uint8)[top:bottom, left:right]
    planes = []
    for channel in range(pixels.shape[2]):
        plane = pixels[:, :, channel].astype(np.float64)
        if columns is not None:
            plane = _apply(columns, plane.T).T  # (rows, kept columns)
        if rows is not None:
            plane = _apply(rows, plane)  # (kept rows, kept columns)
        planes.append(plane)
    return np.stack(planes, axis=-1).astype(np.uint8)


def _pass_weights(
    size_in: int, size_out: int, keep: slice, interpolation: str
) -> tuple[tuple[np.ndarray, int] | None, tuple[int, int]]:
    """One pass's fixed-point weights for the kept outputs, cut to the inputs they read,
    and that input span (None weights: the axis keeps its size, only a slice is read)."""
    if size_in == size_out:
        start, stop, _ = keep.indices(size_in)
        return None, (start, stop)
    weights, bits = _fixed_weights(size_in, size_out, interpolation)
    kept = weights[keep]
    used = np.flatnonzero(kept.any(axis=0))
    lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
    return (kept[:, lo:hi], bits), (lo, hi)


def _apply(weights: tuple[np.ndarray, int], plane: np.ndarray) -> np.ndarray:
    """One pass along the first axis of a float64 ``plane``, rounded and clipped to
    uint8 levels as torch's kernel rounds between its passes (as float64 again)."""
    matrix, bits = weights
    # in float64, so BLAS does the product (numpy's integer products are plain loops);
    # every partial sum is an integer below 2**53 (int16 weights x uint8 pixels x a
    # row), so the result is exact
    moved = (matrix @ plane).astype(np.int64)
    return np.clip(((1 << (bits - 1)) + moved) >> bits, 0, 255).astype(np.float64)


@functools.lru_cache(maxsize=64)
def _fixed_weights(size_in: int, size_out: int, interpolation: str) -> tuple[np.ndarray, int]:
    """:func:`_fixed_point` of :func:`resample_matrix`, as float64 for the product
    (computed once per size: a video's frames all have one)."""
    weights, bits = _fixed_point(resample_matrix(size_in, size_out, interpolation))
    matrix = weights.astype(np.float64)
    matrix.flags.writeable = False
    return matrix, bits


def _fixed_point(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """Weights as torch's uint8 kernel holds them: int16 with as many fraction bits as
    the largest weight allows."""
    bits = 0
    while bits < 15 and int(0.5 + weights.max() * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    scaled = weights * (1 << bits)
    return np.trunc(scaled + np.where(scaled < 0, -0.5, 0.5)).astype(np.int64), bits


def _kept(size: tuple[int, int], crop: Sequence[int] | None, rounding: str) -> tuple[slice, slice]:
    """The rows and columns of a resized image of ``size`` that the center crop keeps
    (all of them without a crop, or where the crop pads)."""
    if crop is None or int(crop[0]) > size[0] or int(crop[1]) > size[1]:
        return slice(None), slice(None)
    kept = []
    for length, target in zip(size, crop, strict=True):
        offset = _crop_start(length, int(target), rounding)
        kept.append(slice(offset, offset + int(target)))
    return kept[0], kept[1]


def _crop_start(length: int, target: int, rounding: str) -> int:
    """Where a center crop of ``target`` starts along ``length``: torchvision's
    CenterCrop rounds (``"round"``), transformers' center_crop truncates."""
    offset = (length - target) / 2.0
    return round(offset) if rounding == "round" else int(offset)


def _crop(pixels: np.ndarray, crop: Sequence[int], rounding: str) -> np.ndarray:
    ch, cw = int(crop[0]), int(crop[1])
    h, w = pixels.shape[:2]
    if ch > h or cw > w:  # pad with zeros first, as both libraries do
        top, left = max(ch - h, 0) // 2, max(cw - w, 0) // 2
        padded = np.zeros((max(h, ch), max(w, cw), pixels.shape[2]), dtype=pixels.dtype)
        padded[top : top + h, left : left + w] = pixels
        pixels, (h, w) = padded, padded.shape[:2]
    top, left = _crop_start(h, ch, rounding), _crop_start(w, cw, rounding)
    return pixels[top : top + ch, left : left + cw]


def preprocess(images: Sequence[Image.Image], spec: dict[str, Any]) -> np.ndarray:
    """float32 (N, 3, H, W) model input for RGB images, as the source tower made it."""
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    out = []
    for image in images:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        size = output_size(rgb.height, rgb.width, spec)
        keep = _kept(size, spec["crop"], spec["crop_rounding"])
        pixels = _resize(rgb, size, spec, keep)
        if spec["crop"] is not None and keep == (slice(None), slice(None)):
            pixels = _crop(pixels, spec["crop"], spec["crop_rounding"])  # pads it
        scaled = pixels.astype(np.float32) / np.float32(255.0)
        out.append(((scaled - mean) / std).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)
