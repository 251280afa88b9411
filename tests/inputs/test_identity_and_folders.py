"""When two items are the same item, and which files a folder holds: one rule each,
used by pair scoring, evaluation, fine-tuning, the commands and the index."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsim.inputs.folders import image_files, scan_folder
from mmsim.inputs.identity import distinct, item_key


def test_the_same_file_is_one_item_however_it_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    spellings = ["photos/a.jpg", "./photos/a.jpg", str(tmp_path / "photos" / "a.jpg")]
    spellings.append(Path("photos/a.jpg"))  # type: ignore[arg-type]
    assert len({item_key(s) for s in spellings}) == 1
    # a string that names no file is its text: two captions are two items
    assert item_key("a dog") == item_key("a dog") != item_key("a dog ")
    assert item_key("photos/missing.jpg") != item_key(Path("photos/missing.jpg"))
    assert item_key("https://host/a.jpg") == item_key(" https://host/a.jpg ")
    assert item_key(b"\x89PNG") == item_key(bytearray(b"\x89PNG"))


def test_in_memory_images_are_the_same_item_only_when_they_are_the_same_object():
    one = Image.new("RGB", (4, 4))
    twin = Image.new("RGB", (4, 4))
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    assert item_key(one) == item_key(one) != item_key(twin)
    assert item_key(array) != item_key(array.copy())
    assert distinct([one, "a dog", twin, one, "a dog"]) == ([0, 1, 2], [0, 1, 2, 0, 1])


def _tree(root: Path) -> None:
    for name in ["b/z.PNG", "a.jpg", "b/c/y.webp", "notes.txt", "skip/x.jpg"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * len(name))


def test_scan_folder_matches_globs_on_relative_paths_in_sorted_order(tmp_path):
    _tree(tmp_path)
    found = scan_folder(tmp_path, exclude=["skip/*"])
    assert [f.relative for f in found] == ["a.jpg", "b/c/y.webp", "b/z.PNG"]
    assert (found[2].name, found[2].folder, found[0].folder) == ("z.PNG", "b", "")
    assert found[0].size == len("a.jpg") and found[0].path == str(tmp_path.resolve() / "a.jpg")
    assert [f.relative for f in scan_folder(tmp_path, include=["*.txt"])] == ["notes.txt"]
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        scan_folder(tmp_path / "a.jpg")


def test_links_are_followed_only_when_asked_and_a_loop_is_listed_once(tmp_path):
    _tree(tmp_path / "photos")
    os.symlink(tmp_path / "photos" / "b", tmp_path / "photos" / "linked")
    os.symlink(tmp_path / "photos", tmp_path / "photos" / "b" / "loop")
    plain = [f.relative for f in scan_folder(tmp_path / "photos")]
    assert plain == ["a.jpg", "b/c/y.webp", "b/z.PNG", "skip/x.jpg"]
    followed = [f.relative for f in scan_folder(tmp_path / "photos", follow_symlinks=True)]
    assert sorted(set(followed)) == followed  # every file once, the loop not walked again
    assert "linked/z.PNG" in followed or "b/z.PNG" in followed


def test_image_files_keeps_the_folder_as_given_and_names_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "photos")
    assert image_files("photos")[0] == os.path.join("photos", "a.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        image_files("empty")
    with pytest.raises(FileNotFoundError, match="images_dir 'nope' is not a folder"):
        image_files("nope")
