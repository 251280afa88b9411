"""Every write mmsim makes reports a full disk the same way: a saved matcher, embed
output and fit checkpoints on a real small file system (a 4 MiB tmpfs) that is full
end with one DiskFullError naming what was being written, the file system and what to
do, and leave no half-written file. (The index's own writes: tests/index.)"""

from __future__ import annotations

import errno
import json
import pickle
import shutil

import pytest

from mmsim import Matcher
from mmsim.errors import DiskFullError
from mmsim.files import reporting_full_disk
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


def test_a_table_output_on_a_full_disk_keeps_the_one_written_before(small_disk, tmp_path):
    """classify's CSV (match's too: the same write): a second run that finds the disk
    full leaves the first run's file whole and names it and the file system."""
    for name in ("cat", "dog"):
        write_images(tmp_path / "zoo" / name, count=2)
    out = small_disk / "zoo.csv"
    args = ("classify", "encoder=toy", f"images_dir={tmp_path / 'zoo'}", f"output={out}")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    before = out.read_bytes()
    ballast = fill_disk(small_disk, leave=1024)  # less than a page: no new file fits
    failed = run_cli(*args, cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(f"mmsim classify: error: cannot write {out}: ")
    assert f"the file system {small_disk} is full" in failed.stderr
    assert "a file it replaces is left as it was" in failed.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "zoo.csv"]
    shutil.rmtree(ballast)


def test_embeddings_and_their_metadata_are_replaced_together_or_not_at_all(small_disk, tmp_path):
    """The new .npz fits, its .meta.json (long: forty skipped files) does not: both stay
    as the last run wrote them, never new embeddings beside the old run's metadata."""
    images = [str(p) for p in write_images(tmp_path / "images", 2)]
    (tmp_path / "bad").mkdir()
    for n in range(40):
        (tmp_path / "bad" / f"not-an-image-{n:02d}.png").write_bytes(b"text, not a PNG")
    bad = [str(p) for p in sorted((tmp_path / "bad").iterdir())]
    out = small_disk / "embeddings.npz"
    first = ("embed", f"inputs=[{images[0]}]", "encoder=toy", f"output={out}")
    assert run_cli(*first, cwd=tmp_path).returncode == 0
    meta = out.with_suffix(".meta.json")
    before = out.read_bytes(), meta.read_bytes()
    ballast = fill_disk(small_disk, leave=4096)  # a page: the new .npz, not its metadata
    inputs = f"inputs=[{','.join(images + bad)}]"
    skip = ("runtime.on_error=skip", "runtime.progress=false")
    again = ("embed", inputs, "encoder=toy", f"output={out}", *skip)
    failed = run_cli(*again, cwd=tmp_path)
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.startswith(f"mmsim embed: error: cannot write the embeddings {out}")
    assert (out.read_bytes(), meta.read_bytes()) == before
    assert sorted(p.name for p in small_disk.iterdir()) == [
        "ballast",
        "embeddings.meta.json",
        "embeddings.npz",
    ]
    shutil.rmtree(ballast)
    assert run_cli(*again, cwd=tmp_path).returncode == 0
    assert len(json.loads(meta.read_text())["skipped"]) == 40


def test_a_disk_full_error_keeps_its_errno_and_survives_pickling(small_disk):
    """As an OSError it says ENOSPC; it crosses processes (Ray, multiprocessing) whole."""
    fill_disk(small_disk)
    with pytest.raises(DiskFullError) as full:
        Matcher("toy", progress=False).save(small_disk / "matcher")
    assert full.value.errno == errno.ENOSPC
    again = pickle.loads(pickle.dumps(full.value))
    assert (type(again), str(again), again.errno) == (DiskFullError, str(full.value), errno.ENOSPC)
    assert (again.path, again.what) == (full.value.path, full.value.what)


def test_a_full_disk_elsewhere_is_not_blamed_on_the_output(tmp_path):
    """An error that says 'No space left on device' and names no file (torch's /dev/shm
    in a fit) on an output file system with room: the library's words, no claim that
    the output's file system is full."""
    out = tmp_path / "fit"
    words = "unable to write to file </torch_1_2>: No space left on device (28)"
    with pytest.raises(DiskFullError) as full, reporting_full_disk(f"the fit output {out}", out):
        raise RuntimeError(words)
    message = str(full.value)
    assert message.startswith(f"cannot write the fit output {out}: a write ran out of space")
    assert words in message and "is full" not in message


def test_a_checkpoint_that_fills_the_disk_part_way_is_a_full_disk(small_disk, tmp_path):
    """A few KiB free: the safetensors checkpoint (torch's writer) runs out mid-file."""
    images = write_images(tmp_path / "images", 4)
    pairs = ([str(p) for p in images], ["a red circle", "a blue square", "a dog", "a cat"])
    out = small_disk / "fit"
    out.mkdir()
    fill_disk(small_disk, leave=16 * 1024)
    with pytest.raises(DiskFullError) as full:
        Matcher("toy", progress=False).fit(pairs, output_dir=out, epochs=1, batch_size=2)
    assert str(full.value).startswith(f"cannot write the fit output {out}")
    assert f"the file system {small_disk} is full" in str(full.value)
