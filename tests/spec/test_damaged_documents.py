"""A saved matcher that was emptied, cut short or edited by hand is named, with what to do."""

from __future__ import annotations

import json
import pickle

import pytest

from mmsim import Matcher
from mmsim.errors import DamagedFileError


@pytest.fixture(scope="module")
def matcher():
    return Matcher("toy", query="image", response="text", progress=False)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "it is empty"),
        ('{"format": "mmsim-matcher", "vers', "it is not valid JSON"),
        ("[]", "it holds a JSON list, not an object"),
        ('{"format": "mmsim-matcher", "version": 1}', "its 'image_encoder' entry is missing"),
    ],
)
def test_damaged_matcher_json_is_named(matcher, tmp_path, content, problem):
    folder = matcher.save(tmp_path / "m").parent
    (folder / "matcher.json").write_text(content)
    with pytest.raises(DamagedFileError, match=rf"matcher\.json cannot be read: {problem}") as got:
        Matcher.load(folder)
    again = pickle.loads(pickle.dumps(got.value))  # as Ray hands it to the driver
    assert (str(again), again.path) == (str(got.value), got.value.path)


def test_bad_threshold_state_is_named(tmp_path):
    m = Matcher("toy", threshold="isotonic", progress=False)
    path = m.save(tmp_path / "m")
    document = json.loads(path.read_text())
    document["threshold_state"] = {"x": [0.1]}
    path.write_text(json.dumps(document))
    with pytest.raises(DamagedFileError, match="threshold_state does not fit"):
        Matcher.load(tmp_path / "m")


def test_saved_matcher_leaves_no_temp_files(matcher, tmp_path):
    path = matcher.save(tmp_path / "m")
    assert [p.name for p in path.parent.iterdir()] == ["matcher.json"]
