"""The Ray engine on a real local Ray cluster (one per test session): a build on Ray
equals a local build (images, and videos whose time ranges are chunks of their own
that the actors share), a SIGKILLed driver resumes without re-embedding what was
committed, bad items are recorded once, shards travel through a staging URL, and the
core never imports Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher
from mmsim.errors import ConfigError, describe_item
from mmsim.index import Index
from mmsim.plugin.testing import committed_rows, write_collection, write_images

# Workers run this venv's Python directly: under `uv run`, Ray's uv hook would package
# the checkout for every worker (read when ray is imported; the driver test inherits it)
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
ray = pytest.importorskip("ray")
mmsim_ray = pytest.importorskip("mmsim_ray")


@pytest.fixture(scope="session")
def cluster() -> str:
    """One local Ray cluster for every test here (starting one takes ~9 s)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def matcher_of(tiny_clip_dir: Path) -> Matcher:
    return Matcher("openai_clip", checkpoint=str(tiny_clip_dir), progress=False, batch_size=4)


def content(index: Index) -> dict[str, tuple[dict, np.ndarray]]:
    """Every live row by key-like identity (path or text or content hash; a frame's path
    and time), with its metadata and vector."""
    live = index._manifest.live().ids
    rows = index.items(live)
    out = {}
    for item_id, row in rows.items():
        ident = row.get("path") or row.get("text") or str(row["metadata"])
        if "video" in row:
            ident += f"#{row['video']['time']}"
        out[ident] = (row["metadata"], index.vectors([item_id])[0])
    return out


def assert_same(got: Index, want: Index) -> None:
    a, b = content(got), content(want)
    assert sorted(a) == sorted(b) and len(a) == len(got)
    for ident, (meta, vector) in b.items():
        assert a[ident][0] == meta
        np.testing.assert_allclose(a[ident][1], vector, atol=1e-6)
    skipped = lambda index: sorted((s["item"], s["reason"]) for s in index.info()["skipped"])  # noqa: E731
    assert skipped(got) == skipped(want)


def test_cli_build_on_ray_equals_a_local_build(cluster, tiny_clip_dir, tmp_path):
    """Images and videos: a long video is split into time ranges, each a chunk of its
    own that any actor of the pool embeds (decoding just that range)."""
    from mmsim.cli.index import build
    from mmsim.config import compose
    from tests.videos import colour_clip

    root = tmp_path / "photos"
    write_collection(root)  # 8 images and one unreadable file
    (root / "clips").mkdir()
    colour_clip(root / "clips" / "long.mp4", seconds=12)  # three ranges of 4 frames
    colour_clip(root / "clips" / "short.webm", seconds=3, codec="libvpx-vp9")
    video = {"every": 1, "chunk": 4}
    local = Index.build(
        root, matcher_of(tiny_clip_dir), tmp_path / "local", video=video, progress=False
    )
    staging = tmp_path / "staging"
    common = [
        f"source={root}",
        "encoder=openai_clip",
        f"encoder.checkpoint={tiny_clip_dir}",
        "commit_every=3",
        "runtime.progress=false",
        "engine=ray",
        "engine.actors=2",
        "video.every=1s",
        "video.chunk=4",
        f"output={tmp_path / 'ray'}",
    ]
    build(compose("index_build", [*common, f"engine.staging=file://{staging}"]))
    on_ray = Index.open(tmp_path / "ray")
    assert_same(on_ray, local)
    assert on_ray.info()["frames"] == 15
    with __import__("sqlite3").connect(tmp_path / "ray" / "manifest.sqlite") as conn:
        rows = conn.execute(
            "SELECT s.rows FROM shards s WHERE s.id IN "
            "(SELECT i.shard FROM items i JOIN frames f ON f.id = i.id)"
        ).fetchall()
    assert sorted(r for (r,) in rows) == [3, 4, 4, 4]  # a chunk (and a shard) per range
    assert [s["item"] for s in on_ray.info()["skipped"]] == [
        describe_item(str(root / "broken.jpg"))
    ]
    assert any(staging.iterdir())  # the actors staged their shards there ...
    assert not any(p.is_file() for p in staging.rglob("*"))  # ... and every one was moved in
    again = mmsim_ray.update(Index.open(tmp_path / "ray"), progress=False)
    assert (again.added, again.changed, again.skipped) == (0, 0, [])  # bad item not retried
    assert again.videos == {"unchanged": 2} and again.frames_embedded == 0


