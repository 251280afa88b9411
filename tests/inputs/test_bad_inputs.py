"""Awkward and broken inputs, generated at run time: each class of input gets a clear
answer (an image, a text, or an error naming the item / argument / file), and with
``on_error="skip"`` a bad item costs only itself."""

from __future__ import annotations

import pickle
import time
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmsim import EmbeddingResult, Matcher
from mmsim.errors import ConfigError, DamagedFileError, ItemError, MissingDependencyError
from mmsim.inputs.detect import PathLikeTextWarning, detect_modality
from mmsim.inputs.images import load_image
from mmsim.inputs.tables import read_table
from mmsim.retrieval.search import semantic_search
from mmsim.scoring.ranking import top_k_of


@pytest.fixture(scope="module")
def matcher():
    return Matcher("toy", query="image", response="text", progress=False)


def gradient(h: int = 40, w: int = 24) -> np.ndarray:
    """An asymmetric picture, so a rotation or a flip changes its embedding."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx * yy) % 256], -1).astype(np.uint8)


def embed_one(matcher, item):
    return matcher.extract_embedding([item])[0]


def test_an_item_error_crosses_processes_whole(matcher, tmp_path):
    """Ray hands a worker's errors to the driver pickled: the item and reason survive."""
    gone = str(tmp_path / "gone.jpg")
    with pytest.raises(ItemError) as got:
        matcher.extract_embedding([gone])
    again = pickle.loads(pickle.dumps(got.value))
    assert (again.index, again.item, again.reason) == (0, gone, got.value.reason)
    assert str(again) == str(got.value)


# -- EXIF, 16-bit, closed images, extreme shapes -----------------------------------------
def test_exif_orientation_is_applied(matcher, tmp_path):
    pixels = gradient()
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display", what phones write
    path = tmp_path / "phone.png"
    stored.save(path, exif=exif)
    upright = np.rot90(pixels, k=-1).copy()  # what a photo viewer shows
    assert load_image(path).size == (40, 24)
    got, want = embed_one(matcher, path), embed_one(matcher, upright)
    assert np.abs(got - want).max() < 1e-5
    assert np.abs(got - embed_one(matcher, pixels)).max() > 1e-3


def test_16_bit_greyscale_is_scaled_not_clipped(matcher, tmp_path):
    path = tmp_path / "scan16.png"
    Image.fromarray(np.full((32, 32), 32896, dtype=np.uint16)).save(path)  # mid grey
    assert Image.open(path).mode.startswith("I;16")
    pixels = np.asarray(load_image(path))
    assert pixels.shape == (32, 32, 3) and np.all(pixels == 128)
    as_array = np.full((32, 32), 32896, dtype=np.uint16)
    assert np.abs(embed_one(matcher, path) - embed_one(matcher, as_array)).max() < 1e-6


def test_closed_pil_image_has_a_reason(matcher, tmp_path):
    image = Image.fromarray(gradient())
    image.close()
    result = matcher.extract_embedding([image, "a dog"], on_error="skip")
    assert result.indices == [1]
    assert "closed" in result.skipped[0].reason
    path = tmp_path / "lazy.png"
    image.close()
    Image.fromarray(gradient()).save(path)
    with Image.open(path) as lazy:  # the block ends before the pixels are read
        pass
    with path.open("rb") as file:  # the caller's file is closed before the pixels are read
        with_file = Image.open(file)
    for closed in (lazy, with_file):
        with pytest.raises(ItemError) as caught:
            matcher.extract_embedding([closed])
        assert "file was closed before its pixels were loaded" in str(caught.value)
        assert "AssertionError" not in str(caught.value)


def test_extreme_aspect_ratio_is_refused_fast(matcher, tmp_path):
    path = tmp_path / "line.png"
    Image.new("L", (100000, 1), 255).save(path)
    start = time.perf_counter()
    with pytest.raises(ItemError, match=r"item 0 .*100000x1.*aspect ratio"):
        matcher.extract_embedding([path])
    assert time.perf_counter() - start < 5  # refused before the resize, not after
    with pytest.raises(ItemError, match="aspect ratio"):
        matcher.extract_embedding([np.zeros((2, 400, 3), np.uint8)])


# -- arrays ----------------------------------------------------------------------------
def test_channels_first_array_is_one_clear_error(matcher):
    chw = np.transpose(gradient(), (2, 0, 1)).copy()
    with pytest.raises(ItemError, match=r"item 0 .*channels-first.*transpose\(1, 2, 0\)"):
        matcher.extract_embedding(chw)
    with pytest.raises(ItemError, match=r"shape \(40, 24, 2\)"):
        matcher.extract_embedding(np.zeros((40, 24, 2), np.uint8))
    with pytest.raises(ValueError, match="neither one image"):
        matcher.extract_embedding(np.zeros(10, np.uint8))


