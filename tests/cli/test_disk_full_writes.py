"""Every write mmsim makes reports a full disk the same way: a saved matcher, embed
output and fit checkpoints on a real small file system (a 4 MiB tmpfs) that is full
end with one DiskFullError naming what was being written, the file system and what to
do, and leave no half-written file. (The index's own writes: tests/index.)"""

from __future__ import annotations

import shutil

import pytest

from mmsim import Matcher
from mmsim.errors import DiskFullError
from mmsim.plugin.testing import fill_disk, run_cli, write_images


def test_saving_a_matcher_on_a_full_disk_keeps_the_one_saved_before(small_disk):
    folder = small_disk / "matcher"
    Matcher("toy", progress=False).save(folder)
    before = (folder / "matcher.json").read_bytes()
    ballast = fill_disk(small_disk)
    calibrated = Matcher("toy", threshold={"name": "fixed", "value": 0.5}, progress=False)
    with pytest.raises(DiskFullError) as full:
        calibrated.save(folder)
    message = str(full.value)
    assert message.startswith(f"cannot write the matcher {folder} ({folder / 'matcher.json'})")
    assert f"on {small_disk} and run the same command again" in message
    assert full.value.what == f"the matcher {folder}"
    assert [p.name for p in folder.iterdir()] == ["matcher.json"]  # no temporary file
    assert (folder / "matcher.json").read_bytes() == before
    shutil.rmtree(ballast)
    calibrated.save(folder)
    assert Matcher.load(folder).spec.threshold.options["value"] == 0.5


def test_embed_output_on_a_full_disk_is_one_line_and_no_file(small_disk, tmp_path):
    images = [str(p) for p in write_images(tmp_path / "images", 3)]
    out = small_disk / "embeddings.npz"
    ballast = fill_disk(small_disk)
    args = ("embed", f"inputs=[{','.join(images)}]", "encoder=toy", f"output={out}")
    failed = run_cli(*args, cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"mmsim embed: error: cannot write the embeddings {out}:")
    assert f"on {small_disk} and run the same command again" in failed.stderr
    assert "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]
    shutil.rmtree(ballast)
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    assert out.is_file() and out.with_suffix(".meta.json").is_file()


def test_fit_on_a_full_disk_names_its_output(small_disk, tmp_path):
    images = write_images(tmp_path / "images", 4)
    pairs = ([str(p) for p in images], ["a red circle", "a blue square", "a dog", "a cat"])
    out = small_disk / "fit"
    out.mkdir()
    fill_disk(small_disk)
    with pytest.raises(DiskFullError) as full:
        Matcher("toy", progress=False).fit(pairs, output_dir=out, epochs=1, batch_size=2)
    assert str(full.value).startswith(f"cannot write the fit output {out}")
    assert "it trains again from the start" in str(full.value)
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size]  # no half file
