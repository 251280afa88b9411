"""Property-based tests (Hypothesis) for modality detection and array handling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmsim.errors import ItemError
from mmsim.inputs.detect import as_item_list, detect_modality
from mmsim.inputs.images import MAX_ASPECT_RATIO, from_array, to_uint8

FAST = settings(max_examples=60, deadline=None)
sides = st.integers(1, 12)
pixel_dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_])


def _detect(text: str) -> str:
    try:
        return detect_modality(text)
    except ItemError as exc:
        return f"error: {exc.reason}"


@FAST
@given(st.text(max_size=40))
def test_surrounding_whitespace_never_changes_the_modality(tmp_path_factory, text):
    # in an empty folder, so no generated string names a file by accident
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("empty"))
        assert _detect(text) == _detect(text + "\n") == _detect("  " + text + "\r\n")


@FAST
@given(
    st.sampled_from(["http", "https", "s3", "gs", "hf", "memory", "file"]),
    st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20),
)
def test_any_url_without_whitespace_is_an_image(scheme, rest):
    assert detect_modality(f"{scheme}://{rest}") == "image"
    assert detect_modality(f"see {scheme}://{rest}") == "text"


@FAST
@given(st.lists(st.text(alphabet="abcxyz.,!", min_size=1, max_size=12), min_size=2, max_size=5))
def test_sentences_are_texts(tmp_path_factory, words):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("empty"))
        assert detect_modality(" ".join(words)) == "text"


@FAST
@given(
    st.tuples(sides, sides, st.sampled_from([None, 1, 3, 4])).flatmap(
        lambda s: arrays(pixel_dtypes, s[:2] if s[2] is None else s)
    )
)
def test_an_image_array_is_one_image_of_its_size(array):
    h, w = array.shape[:2]
    if max(h, w) / min(h, w) > MAX_ASPECT_RATIO:
        return
    if array.dtype == np.float32:
        array = np.nan_to_num(np.abs(array)) % 1.0
    assert len(as_item_list(array)) == 1 and detect_modality(array) == "image"
    assert from_array(array).size == (w, h)


@FAST
@given(st.integers(1, 4), sides, sides, st.sampled_from([1, 3, 4]))
def test_a_4d_array_is_a_batch_of_its_first_axis(n, h, w, c):
    items = as_item_list(np.zeros((n, h, w, c), np.uint8))
    assert len(items) == n and all(item.shape == (h, w, c) for item in items)


@FAST
@given(sides, sides, st.integers(2, 12).filter(lambda c: c not in (3, 4)))
def test_other_channel_counts_are_refused_never_split(h, w, c):
    array = np.zeros((h, w, c), np.uint8)
    assert as_item_list(array) == [array]  # one item, not h images
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        from_array(array)


@FAST
@given(arrays(np.uint16, st.tuples(sides, sides)))
def test_16_bit_scaling_keeps_order_and_range(array):
    out = to_uint8(array, "uint16")
    assert out.dtype == np.uint8
    order = np.argsort(array, axis=None, kind="stable")
    assert np.all(np.diff(out.flatten()[order].astype(int)) >= 0)  # monotone
    assert to_uint8(np.array([[0, 65535]], np.uint16), "uint16").tolist() == [[0, 255]]
