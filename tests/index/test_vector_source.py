"""Precomputed embeddings as a source: `mmsim embed`'s .npz, .npy, Parquet, arrays."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mmsim import Matcher
from mmsim.errors import DamagedFileError
from mmsim.index import Embeddings, Index, IndexMismatchError, IndexSourceError
from mmsim.index.vector_source import EmbeddingsSource
from mmsim.plugin.testing import run_cli, write_images
from mmsim.plugin.testing import write_collection as make_collection

TEXTS = ["a red car", "a dog on the grass", "two cats", "a blue square", "a photo"]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher("toy", progress=False)


def ranked(hits: list[dict]) -> list[tuple[str, float]]:
    return [(h.get("path") or h.get("text"), round(h["score"], 5)) for h in hits]


def test_an_embed_file_indexes_as_its_images_do_without_the_model_embedding_them(tmp_path):
    make_collection(tmp_path / "photos")
    embedded = run_cli(
        "embed",
        "encoder=toy",
        "images_dir=photos",
        "output=emb.npz",
        "runtime.on_error=skip",
        cwd=tmp_path,
    )
    assert embedded.returncode == 0, embedded.stderr
    from_files = run_cli(
        "index", "build", "source=photos", "output=files", "encoder=toy", cwd=tmp_path
    )
    assert from_files.returncode == 0, from_files.stderr
    from_vectors = run_cli(
        "index", "build", "source=emb.npz", "output=vectors", "encoder=toy", cwd=tmp_path
    )
    assert from_vectors.returncode == 0, from_vectors.stderr
    assert "8 added" in from_vectors.stdout
    files, vectors = Index.open(tmp_path / "files"), Index.open(tmp_path / "vectors")
    for want, have in zip(
        files.search(TEXTS, top_k=8), vectors.search(TEXTS, top_k=8), strict=True
    ):
        assert [h["path"] for h in have] == [h["path"] for h in want]
        np.testing.assert_allclose(
            [h["score"] for h in have], [h["score"] for h in want], atol=1e-6
        )
    assert vectors.record["source"]["kind"] == "embeddings"
    again = run_cli("index", "update", "vectors", cwd=tmp_path)  # rescans the file
    assert again.returncode == 0 and "8 unchanged" in again.stdout

    other = run_cli(  # the same dimension, another model: refused, nothing written
        "index", "build", "source=emb.npz", "output=wrong", "encoder=toy", "encoder.seed=5",
        cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2 and "different models cannot be compared" in other.stderr
    assert "image_encoder" in other.stderr and not (tmp_path / "wrong").exists()


def test_build_from_embeddings_keys_updates_and_filters(tmp_path, matcher):
    texts = [f"caption {i} " + TEXTS[i % 5] for i in range(12)]
    vectors = np.asarray(matcher.extract_embedding(texts, modality="text", progress=False))
    kind = ["even" if i % 2 == 0 else "odd" for i in range(12)]
    index = Index.build_from_embeddings(
        vectors * 4.0,  # not unit length: stored normalised, scores are cosines
        matcher,
        tmp_path / "idx",
        items=pd.Series(texts),  # columns as arrays or Series, as a pipeline holds them
        keys=np.array([f"id{i}" for i in range(12)]),
        metadata={"kind": kind, "n": list(range(12)), "odd": np.arange(12) % 2 == 1},
        modality="text",
        progress=False,
    )
    assert index.last_report.added == 12 and len(index) == 12
    hit = index.search(texts[3], top_k=1)[0][0]
    assert hit["text"] == texts[3] and hit["score"] == pytest.approx(1.0, abs=1e-5)
    assert hit["metadata"] == {"kind": "odd", "n": 3, "odd": 1}  # a bool as SQLite holds it
    odd = index.search(texts[4], top_k=20, where="kind = 'odd'")[0]
    assert len(odd) == 6 and all(h["metadata"]["kind"] == "odd" for h in odd)
    flagged = index.search(texts[4], top_k=20, where="odd = 1")[0]
    assert {h["response_id"] for h in flagged} == {h["response_id"] for h in odd}
    ids = {h["text"]: h["response_id"] for h in index.search(texts[0], top_k=12)[0]}

    changed = vectors * 4.0
    changed[5] = vectors[6]  # id5 now holds another vector
    keys = [f"id{i}" for i in range(12)]
    keys[7] = "renamed7"  # the same vector under a new key
    again = Index.build_from_embeddings(
        changed[1:], matcher, tmp_path / "idx", items=texts[1:], keys=keys[1:],
        modality="text", progress=False,
    )  # fmt: skip
    report = again.last_report
    assert (report.added, report.changed, report.renamed, report.deleted) == (0, 1, 1, 1)
    assert report.unchanged == 9 and len(again) == 11
    after = {h["text"]: h["response_id"] for h in again.search(texts[0], top_k=12)[0]}
    assert after[texts[7]] == ids[texts[7]]  # a rename keeps its row
    top = again.search(texts[6], top_k=2)[0]
    assert {h["text"] for h in top} == {texts[5], texts[6]}  # id5 is id6's vector now
    assert top[0]["score"] == pytest.approx(1.0, abs=1e-5)

    # Python vectors cannot be rescanned, and are never taken for items to embed
    with pytest.raises(IndexSourceError, match="built from embeddings given in Python"):
        again.update(progress=False)
    with pytest.raises(IndexSourceError, match="11 x 32 array of floats looks like embeddings"):
        again.update(changed[1:], progress=False)
    assert len(again) == 11 and again.search(texts[6], top_k=1)[0][0]["score"] > 0.999
    given = Embeddings(changed[1:], items=texts[1:], keys=keys[1:], modalities="text")
    assert again.update(given, progress=False).unchanged == 11


def test_parquet_and_npy_sources_and_bad_rows_are_skipped_by_name(tmp_path, matcher):
    paths = write_images(tmp_path / "img", 6)
    vectors = np.asarray(matcher.extract_embedding([str(p) for p in paths], progress=False))
    bad = vectors.copy()
    bad[1] = np.nan
    bad[4] = 0.0
    bad[3] = vectors[3] * np.float32(1e38)  # finite, but its float32 norm overflows
    table = pd.DataFrame(
        {  # as clip-retrieval writes it: image_path (relative to the file) beside a caption
            "image_path": [f"img/{p.name}" for p in paths],
            "caption": [f"picture {i}" for i in range(6)],
            "embedding": list(bad.astype(np.float32)),
            "uid": [f"u{i}" for i in range(6)],
            "width": [40 + i for i in range(6)],
        }
    )
    table.to_parquet(tmp_path / "emb.parquet")
    index = Index.build(tmp_path / "emb.parquet", matcher, tmp_path / "pq", key_column="uid",
                        progress=False)  # fmt: skip
    report = index.last_report
    assert report.added == 4 and len(index) == 4
    reasons = {s["key"]: s["reason"] for s in report.skipped}
    assert reasons == {
        "key:u1": "its vector holds a non-finite value (NaN or infinity)",
        "key:u4": "its vector is all zeros (no direction to compare)",
    }
    hit = index.search(str(paths[2]), top_k=1)[0][0]
    assert hit["path"] == str(paths[2]) and hit["score"] == pytest.approx(1.0, abs=1e-5)
    assert hit["metadata"] == {"caption": "picture 2", "width": 42}  # the images not opened
    huge = index.search(str(paths[3]), top_k=1)[0][0]
    assert huge["path"] == str(paths[3]) and huge["score"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexSourceError, match=r"column='embeding' is not a column of .*'uid'"):
        Index.build(tmp_path / "emb.parquet", matcher, tmp_path / "typo", column="embeding",
                    progress=False)  # fmt: skip

    np.save(tmp_path / "emb.npy", vectors)  # vectors alone: rows keyed by number
    plain = Index.build(tmp_path / "emb.npy", matcher, tmp_path / "npy", progress=False)
    assert len(plain) == 6
    top = plain.search(str(paths[0]), top_k=1)[0][0]
    assert top["score"] == pytest.approx(1.0, abs=1e-5) and top["response_id"] == plain.ids()[0]


def test_damaged_and_wrong_embedding_files_are_named(tmp_path, matcher):
    good = tmp_path / "emb.npz"
    np.savez(good, embeddings=np.ones((3, matcher.embedding_dim), np.float32))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(DamagedFileError, match=r"cut\.npz"):
        Index.build(cut, matcher, tmp_path / "a", progress=False)
    no_vectors = tmp_path / "other.npz"
    np.savez(no_vectors, items=np.array(["x"]))
    with pytest.raises(IndexSourceError, match="no 'embeddings' array"):
        Index.build(no_vectors, matcher, tmp_path / "b", progress=False)
    with pytest.raises(
        IndexMismatchError, match=r"have 7 dimensions but index .* works with 32-dimensional"
    ):
        Index.build_from_embeddings(np.ones((2, 7)), matcher, tmp_path / "c", progress=False)
    with pytest.raises(IndexSourceError, match="3 items for 2 vectors"):
        Index.build_from_embeddings(
            np.ones((2, 32)), matcher, tmp_path / "d", items=["a", "b", "c"], progress=False
        )
    with pytest.raises(IndexSourceError, match="modality 'audio' is not one of"):
        Index.build_from_embeddings(np.ones((1, 32)), matcher, tmp_path / "e", modality="audio")
    recorded = {"image_encoder": {"name": "other"}, "text_encoder": {"name": "other"}}
    with pytest.raises(IndexMismatchError, match=re.escape('image_encoder {"name": "other"}')):
        Index.build_from_embeddings(
            np.ones((1, 32)), matcher, tmp_path / "f", encoder=recorded, progress=False
        )
    assert not any((tmp_path / name).exists() for name in "abcdef")
    json.dumps(Index.build(good, matcher, tmp_path / "ok", progress=False).info())


def test_a_source_too_large_to_scan_whole_is_synced_slice_by_slice(tmp_path, matcher, monkeypatch):
    """Above `slice_rows` rows an embeddings file is planned and committed a slice at a
    time; keys, repeats across slices, updates and deletions come out as from one scan."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2500, matcher.embedding_dim)).astype(np.float32)
    items = [f"img/{i}.png" for i in range(2500)]
    items[1700] = items[20]  # the same item in another slice: a second row, `img/20.png#2`
    np.savez(tmp_path / "emb.npz", embeddings=vectors, items=np.array(items))

    whole = Index.build(tmp_path / "emb.npz", matcher, tmp_path / "whole", progress=False)
    monkeypatch.setattr(EmbeddingsSource, "slice_rows", 1000)
    sliced = Index.build(tmp_path / "emb.npz", matcher, tmp_path / "sliced", progress=False)
    assert sliced.last_report.added == 2500 and len(sliced) == 2500
    for probe in (20, 1700, 999, 1000, 2499):
        want = whole.search(vectors[probe][None], top_k=3)[0]
        have = sliced.search(vectors[probe][None], top_k=3)[0]
        assert [(h["path"], round(h["score"], 5)) for h in have] == [
            (h["path"], round(h["score"], 5)) for h in want
        ]
    assert sliced.update(progress=False).unchanged == 2500  # repeats numbered alike

    changed = vectors[:2200].copy()
    changed[1200] = rng.standard_normal(matcher.embedding_dim)
    more = rng.standard_normal((150, matcher.embedding_dim)).astype(np.float32)
    more[0] = np.nan  # one bad row in a slice: skipped by name, the others kept
    np.savez(
        tmp_path / "emb.npz",
        embeddings=np.concatenate([changed, more]),
        items=np.array(items[:2200] + [f"new/{i}.png" for i in range(150)]),
    )
    before = {probe: sliced.search(vectors[probe][None], top_k=1)[0][0] for probe in (5, 1200)}
    report = sliced.update(progress=False)
    assert (report.added, report.changed, report.deleted) == (149, 1, 300)
    assert report.unchanged == 2199 and len(sliced) == 2349
    assert [s["key"] for s in report.skipped] == ["new/0.png"]  # not a file here: as written
    kept = sliced.search(vectors[5][None], top_k=1)[0][0]
    assert kept["response_id"] == before[5]["response_id"]  # unchanged rows keep their ids
    moved = sliced.search(changed[1200][None], top_k=1)[0][0]
    assert moved["response_id"] == before[1200]["response_id"]  # changed: the same id
    assert moved["score"] == pytest.approx(1.0, abs=1e-5)
    gone = sliced.search(vectors[2300][None], top_k=1)[0][0]
    assert gone["score"] < 0.9  # row 2300 is no longer in the file: deleted
