"""An export to a full file system (a real 4 MiB tmpfs, filled) is one DiskFullError
naming the export and the file system, from Python and from the command line, and
leaves no temporary folder behind."""

from __future__ import annotations

import shutil

import pytest

from mmsim import Matcher
from mmsim.errors import DiskFullError
from mmsim.plugin.testing import fill_disk, run_cli


def test_an_export_to_a_full_disk_says_so_and_leaves_nothing(small_disk, tmp_path):
    out = small_disk / "export"
    ballast = fill_disk(small_disk)
    with pytest.raises(DiskFullError) as full:
        Matcher("demo", progress=False).export_onnx(out, report=lambda _: None)
    message = str(full.value)
    assert message.startswith(f"cannot write the export {out}")
    assert f"on {small_disk} and run the same command again" in message
    assert "an export already there is left as it was" in message
    failed = run_cli(
        "export", "encoder=demo", f"output={out}", "runtime.progress=false", cwd=tmp_path
    )
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    last = failed.stderr.splitlines()[-1]  # (after the weights' loading bar, if any)
    assert last.startswith(f"mmsim export: error: cannot write the export {out}")
    shutil.rmtree(ballast)
    assert list(small_disk.iterdir()) == []  # no temporary export folder


def test_an_export_that_fills_the_disk_part_way_says_so_and_leaves_nothing(small_disk):
    """Room for the start of the image graph only: torch.onnx's writer runs out in the
    middle of a file, and that is a full disk too, not a failed export of the graph."""
    out = small_disk / "export"
    ballast = fill_disk(small_disk, leave=256 * 1024)
    with pytest.raises(DiskFullError) as full:
        Matcher("demo", progress=False).export_onnx(out, report=lambda _: None)
    assert str(full.value).startswith(f"cannot write the export {out}")
    assert f"the file system {small_disk} is full" in str(full.value)
    shutil.rmtree(ballast)
    assert list(small_disk.iterdir()) == []
