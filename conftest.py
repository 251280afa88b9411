"""Fixtures shared by the core's tests (tests/) and each plugin's (plugins/*/tests/):
images on disk, plugin isolation, a third-party plugin, labelled pairs, and tiny models
of each shipped backbone saved in their real on-disk formats.

Helpers that are plain functions live in :mod:`mmsim.plugin.testing`, importable by
any test module.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmsim.plugin.loading
from mmsim.plugin.testing import write_images
from tests.paths import OUTSIDE_PLUGIN_DIR


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP, saved with save_pretrained with the real CLIP BPE tokenizer."""
    from mmsim_openai_clip.testing import TINY, save_random_clip

    return save_random_clip(tmp_path_factory.mktemp("tiny_clip"), config=TINY, seed=0)


@pytest.fixture(scope="session")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Reload plugins before and after the test (the test may change the environment)."""
    mmsim.plugin.loading.reset()
    yield
    mmsim.plugin.loading.reset()


@pytest.fixture
def no_autoload(monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> None:
    """Only the core's own components, plus whatever the test registers."""
    monkeypatch.setenv(mmsim.plugin.loading.ENV_DISABLE_AUTOLOAD, "1")
    monkeypatch.delenv(mmsim.plugin.loading.ENV_PLUGINS, raising=False)


@pytest.fixture
def outside_plugin(fresh_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party plugin (encoder ``outside``), importable and registered by module
    name."""
    monkeypatch.syspath_prepend(str(OUTSIDE_PLUGIN_DIR))
    monkeypatch.setenv(mmsim.plugin.loading.ENV_PLUGINS, "mmsim_outside")


@pytest.fixture(scope="session")
def open_clip_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny open_clip checkpoints in each on-disk form the plugin reads."""
    from mmsim_open_clip.testing import (
        SIGLIP_PREPROCESS,
        TINY_CLIP,
        TINY_SIGLIP,
        save_arch_and_weights,
        save_local_dir,
    )

    root = tmp_path_factory.mktemp("open_clip")
    config, weights = save_arch_and_weights(root / "arch", "mmsim-tiny-clip", TINY_CLIP, seed=1)
    return {
        "clip_dir": save_local_dir(root / "clip", TINY_CLIP, seed=2),
        "siglip_dir": save_local_dir(
            root / "siglip", TINY_SIGLIP, preprocess_cfg=SIGLIP_PREPROCESS, seed=3
        ),
        "arch_config": config,
        "arch_weights": weights,
    }


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny SigLIP with a SentencePiece tokenizer trained here, save_pretrained."""
    from mmsim_siglip.testing import save_random_siglip

    return save_random_siglip(tmp_path_factory.mktemp("tiny_siglip"), seed=0)


@pytest.fixture(scope="session")
def labelled_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Image pairs with real signal: an image and a noisy copy match, two scenes do not.

    Scenes differ in hue and layout, so even a tiny random model scores copies higher
    than other scenes; the labels are known by construction.
    """
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    originals, copies = [], []
    for i in range(16):
        angle = 2 * np.pi * i / 16
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (3 + i % 4) * np.pi)
        scene = np.stack([wave * np.cos(angle + k) for k in range(3)], -1)
        pixels = ((scene + 1) * 127.5).clip(0, 255)
        noisy = (pixels + rng.normal(0, 12, pixels.shape)).clip(0, 255)
        for target, array, name in ((originals, pixels, "a"), (copies, noisy, "b")):
            path = folder / f"scene{i:02d}{name}.png"
            Image.fromarray(array.astype(np.uint8)).save(path)
            target.append(str(path))
    query, response, label = [], [], []
    for i in range(16):
        for j in (i, (i + 3) % 16, (i + 7) % 16):
            query.append(originals[i])
            response.append(copies[j])
            label.append(int(i == j))
    return {"query": query, "response": response, "label": label}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real small file system (tmpfs: 4 MiB, 256 files) mounted for one test, for the
    disk-full tests to fill (:func:`mmsim.plugin.testing.fill_disk`); unmounted after.
    Skipped, with the reason, only where mounting is not permitted."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: run the suite as root to include this test")
    options = "size=4m,nr_inodes=256"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = mounted.stderr.strip()
        if "permission denied" in reason.lower() or "not permitted" in reason.lower():
            pytest.skip(f"mounting a tmpfs is not permitted here: {reason}")
        pytest.fail(f"mount -t tmpfs failed: {reason}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
