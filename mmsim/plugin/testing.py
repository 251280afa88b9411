"""Helpers for testing mmsim and its plugins: images on disk, installed-looking
distributions with real entry points, the command line run in-process, the Hugging
Face cache layout, and what a running index build has committed.

Plugin authors use them the way mmsim's own tests do (``from mmsim.plugin.testing
import run_cli, write_images``); the toy encoder (``Matcher("toy")``) gives them a
model without any backbone installed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# the console script pip/uv installed beside this interpreter, so tests run the command
# users run
MMSIM = [str(Path(sys.executable).parent / "mmsim")]
# the libraries a one-shot command over ONNX towers must not import (seconds each)
HEAVY = ("torch", "transformers")
_IMPORTED = "mmsim-imported:"
# ``mmsim ARGS`` run by ``python -c IMPORT_PROBE ARGS``, reporting at exit on stderr which
# of HEAVY it imported
IMPORT_PROBE = (
    "import atexit, sys, runpy\n"
    f"atexit.register(lambda: print({_IMPORTED!r}, ','.join(m for m in {HEAVY!r} "
    "if m in sys.modules) or '-', file=sys.stderr))\n"
    "sys.argv = ['mmsim', *sys.argv[1:]]\n"
    "runpy.run_module('mmsim', run_name='__main__')\n"
)


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
    """Environment for running the ``mmsim`` command in a subprocess: no ``MMSIM_*``
    settings of the calling process, offline hub, ``extra_paths`` on PYTHONPATH."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("MMSIM_")}
    paths = [str(p) for p in extra_paths or []]
    if result.get("PYTHONPATH"):
        paths.append(result["PYTHONPATH"])
    result["PYTHONPATH"] = os.pathsep.join(paths)
    result["HF_HUB_OFFLINE"] = "1"
    result.update(env)
    return result


def probing_imports(python: str | Path = sys.executable) -> list[str]:
    """The command line (to which the ``mmsim`` arguments are appended) that runs mmsim
    in ``python`` and reports which of :data:`HEAVY` it imported: read the report from
    its stderr with :func:`heavy_imports`. For tests and benchmarks of a quick start."""
    return [str(python), "-c", IMPORT_PROBE]


def heavy_imports(stderr: str) -> list[str]:
    """Which of :data:`HEAVY` a command started by :func:`probing_imports` imported."""
    _, mark, after = stderr.rpartition(_IMPORTED)
    if not mark:
        raise ValueError(f"no import report on stderr (the process died?):\n{stderr[-2000:]}")
    report = after.split()[0]
    return [] if report == "-" else report.split(",")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path) -> CliResult:
    """``mmsim ARGS`` run in this process (the console script's own ``main``), from
    ``cwd``: the same code path as the installed command without a new interpreter per
    call. What the command sets for itself (environment, warning format) is undone."""
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
    finally:
        os.chdir(previous)
        os.environ.clear()
        os.environ.update(environment)
        warnings.formatwarning = formatwarning
    return CliResult(code, out.getvalue(), err.getvalue())


def hub_cache(cache: Path, repo: str, files_from: Path) -> Path:
    """Lay out ``files_from`` as the Hugging Face cache holds a downloaded ``repo``."""
    base = cache / ("models--" + repo.replace("/", "--"))
    shutil.copytree(files_from, base / "snapshots" / "0123abc")
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0123abc")
    return cache


def fill_disk(disk: Path, leave: int = 0) -> Path:
    """Fill the file system at ``disk`` (a small test mount) so that ``leave`` bytes stay
    free, with files in ``disk/ballast`` (delete that folder to free the space again).
    ``leave=0`` also takes every free inode, so no file at all can be created."""
    ballast = disk / "ballast"
    ballast.mkdir(exist_ok=True)
    stats = os.statvfs(disk)
    size = stats.f_bavail * stats.f_frsize - leave
    if size > 0:
        with (ballast / "space").open("wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    if leave == 0:
        for n in range(stats.f_favail + 1):
            try:
                (ballast / f"inode{n}").touch()
            except OSError:
                break
    return ballast


def committed_rows(index_dir: Path) -> int:
    """Rows a running build has committed so far (0 before its manifest exists); what
    kill-and-resume tests poll to choose the moment to kill."""
    try:
        with sqlite3.connect(index_dir / "manifest.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0