def test_batch_array_and_tensor(matcher):
    batch = np.stack([gradient(), gradient()[::-1].copy()])
    got = matcher.extract_embedding(batch)
    assert got.shape == (2, 32)
    assert np.abs(got[1] - embed_one(matcher, batch[1])).max() < 1e-6
    tensor = torch.from_numpy(batch[0]).float() / 255.0
    assert np.abs(embed_one(matcher, tensor) - got[0]).max() < 1e-2
    with pytest.raises(ItemError, match=r"item 1 .*not inside a list"):
        matcher.extract_embedding(["a dog", batch])


def test_bad_array_values_are_named(matcher):
    nan = np.full((8, 8), np.nan, np.float32)
    big = np.full((8, 8), 70000, np.int64)
    result = matcher.extract_embedding([nan, big, gradient()], on_error="skip")
    assert result.indices == [2]
    reasons = [s.reason for s in result.skipped]
    assert "NaN" in reasons[0] and "0-65535" in reasons[1]


# -- strings: paths, directories, path-like texts ------------------------------------------
def test_path_with_trailing_newline_is_an_image(matcher, image_paths, tmp_path):
    lines = (tmp_path / "list.txt").write_text(f"{image_paths[0]}\n{image_paths[1]}\n")
    assert lines
    items = (tmp_path / "list.txt").open().readlines()
    assert items[0].endswith("\n") and detect_modality(items[0]) == "image"
    got = matcher.extract_embedding(items)
    assert np.abs(got - matcher.extract_embedding(image_paths[:2])).max() < 1e-6


def test_directory_string_is_never_a_caption(matcher, tmp_path):
    with pytest.raises(ItemError, match="names a directory"):
        matcher.extract_embedding([str(tmp_path)])
    result = matcher.extract_embedding([str(tmp_path) + "\n", "a cat"], on_error="skip")
    assert result.indices == [1] and result.skipped[0].index == 0


def test_mistyped_path_warns_but_embeds(matcher):
    with pytest.warns(PathLikeTextWarning, match=r"0 \('photos/hrose'\)"):
        got = matcher.extract_embedding(["photos/hrose", "a horse"])
    assert got.shape == (2, 32)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PathLikeTextWarning)
        matcher.extract_embedding(["photos/hrose"], modality="text")  # the user said so
        matcher.extract_embedding(["a man riding a horse"])


# -- texts -----------------------------------------------------------------------------
def test_unencodable_text_goes_through_raise_and_skip(matcher):
    bad = "broken \ud800 caption"
    with pytest.raises(ItemError, match=r"item 1 .*lone surrogate"):
        matcher.extract_embedding(["a dog", bad, "a cat"])
    result = matcher.extract_embedding(["a dog", bad, "a cat"], on_error="skip")
    assert result.indices == [0, 2] and result.skipped[0].index == 1
    alone = matcher.extract_embedding(["a dog", "a cat"])
    assert np.abs(result.embeddings - alone).max() < 1e-6


def test_tokenizer_failure_is_found_per_item(matcher, monkeypatch):
    tower = matcher.text_tower
    real = tower.tokenize

    def picky(texts):  # a tokenizer with its own limits (some refuse control bytes)
        if any("\x00" in t for t in texts):
            raise TypeError("")
        return real(texts)

    monkeypatch.setattr(tower, "tokenize", picky)
    result = matcher.extract_embedding(["a dog", "nul\x00here", "a cat"], on_error="skip")
    assert result.indices == [0, 2]
    assert "tokenizer cannot encode it (TypeError (no message))" in result.skipped[0].reason


# -- raise mode names the first bad item ---------------------------------------------------
@pytest.mark.parametrize(
    ("items", "first"),
    [
        (["a dog", "gone.jpg", "a cat", None], 1),  # image failure before a detection one
        (["a dog", "x \ud800", "gone.jpg"], 1),  # text failure before an image one
        (["gone.jpg", "x \ud800", None], 0),
        ([None, "gone.jpg"], 0),
    ],
)
def test_raise_mode_names_the_first_bad_item(matcher, tmp_path, monkeypatch, items, first):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ItemError) as caught:
        matcher.extract_embedding(items)
    assert caught.value.index == first


def test_skip_mode_keeps_every_other_row_exact(matcher, image_paths, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(image_paths[0].read_bytes()[:200])
    good = [str(image_paths[0]), "a dog", image_paths[1], "a red car"]
    corpus = [
        good[0],
        None,
        "x \ud800",
        good[1],
        broken,
        np.zeros((3, 8, 8), np.uint8),
        good[2],
        str(tmp_path),
        good[3],
        {"path": ""},
    ]
    result = matcher.extract_embedding(corpus, on_error="skip", batch_size=3)
    assert isinstance(result, EmbeddingResult)
    assert result.indices == [0, 3, 6, 8]
    assert [s.index for s in result.skipped] == [1, 2, 4, 5, 7, 9]
    assert all(s.reason for s in result.skipped)
    assert np.abs(result.embeddings - matcher.extract_embedding(good)).max() < 1e-6


# -- arguments -------------------------------------------------------------------------
def test_arguments_are_named(matcher):
    with pytest.raises(ConfigError, match=r"modality must be one of 'image', 'text'; got 'audio'"):
        matcher.extract_embedding(["a dog"], modality="audio")
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ConfigError, match=rf"batch_size must be at least 1.*got {bad!r}"):
            matcher.extract_embedding(["a dog"], batch_size=bad)
    with pytest.raises(ConfigError, match="on_error must be one of"):
        matcher.extract_embedding(["a dog"], on_error="ignore")
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        semantic_search(
            query_embeddings=np.ones((1, 4)), response_embeddings=np.ones((2, 4)), top_k=0
        )


