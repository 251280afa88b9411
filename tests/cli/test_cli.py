"""The ``mmsim`` command, run as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher
from mmsim.plugin.testing import MMSIM, cli_env, install_dist_info, run_cli, write_images
from tests.paths import OUTSIDE_PLUGIN_DIR


def mmsim(*args: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True):
    """Run a command in-process; with ``env`` (another environment: third-party plugins,
    autoload switched off) as the real console script in a subprocess."""
    if env is None:
        result = run_cli(*args, cwd=cwd)
    else:
        result = subprocess.run(
            [*MMSIM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory) -> Path:
    """A site folder where a toy plugin distribution and a broken one are 'installed'."""
    site = tmp_path_factory.mktemp("site")
    install_dist_info(site, "mmsim-outside", "1.2.3", {"outside": "mmsim_outside"})
    install_dist_info(site, "mmsim-broken", "0.0.1", {"broken": "mmsim_broken_missing:plugin"})
    return site


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    write_images(work / "photos", count=4)
    (work / "captions.txt").write_text("a red car\na dog on the grass\na cat\n")
    return work


def test_plugins_lists_third_party_and_reports_broken(tmp_path, third_party_site):
    env = cli_env([third_party_site, OUTSIDE_PLUGIN_DIR])
    out = mmsim("plugins", cwd=tmp_path, env=env)
    assert "outside  (mmsim-outside 1.2.3)" in out.stdout
    assert "encoder     outside" in out.stdout
    assert "openai_clip  (mmsim-openai-clip 0.1.0)" in out.stdout
    assert "broken  (mmsim-broken 0.0.1)" in out.stdout and "FAILED" in out.stdout
    assert "plugin 'broken' from distribution 'mmsim-broken' failed to load" in out.stderr
    report = json.loads(mmsim("plugins", "format=json", cwd=tmp_path, env=env).stdout)
    toy = next(p for p in report if p["name"] == "outside")
    assert toy["version"] == "1.2.3" and toy["components"]["encoder"][0]["name"] == "outside"


def test_autoload_switch_hides_entry_points(tmp_path):
    out = mmsim("plugins", cwd=tmp_path, env=cli_env(MMSIM_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert "openai_clip" not in out.stdout and "autoload is off" in out.stdout


def test_embed_writes_embeddings_and_row_metadata(workdir):
    mmsim(
        "embed",
        "encoder=toy",
        "images_dir=photos",
        "inputs=[a dog,a cat]",
        "output=out/emb.npz",
        cwd=workdir,
    )
    data = np.load(workdir / "out" / "emb.npz")
    images = sorted(str(p) for p in (workdir / "photos").iterdir())
    items = ["a dog", "a cat", *[str(Path(p).relative_to(workdir)) for p in images]]
    assert data["items"].tolist() == items
    assert data["modalities"].tolist() == ["text", "text"] + ["image"] * 4
    expected = Matcher("toy", progress=False).extract_embedding(
        [str(workdir / i) if i.startswith("photos") else i for i in items]
    )
    assert np.abs(data["embeddings"] - expected).max() < 1e-6
    meta = json.loads((workdir / "out" / "emb.meta.json").read_text())
    assert meta["embedding_dim"] == 32 and meta["images"] == 4 and meta["skipped"] == []


def test_embed_bad_item_fails_clearly_or_is_skipped(workdir):
    bad = mmsim(
        "embed",
        "encoder=toy",
        "inputs=[photos/img0.jpg,photos/gone.jpg]",
        cwd=workdir,
        ok=False,
    )
    assert bad.returncode == 2
    assert "item 1 ('photos/gone.jpg'): image file not found" in bad.stderr
    assert "Traceback" not in bad.stderr
    mmsim(
        "embed",
        "encoder=toy",
        "inputs=[photos/img0.jpg,photos/gone.jpg]",
        "runtime.on_error=skip",
        "output=skip.npz",
        cwd=workdir,
    )
    meta = json.loads((workdir / "skip.meta.json").read_text())
    assert meta["count"] == 1 and meta["skipped"][0]["index"] == 1


def test_search_text_query_over_image_folder(workdir):
    out = mmsim(
        "search",
        "encoder=toy",
        "query=a red car",
        "images_dir=photos",
        "top_k=3",
        "output=hits.json",
        cwd=workdir,
    )
    results = json.loads(out.stdout)
    assert len(results) == 1 and results[0]["query"] == "a red car"
    hits = results[0]["hits"]
    assert len(hits) == 3 and [h["score"] for h in hits] == sorted(
        (h["score"] for h in hits), reverse=True
    )
    assert all(h["item"].startswith("photos/") for h in hits)
    exact = json.loads((workdir / "hits.json").read_text())  # the file keeps exact scores
    assert [h["item"] for h in exact[0]["hits"]] == [h["item"] for h in hits]
    for shown, kept in zip(hits, exact[0]["hits"], strict=True):
        assert shown["score"] == round(kept["score"], 4) and kept["score"] != shown["score"]


def test_search_image_query_over_texts_and_saved_corpus(workdir):
    out = mmsim(
        "search",
        "encoder=toy",
        "query=photos/img1.png",
        "texts_file=captions.txt",
        "top_k=5",
        cwd=workdir,
    )
    hits = json.loads(out.stdout)[0]["hits"]
    assert sorted(h["item"] for h in hits) == ["a cat", "a dog on the grass", "a red car"]
    mmsim(
        "embed",
        "encoder=toy",
        "input_list=captions.txt",
        "output=captions.npz",
        cwd=workdir,
    )
    saved = mmsim(
        "search",
        "encoder=toy",
        "query=photos/img1.png",
        "corpus=captions.npz",
        "top_k=5",
        cwd=workdir,
    )
    assert json.loads(saved.stdout)[0]["hits"] == hits


def test_match_scores_a_csv_of_pairs(workdir):
    (workdir / "pairs.csv").write_text(
        "id,picture,caption\n1,photos/img0.jpg,a red car\n2,photos/img2.jpg,a dog\n"
    )
    out = mmsim(
        "match",
        "encoder=toy",
        "pairs=pairs.csv",
        "columns.query=picture",
        "columns.response=caption",
        "threshold.value=-1",
        "output=scored.csv",
        cwd=workdir,
    )
    assert "scored 2 of 2 pairs: 2 match" in out.stdout
    rows = list(csv.DictReader((workdir / "scored.csv").open()))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert all(r["match"] == "1" and 0.5 < float(r["p_match"]) <= 1 for r in rows)
    matcher = Matcher("toy", query="q", response="r", progress=False)
    scores = matcher.score_pairs({"q": [str(workdir / "photos/img0.jpg")], "r": ["a red car"]})
    assert float(rows[0]["score"]) == pytest.approx(scores[0], abs=1e-5)


def test_multirun_sweeps_over_encoders(workdir, third_party_site):
    env = cli_env([third_party_site, OUTSIDE_PLUGIN_DIR])
    sweep = workdir / "sweep"
    mmsim(
        "embed",
        "-m",
        "encoder=toy,outside",
        "inputs=[a dog,photos/img0.jpg]",
        f"hydra.sweep.dir={sweep}",
        cwd=workdir,
        env=env,
    )
    dims = [np.load(sweep / str(job) / "embeddings.npz")["embeddings"].shape for job in (0, 1)]
    assert dims == [(2, 32), (2, 8)]


def test_usage_and_unknown_command(tmp_path):
    assert "commands:" in mmsim(cwd=tmp_path).stdout
    bad = mmsim("frobnicate", cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr


@pytest.fixture(scope="module")
def labelled_csv(workdir, labelled_pairs) -> Path:
    """The labelled pairs as a CSV file in the work folder."""
    rows = zip(*labelled_pairs.values(), strict=True)
    lines = ["query,response,label"] + [f"{q},{r},{y}" for q, r, y in rows]
    path = workdir / "labelled.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_calibrate_then_match_with_the_saved_matcher(workdir, labelled_pairs, labelled_csv):
    out = mmsim(
        "calibrate",
        "encoder=toy",
        "pairs=labelled.csv",
        "columns.query=query",
        "columns.response=response",
        "threshold=best_f1",
        "holdout=0.25",
        "output_dir=fitted",
        cwd=workdir,
    )
    assert "threshold 'best_f1'" in out.stdout and "ROC AUC" in out.stdout
    fitted = workdir / "fitted"
    assert {p.name for p in fitted.iterdir()} == {"matcher.json", "report.json", "reliability.png"}
    report = json.loads((fitted / "report.json").read_text())
    assert report["evaluated_on"] == 12 and report["roc_auc"] > 0.95
    mmsim(
        "match",
        "matcher=fitted",
        "pairs=labelled.csv",
        "columns.query=query",
        "columns.response=response",
        "output=matched.csv",
        cwd=workdir,
    )
    rows = list(csv.DictReader((workdir / "matched.csv").open()))
    got = [int(r["match"]) for r in rows]
    expected = Matcher.load(fitted, query="query", response="response", progress=False).predict(
        labelled_pairs
    )
    assert got == expected.tolist()


def test_evaluate_and_classify_commands(workdir, labelled_pairs, labelled_csv):
    out = mmsim(
        "evaluate",
        "encoder=toy",
        "pairs=labelled.csv",
        "label=label",
        "columns.query=query",
        "columns.response=response",
        "cutoffs=[1,3]",
        cwd=workdir,
    )
    report = json.loads(out.stdout)
    matcher = Matcher("toy", query="query", response="response", progress=False)
    expected = matcher.evaluate(labelled_pairs, label="label", cutoffs=(1, 3))
    # the terminal shows 4 decimals
    assert report["query_to_response"] == pytest.approx(expected["query_to_response"], abs=1e-4)
    assert set(report["pairs"]) >= {"roc_auc", "f1", "precision", "recall"}
    for name in ("cat", "dog"):
        write_images(workdir / "zoo" / name, count=2)
    out = mmsim(
        "classify",
        "encoder=toy",
        "images_dir=zoo",
        "output=zoo.csv",
        cwd=workdir,
    )
    assert "classified 4 images into 2 classes, accuracy" in out.stdout
    rows = list(csv.DictReader((workdir / "zoo.csv").open()))
    assert [r["label"] for r in rows] == ["cat", "cat", "dog", "dog"]
    assert all(r["prediction"] in ("cat", "dog") for r in rows)


def test_fit_then_search_with_the_fine_tuned_matcher(tmp_path):
    from mmsim import synthetic

    synthetic.write_dataset(tmp_path / "shapes", 24, seed=3, size=32)
    out = mmsim(
        "fit",
        "encoder=toy",
        "pairs=shapes",
        "fit.epochs=2",
        "fit.batch_size=8",
        "fit.lr=1e-4",
        "fit.validation_split=0.25",
        "fit.log_format=csv",
        "runtime.progress=false",
        "output_dir=run",
        cwd=tmp_path,
    )
    lines = out.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    assert lines[-1].startswith("best epoch ") and str(tmp_path / "run" / "checkpoint") in lines[-1]
    summary = json.loads((tmp_path / "run" / "fit_summary.json").read_text())
    assert summary["checkpoints"]["model"] == str(tmp_path / "run" / "checkpoint")
    assert summary["best_epoch"] in (0, 1, 2) and "text_to_image/hit_rate@1" in summary["best"]
    assert f"best epoch {summary['best_epoch']}:" in lines[-1]
    steps = list(csv.DictReader((tmp_path / "run" / "steps.csv").open()))
    assert len(steps) == 2 * 3  # 18 training pairs in batches of 8, two epochs
    hits = mmsim(
        "search",
        "matcher=run",
        "query=a red circle",
        "images_dir=shapes",
        "top_k=2",
        cwd=tmp_path,
    )
    assert len(json.loads(hits.stdout)[0]["hits"]) == 2
    bad = mmsim(
        "fit",
        "encoder=toy",
        "pairs=shapes",
        "fit.loss=triplet",
        cwd=tmp_path,
        ok=False,
    )
    assert bad.returncode == 2 and "loss must be one of" in bad.stderr
