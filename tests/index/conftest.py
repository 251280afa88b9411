"""Fixtures of the index tests that build, kill and fill: one collection of files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsim.plugin.testing import write_images


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 image files in six folders (part0 ... part5), for builds to be cut part-way."""
    root = tmp_path_factory.mktemp("collection")
    for part in range(6):
        write_images(root / f"part{part}", 10)
    return root