def test_label_column_of_wrong_length(labelled_pairs):
    matcher = Matcher(
        "toy",
        query="query",
        response="response",
        threshold="platt",
        progress=False,
    )
    data = {**labelled_pairs, "label": labelled_pairs["label"][:-2]}
    with pytest.raises(ValueError, match=r"label column 'label' has 46 values .* 48 pairs"):
        matcher.calibrate(data)


# -- search ------------------------------------------------------------------------------
def test_nan_rows_are_refused_by_row_and_rank_last_in_scores():
    corpus = np.eye(4, dtype=np.float32)
    corpus[2] = np.nan
    with pytest.raises(ValueError, match=r"response_embeddings row\(s\) 2 hold NaN"):
        semantic_search(query_embeddings=np.ones((1, 4)), response_embeddings=corpus)
    scores = np.array([[0.1, np.nan, 0.3, 0.2]], dtype=np.float32)
    values, ids = top_k_of(scores, 4)
    assert ids.tolist() == [[2, 3, 0, 1]] and np.isnan(values[0, -1])


# -- damaged files ----------------------------------------------------------------------------
def test_damaged_tables_are_named(tmp_path):
    parquet = tmp_path / "pairs.parquet"
    pd.DataFrame({"image": ["a.jpg"], "caption": ["x"]}).to_parquet(parquet)
    parquet.write_bytes(parquet.read_bytes()[:40])
    with pytest.raises(DamagedFileError, match=r"pairs\.parquet is not a readable Parquet"):
        read_table(str(parquet))
    csv = tmp_path / "pairs.csv"
    csv.write_bytes(b"image,caption\n\xff\xfe,x\n")
    with pytest.raises(DamagedFileError, match=r"pairs\.csv cannot be read as UTF-8"):
        read_table(str(csv))


# -- sources: Parquet bytes, fsspec ------------------------------------------------------
def test_parquet_bytes_column_is_images(matcher, image_paths, tmp_path):
    path = tmp_path / "inline.parquet"
    blobs = [p.read_bytes() for p in image_paths[:2]]
    pd.DataFrame(
        {
            "image": blobs,
            "caption": ["a dog", None],
            "struct": [{"bytes": b, "path": None} for b in blobs],
        }
    ).to_parquet(path)
    rows = read_table(path).rows
    assert isinstance(rows[0]["image"], bytes) and rows[1]["caption"] is None
    got = matcher.extract_embedding([row["image"] for row in rows])
    assert np.abs(got - matcher.extract_embedding(image_paths[:2])).max() < 1e-6
    from_structs = matcher.extract_embedding([row["struct"] for row in rows])
    assert np.abs(from_structs - got).max() < 1e-6
    with pytest.raises(ItemError, match="missing value"):
        matcher.extract_embedding([row["caption"] for row in rows])


def test_fsspec_memory_urls(matcher, image_paths):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/mmsim-test/img0.jpg", image_paths[0].read_bytes())
    fs.pipe("/mmsim-test/bad.jpg", b"not an image")
    items = [
        "memory://mmsim-test/img0.jpg",
        "memory://mmsim-test/bad.jpg",
        "memory://mmsim-test/none.jpg",
    ]
    result = matcher.extract_embedding(items, on_error="skip")
    assert result.indices == [0]
    assert "not a readable image" in result.skipped[0].reason
    assert "could not read memory://mmsim-test/none.jpg" in result.skipped[1].reason
    assert np.abs(result.embeddings[0] - embed_one(matcher, image_paths[0])).max() < 1e-6


def test_missing_protocol_package_is_named(matcher):
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.fail("this test needs an environment without s3fs")  # not a silent skip
    with pytest.raises(MissingDependencyError, match="s3fs"):
        matcher.extract_embedding(["s3://bucket/cat.jpg"], on_error="skip")
    with pytest.raises(ItemError, match="unknown URL protocol nosuch://"):
        matcher.extract_embedding(["nosuch://host/cat.jpg"])


def test_generated_compressed_garbage_is_named(matcher, tmp_path):
    """A PNG whose chunk data is inflated garbage: decoded by PIL, refused with a reason."""
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + zlib.compress(b"\0" * 1000))
    with pytest.raises(ItemError, match=r"item 0 .*garbage.png"):
        matcher.extract_embedding([path])
