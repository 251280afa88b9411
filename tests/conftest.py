"""Shared fixtures: a tiny CLIP saved in the real format, images on disk, plugin isolation."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmsim.plugins

TESTS = Path(__file__).resolve().parent
TOY_PLUGIN_DIR = TESTS / "toy_plugin"
REPO = TESTS.parent


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP, saved with save_pretrained with the real CLIP BPE tokenizer."""
    from mmsim_openai_clip.testing import TINY, save_random_clip

    return save_random_clip(tmp_path_factory.mktemp("tiny_clip"), config=TINY, seed=0)


def write_images(folder: Path, count: int = 5) -> list[Path]:
    """Distinct images of different sizes and formats (JPEG and PNG, RGB and grey)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    paths = []
    for i in range(count):
        h, w = 40 + 7 * i, 56 - 3 * i
        pixels = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if i % 2:
            path = folder / f"img{i}.png"
            (image.convert("L") if i == 3 else image).save(path)
        else:
            path = folder / f"img{i}.jpg"
            image.save(path, quality=90)
        paths.append(path)
    return paths


def write_collection(root: Path) -> list[Path]:
    """An image collection: two sub-folders of distinct images and one unreadable file."""
    paths = write_images(root / "beach", 4)
    rng = np.random.default_rng(7)
    for i in range(4):
        pixels = (rng.random((30 + i, 50, 3)) * 255).astype(np.uint8)
        path = root / "city" / f"c{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    (root / "broken.jpg").write_bytes(b"this is not a jpeg")
    return paths


@pytest.fixture(scope="session")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Reload plugins before and after the test (the test may change the environment)."""
    mmsim.plugins.reset()
    yield
    mmsim.plugins.reset()


@pytest.fixture
def no_autoload(monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> None:
    """Only the core's own components, plus whatever the test registers."""
    monkeypatch.setenv(mmsim.plugins.ENV_DISABLE_AUTOLOAD, "1")
    monkeypatch.delenv(mmsim.plugins.ENV_PLUGINS, raising=False)


@pytest.fixture
def toy_plugin(fresh_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy third-party plugin, importable and registered by module name."""
    monkeypatch.syspath_prepend(str(TOY_PLUGIN_DIR))
    monkeypatch.setenv(mmsim.plugins.ENV_PLUGINS, "mmsim_toy")


def install_dist_info(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> Path:
    """Make ``dist`` an installed distribution on ``site``: real metadata, real entry points.

    importlib.metadata finds it like any pip-installed package once ``site`` is on
    sys.path, so mmsim discovers its plugins through the normal entry-point path.
    """
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mmsim]\n{lines}\n")
    return info


def cli_env(extra_paths: list[Path] | None = None, **env: str) -> dict[str, str]:
    """Environment for running the ``mmsim`` command in a subprocess."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("MMSIM_")}
    paths = [str(p) for p in extra_paths or []]
    if result.get("PYTHONPATH"):
        paths.append(result["PYTHONPATH"])
    result["PYTHONPATH"] = os.pathsep.join(paths)
    result["HF_HUB_OFFLINE"] = "1"
    result.update(env)
    return result


# the console script pip/uv installed, so the tests run the command users run
MMSIM = [str(Path(sys.executable).parent / "mmsim")]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path) -> CliResult:
    """``mmsim ARGS`` run in this process (the console script's own ``main``), from
    ``cwd``: the same code path as the installed command without a new interpreter per
    call. A few tests still run the real console script in a subprocess."""
    from mmsim.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous, environment, formatwarning = Path.cwd(), dict(os.environ), warnings.formatwarning
    code = 0
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:  # what the command set for itself does not leak into the next test
        os.chdir(previous)
        os.environ.clear()
        os.environ.update(environment)
        warnings.formatwarning = formatwarning
    return CliResult(code, out.getvalue(), err.getvalue())


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


def hub_cache(cache: Path, repo: str, files_from: Path) -> Path:
    """Lay out ``files_from`` as the Hugging Face cache holds a downloaded ``repo``."""
    import shutil

    base = cache / ("models--" + repo.replace("/", "--"))
    shutil.copytree(files_from, base / "snapshots" / "0123abc")
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0123abc")
    return cache


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


def committed_rows(index_dir: Path) -> int:
    """Rows a running build has committed so far (0 before its manifest exists); what
    kill-and-resume tests poll to choose the moment to kill."""
    try:
        with sqlite3.connect(index_dir / "manifest.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0