def png(seed: int) -> bytes:
    import io

    pixels = (np.random.default_rng(seed).random((24 + seed, 30, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_ray_dataset_of_bytes_builds_the_local_index_and_resumes(
    cluster, tiny_clip_dir, tmp_path
):
    rows = [{"image": png(i), "label": f"l{i % 3}", "n": i} for i in range(10)]
    rows.append({"image": b"not an image", "label": "bad", "n": 99})
    local = Index.build(rows, matcher_of(tiny_clip_dir), tmp_path / "local", progress=False)
    dataset = ray.data.from_items(rows, override_num_blocks=3)
    engine = mmsim_ray.EngineOptions(actors=1)
    out = tmp_path / "ray"
    built = mmsim_ray.build(
        dataset, matcher_of(tiny_clip_dir), out, engine=engine, commit_every=4, progress=False
    )
    assert built.last_report.added == 10 and len(built.last_report.skipped) == 1
    assert_same(built, local)
    rows.append({"image": png(50), "label": "new", "n": 50})
    grown = ray.data.from_items(rows, override_num_blocks=2)  # batched differently
    again = mmsim_ray.update(built, grown, engine=engine, commit_every=4, progress=False)
    assert (again.added, again.changed) == (1, 0)  # only the new row is embedded
    assert len(built) == 11 and len(built.info()["skipped"]) == 1  # the bad row, once


DRIVER = """
import sys
from mmsim import Matcher
from mmsim_ray import EngineOptions, build
matcher = Matcher("openai_clip", checkpoint=sys.argv[1], progress=False, batch_size=2)
build(sys.argv[2], matcher, sys.argv[3], engine=EngineOptions(actors=1, address=sys.argv[4]),
      commit_every=2, progress=False)
"""


def test_a_sigkilled_driver_resumes_without_re_embedding(cluster, tiny_clip_dir, tmp_path):
    root = tmp_path / "photos"
    for part in range(4):
        write_images(root / f"part{part}", 10)  # 40 files, 20 chunks of 2
    out = tmp_path / "idx"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tiny_clip_dir), str(root), str(out), cluster]
    )
    deadline = time.monotonic() + 120
    while committed_rows(out) < 4 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    before = committed_rows(out)
    assert 0 < before < 40, f"the driver was killed after {before} of 40 items"
    resumed = mmsim_ray.build(
        root,
        matcher_of(tiny_clip_dir),
        out,
        engine=mmsim_ray.EngineOptions(actors=1),
        commit_every=2,
        progress=False,
    )
    assert resumed.last_report.added == 40 - before  # finished chunks not embedded again
    local = Index.build(root, matcher_of(tiny_clip_dir), tmp_path / "local", progress=False)
    assert_same(resumed, local)
    with __import__("sqlite3").connect(out / "manifest.sqlite") as conn:
        known = {row[0] for row in conn.execute("SELECT file FROM shards")}
    assert {p.name for p in (out / "shards").iterdir()} == known  # orphans of the dead run gone


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"actors": 0}, "engine.actors must be a whole number >= 1, got 0"),
        ({"gpus_per_actor": -1}, "engine.gpus_per_actor must be a number >= 0, got -1"),
        ({"address": "127.0.0.1:1"}, "engine.address='127.0.0.1:1': no Ray cluster answers"),
        ({"address": "nowhere"}, "engine.address='nowhere' is not host:port"),
        ({"gpus_per_actor": 1}, "engine.gpus_per_actor=1 but the cluster has 0 GPUs"),
        ({"actor": 2}, "invalid options for engine 'ray': Key 'actor' not in 'EngineOptions'"),
    ],
)
def test_bad_engine_options_name_the_option(cluster, options, message):
    from mmsim.index.engine import engine_for

    with pytest.raises(ConfigError) as caught:
        engine_for({"name": "ray", **options})
    assert message in str(caught.value)


def test_core_and_local_engine_never_import_ray():
    probe = (
        "import sys, mmsim, mmsim.index, mmsim.index.engine, mmsim.cli.index; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
