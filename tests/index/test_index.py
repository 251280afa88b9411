"""The collection index: real files, a real SQLite manifest, real memory-mapped shards."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher, semantic_search
from mmsim.index import (
    Index,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexSourceError,
)
from mmsim.plugin.testing import MMSIM, cli_env, write_images
from mmsim.plugin.testing import write_collection as make_collection

TEXTS = ["a red car", "a dog on the grass", "two cats", "a blue square", "a photo"]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher("toy", progress=False)


def by_path(hits: list[dict]) -> list[tuple[str, float]]:
    return [(Path(h["path"]).name, round(h["score"], 5)) for h in hits]


def test_build_and_search_equal_semantic_search(tmp_path, matcher):
    paths = make_collection(tmp_path / "photos")
    index = Index.build(tmp_path / "photos", matcher, tmp_path / "idx", commit_every=3)
    report = index.last_report
    assert (report.added, len(report.skipped)) == (8, 1)
    assert (
        "broken.jpg" in report.skipped[0]["key"]
        and "not a readable image" in (report.skipped[0]["reason"])
    )
    assert len(index) == 8 and len(list((tmp_path / "idx" / "shards").iterdir())) == 3
    # the same ranking and scores as semantic_search over the same embeddings
    files = sorted(paths, key=lambda p: p.relative_to(tmp_path / "photos").as_posix())
    corpus = matcher.extract_embedding([str(p) for p in files])
    expected = semantic_search(
        query_embeddings=matcher.extract_embedding(TEXTS), response_embeddings=corpus, top_k=5
    )
    got = index.search(TEXTS, top_k=5)
    for want, have in zip(expected, got, strict=True):
        assert [files[h["response_id"]].name for h in want] == [Path(h["path"]).name for h in have]
        np.testing.assert_allclose(
            [h["score"] for h in want], [h["score"] for h in have], atol=1e-5
        )
    hit = got[0][0]
    # the folder's fields, and the pixel size read from the file (photo metadata)
    assert hit["modality"] == "image"
    assert set(hit["metadata"]) == {"name", "folder", "width", "height"}
    with Image.open(hit["path"]) as shown:
        assert (hit["metadata"]["width"], hit["metadata"]["height"]) == shown.size
    # an image query, a filter as SQL and as a mapping, and precomputed embeddings
    image_hits = index.search(str(paths[5]), top_k=2)[0]
    assert Path(image_hits[0]["path"]) == paths[5] and image_hits[0]["score"] > 0.9999
    beach = index.search("a photo", top_k=10, where="folder = 'beach'")[0]
    assert len(beach) == 4 and {h["metadata"]["folder"] for h in beach} == {"beach"}
    city = index.search("a photo", top_k=10, where={"folder": ["city"], "name": "c1.png"})[0]
    assert [Path(h["path"]).name for h in city] == ["c1.png"]
    vector_hits = index.search(matcher.extract_embedding(["a photo"])[0], top_k=3)
    assert by_path(vector_hits[0]) == by_path(index.search("a photo", top_k=3)[0])
    with pytest.raises(ValueError, match=r"not a valid filter.*folder"):
        index.search("a photo", where="colour = 'red'")
    with pytest.raises(ValueError, match="not a valid filter"):
        index.search("a photo", where="1); DROP TABLE items; --")
    endless = (
        "id IN (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)"
    )
    with pytest.raises(ValueError, match=r"not a valid filter.*not authorized"):
        index.search("a photo", where=endless)
    assert len(index) == 8  # the filter could not write


def test_reopen_from_another_folder_uses_recorded_towers(tmp_path, matcher, monkeypatch):
    make_collection(tmp_path / "photos")
    built = Index.build(tmp_path / "photos", matcher, tmp_path / "idx", progress=False)
    expected = built.search(TEXTS, top_k=3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    reopened = Index.open(tmp_path / "idx")  # no matcher given: rebuilt from the record
    assert reopened.search(TEXTS, top_k=3) == expected
    info = reopened.info()
    assert (info["items"], info["images"], info["dim"], info["dtype"]) == (8, 8, 32, "float32")
    assert info["encoders"]["image_encoder"]["name"] == "toy"
    assert info["skipped"][0]["key"] == "broken.jpg" and info["size_bytes"] > 0
    assert info["ann"] is None
    assert info["metadata_columns"] == ["name", "folder", "width", "height"]


def test_update_adds_changes_deletes_and_recognises_renames(tmp_path, matcher):
    photos = tmp_path / "photos"
    make_collection(photos)
    index = Index.build(photos, matcher, tmp_path / "idx", progress=False)
    ids = {h["path"]: h["response_id"] for h in index.search("x", top_k=20)[0]}
    vectors = {p: index.vectors([i])[0] for p, i in ids.items()}
    assert index.update(progress=False).summary().startswith("0 added, 0 changed")

    moved = photos / "city" / "renamed.png"
    (photos / "city" / "c0.png").rename(moved)
    (photos / "beach" / "img1.png").unlink()
    changed = photos / "city" / "c2.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(changed)
    touched = photos / "city" / "c3.png"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    # new/img0..img5: img1.png has the content of the deleted beach/img1.png (a move)
    new = write_images(photos / "new", 6)
    (photos / "broken.jpg").write_bytes((photos / "city" / "c1.png").read_bytes())  # fixed

    report = index.update(progress=False)
    assert (report.added, report.changed, report.renamed, report.deleted) == (6, 1, 2, 0)
    now = {h["path"]: h["response_id"] for h in index.search("x", top_k=50)[0]}
    assert len(index) == 14 and str(photos / "beach" / "img1.png") not in now
    assert now[str(new[1])] == ids[str(photos / "beach" / "img1.png")]
    assert now[str(moved)] == ids[str(photos / "city" / "c0.png")]  # same row, not re-embedded
    np.testing.assert_array_equal(
        index.vectors([now[str(moved)]])[0], vectors[str(photos / "city" / "c0.png")]
    )
    assert now[str(changed)] == ids[str(changed)]  # same id, new vector
    assert not np.allclose(index.vectors([now[str(changed)]])[0], vectors[str(changed)])
    np.testing.assert_allclose(
        index.vectors([now[str(changed)]])[0], matcher.extract_embedding(str(changed))[0], atol=1e-6
    )
    assert now[str(touched)] == ids[str(touched)]  # touched only: unchanged
    for path, item_id in ids.items():  # unchanged items keep their ids
        if Path(path).exists() and Path(path) != changed:
            assert now[path] == item_id
    assert str(new[5]) in now and str(photos / "broken.jpg") in now  # the fixed file retried
    assert index.info()["skipped"] == []
    new[4].unlink()
    assert index.update(progress=False).deleted == 1 and len(index) == 13


def test_table_of_captions_is_searched_with_an_image(tmp_path, matcher):
    image = write_images(tmp_path / "q", 1)[0]
    table = tmp_path / "captions.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["caption", "label", "id"])
        for i, text in enumerate([*TEXTS, TEXTS[0]]):
            writer.writerow([text, "even" if i % 2 == 0 else "odd", i])
    index = Index.build(table, matcher, tmp_path / "idx", progress=False)
    assert index.info()["texts"] == 6  # the repeated caption is a second item
    hits = index.search(str(image), top_k=10)[0]
    expected = semantic_search(
        query_embeddings=matcher.extract_embedding(str(image)),
        response_embeddings=matcher.extract_embedding([*TEXTS, TEXTS[0]]),
        top_k=10,
    )[0]
    np.testing.assert_allclose(
        [h["score"] for h in hits], [h["score"] for h in expected], atol=1e-5
    )
    assert {h["text"] for h in hits} == set(TEXTS)
    odd = index.search(str(image), top_k=10, where={"label": "odd"})[0]
    assert sorted(h["metadata"]["id"] for h in odd) == ["1", "3", "5"]
    assert [h["metadata"]["id"] for h in index.search(str(image), where={"id": "4"})[0]] == ["4"]


def test_text_file_and_keyed_rows_follow_their_changes(tmp_path, matcher):
    lines = tmp_path / "captions.txt"
    lines.write_text("a red car\n\na dog on the grass\n")
    index = Index.build(lines, matcher, tmp_path / "lines", progress=False)
    assert sorted(h["text"] for h in index.search("x", top_k=5)[0]) == sorted(TEXTS[:2])
    table = tmp_path / "rows.csv"
    table.write_text("id,caption,tag\n1,a red car,x\n2,two cats,y\n")
    keyed = Index.build(table, matcher, tmp_path / "keyed", key_column="id", progress=False)
    first = {h["metadata"]["tag"]: h["response_id"] for h in keyed.search("x", top_k=5)[0]}
    table.write_text("id,caption,tag\n1,a blue square,x\n2,two cats,z\n")
    report = keyed.update(progress=False)
    assert (report.changed, report.metadata_updated, report.added) == (1, 1, 0)
    now = {h["text"]: h for h in keyed.search("x", top_k=5)[0]}
    assert now["a blue square"]["response_id"] == first["x"]  # same key, new text, same id
    assert (
        now["two cats"]["metadata"]["tag"] == "z" and now["two cats"]["response_id"] == first["y"]
    )
    np.testing.assert_allclose(
        keyed.vectors([first["x"]])[0], matcher.extract_embedding("a blue square")[0], atol=1e-6
    )


def test_float16_storage_halves_size_and_keeps_ranking(tmp_path, matcher):
    make_collection(tmp_path / "photos")
    full = Index.build(tmp_path / "photos", matcher, tmp_path / "f32", progress=False)
    half = Index.build(
        tmp_path / "photos", matcher, tmp_path / "f16", dtype="float16", progress=False
    )
    shard32 = np.load(next((tmp_path / "f32" / "shards").iterdir()), mmap_mode="r")
    shard16 = np.load(next((tmp_path / "f16" / "shards").iterdir()), mmap_mode="r")
    assert shard16.dtype == np.float16 and shard16.nbytes * 2 == shard32.nbytes
    a, b = full.search(TEXTS, top_k=8), half.search(TEXTS, top_k=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose([h["score"] for h in x], [h["score"] for h in y], atol=2e-3)


def test_optimize_rewrites_the_shards_in_half_precision_and_later_rows_follow(tmp_path, matcher):
    from mmsim.index.optimize import FLOAT16_ROWS, shard_dtype
    from mmsim.plugin.testing import run_cli

    make_collection(tmp_path / "photos")
    Index.build(tmp_path / "photos", matcher, tmp_path / "idx", commit_every=3, progress=False)
    before = Index.open(tmp_path / "idx").search(TEXTS, top_k=8)
    done = run_cli("index", "optimize", "idx", "backend=none", "shards=float16", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "shards: 3 -> 1 (float16)" in done.stdout
    index = Index.open(tmp_path / "idx")
    (shard,) = (tmp_path / "idx" / "shards").iterdir()
    assert np.load(shard, mmap_mode="r").dtype == np.float16 and index.info()["dtype"] == "float16"
    for x, y in zip(before, index.search(TEXTS, top_k=8), strict=True):
        assert [h["response_id"] for h in x][:3] == [h["response_id"] for h in y][:3]
        np.testing.assert_allclose([h["score"] for h in x], [h["score"] for h in y], atol=2e-3)
    write_images(tmp_path / "photos" / "later", 2)
    assert index.update(progress=False).added == 2
    dtypes = {np.load(p, mmap_mode="r").dtype for p in (tmp_path / "idx" / "shards").iterdir()}
    assert dtypes == {np.dtype(np.float16)}  # the rows added since are half precision too
    with pytest.raises(ValueError, match="shards must be auto, float32 or float16, got 'int8'"):
        index.optimize(None, shards="int8")
    assert shard_dtype("auto", FLOAT16_ROWS - 1, "float32") == "float32"
    assert shard_dtype("auto", FLOAT16_ROWS, "float32") == "float16"


def test_mismatched_matcher_and_damaged_files_are_named(tmp_path, matcher):
    make_collection(tmp_path / "photos")
    Index.build(tmp_path / "photos", matcher, tmp_path / "idx", progress=False)
    other = Matcher({"name": "toy", "seed": 1})  # the same encoder with other weights
    with pytest.raises(IndexMismatchError, match=r'"seed": 0.*"seed": 1'):
        Index.open(tmp_path / "idx", other)
    write_images(tmp_path / "elsewhere", 2)
    with pytest.raises(IndexSourceError, match="was built from"):
        Index.build(tmp_path / "elsewhere", matcher, tmp_path / "idx")

    shard = next((tmp_path / "idx" / "shards").iterdir())
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match=str(shard)):
        Index.open(tmp_path / "idx").search("a photo")
    manifest = tmp_path / "idx" / "manifest.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{manifest}{suffix}").unlink(missing_ok=True)
    manifest.write_bytes(b"garbage" * 100)
    with pytest.raises(IndexCorruptError, match=r"manifest\.sqlite"):
        Index.open(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match=r"index\.json"):
        Index.open(tmp_path / "idx")
    with pytest.raises(FileNotFoundError, match="not an mmsim index"):
        Index.open(tmp_path / "photos")


def test_empty_source_and_bad_arguments(tmp_path, matcher):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexSourceError, match="holds no items"):
        Index.build(tmp_path / "empty", matcher, tmp_path / "idx")
    with pytest.raises(IndexSourceError, match="neither an existing folder nor a table"):
        Index.build(tmp_path / "missing", matcher, tmp_path / "idx2")
    with pytest.raises(ValueError, match="dtype must be one of"):
        Index.build(tmp_path / "empty", matcher, tmp_path / "idx3", dtype="int8")
    make_collection(tmp_path / "photos")
    index = Index.build(tmp_path / "photos", matcher, tmp_path / "idx4", progress=False)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        index.search("a photo", top_k=0)
    with pytest.raises(ValueError, match="dimension 3"):
        index.search(np.ones((1, 3), np.float32))


def test_second_writer_gets_a_clear_lock_error(tmp_path, matcher):
    make_collection(tmp_path / "photos")
    index = Index.build(tmp_path / "photos", matcher, tmp_path / "idx", progress=False)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mmsim.index.lock import WriteLock\n"
            "with WriteLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path / "idx"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexLockedError, match=f"locked by PID {holder.pid}"):
            index.update(progress=False)
        assert len(index.search("a photo", top_k=3)[0]) == 3  # readers are not blocked
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert index.update(progress=False).added == 0  # the lock died with its holder


def test_ann_recall_floor_and_fresh_rows_merged(tmp_path, matcher):
    rng = np.random.default_rng(0)
    words = [
        "red",
        "blue",
        "green",
        "small",
        "big",
        "dog",
        "cat",
        "car",
        "tree",
        "house",
        "on",
        "near",
        "the",
        "a",
        "of",
    ]
    texts = sorted({" ".join(rng.choice(words, 6)) for _ in range(2500)})
    index = Index.build(texts, matcher, tmp_path / "idx", progress=False)
    queries = [str(p) for p in write_images(tmp_path / "q", 12)]
    report = index.optimize("faiss_hnsw", target_recall=0.95, queries=queries)
    assert report["ann"]["recall_at_10"] >= 0.95 and report["ann"]["count"] == len(texts)
    approx = index.search(queries, top_k=10)
    exact = index.search(queries, top_k=10, exact=True)
    overlap = np.mean(
        [
            len({h["response_id"] for h in a} & {h["response_id"] for h in e}) / 10
            for a, e in zip(approx, exact, strict=True)
        ]
    )
    assert overlap >= 0.9
    # rows added after the ANN build are searched exactly and merged
    extra = ["a red dog near a big green house", "the small blue car"]
    index.update([*texts, *extra], progress=False)
    vector = index.vectors([index.search(extra[0], top_k=1, exact=True)[0][0]["response_id"]])
    top = index.search(vector, top_k=1)[0][0]
    assert top["text"] == extra[0] and top["score"] > 0.9999
    assert index.info()["ann"]["rows_searched_exactly"] == 2
    filtered = index.search(queries[:2], top_k=5, where="text LIKE '%red%'")
    assert all("red" in h["text"] for hits in filtered for h in hits)


def test_duplicates_groups_identical_files(tmp_path, matcher):
    photos = tmp_path / "photos"
    make_collection(photos)
    (photos / "copy").mkdir()
    (photos / "copy" / "same.png").write_bytes((photos / "city" / "c1.png").read_bytes())
    index = Index.build(photos, matcher, tmp_path / "idx", progress=False)
    groups = index.duplicates(threshold=0.99999)
    assert [sorted(Path(h["path"]).name for h in g) for g in groups] == [["c1.png", "same.png"]]


def test_cli_build_search_info_and_gallery(tmp_path):
    make_collection(tmp_path / "photos")
    env = cli_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*MMSIM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result

    out = run("index", "build", "source=photos", "output=idx", "encoder=toy")
    assert "8 added" in out.stdout and "skipped" in out.stdout
    hits = json.loads(
        run("search", "index=idx", "query=a red car", "top_k=3", "where=folder = 'city'").stdout
    )
    assert len(hits[0]["hits"]) == 3 and all(
        h["metadata"]["folder"] == "city" for h in hits[0]["hits"]
    )
    run("search", "index=idx", "query=a red car", "--html", "output=hits.html")
    assert (tmp_path / "hits.html").read_text().count("data:image/jpeg;base64") == 5
    info = run("index", "info", "idx")
    assert "8 (8 images, 0 texts)" in info.stdout and "broken.jpg" in info.stdout
    assert "unchanged" in run("index", "update", "idx").stdout
