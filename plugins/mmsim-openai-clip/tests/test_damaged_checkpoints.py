"""A truncated checkpoint file, in a local folder or in the hub cache's copy of a hub id,
is named with what to do, not reported as a missing checkpoint or a bare parser error."""

from __future__ import annotations

import shutil

import pytest

from mmsim import Matcher
from mmsim.errors import DamagedFileError
from mmsim.plugin.testing import hub_cache


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_truncated_checkpoint_file_is_named(tiny_clip_dir, tmp_path, name):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_clip_dir, folder)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError, match=rf"{name} is damaged .*download or copy it again"):
        Matcher(checkpoint=str(folder), progress=False)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_damaged_file_in_the_hub_cache_is_named(tiny_clip_dir, tmp_path, monkeypatch, name):
    """A hub id whose cached download was cut short: the damaged file is named, not
    reported as a missing checkpoint or as a bare parser error."""
    cache = hub_cache(tmp_path, "acme/tiny-clip", tiny_clip_dir)
    file = cache / "models--acme--tiny-clip" / "snapshots" / "0123abc" / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DamagedFileError, match=rf"'acme/tiny-clip' .*/{name} is damaged") as error:
        Matcher(
            "openai_clip", checkpoint="acme/tiny-clip", encoder_options={"cache_dir": str(cache)}
        )
    assert error.value.path == file
