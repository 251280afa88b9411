"""The shipped demo model and ``mmsim demo``: real results offline, through the real paths."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from mmsim import Matcher, synthetic
from mmsim.config import compose
from mmsim.demo.walkthrough import format_report, run_demo
from tests.cli.test_cli import mmsim

# CI floors, a little under what the README reports (docs/demo-model.md has the table)
FLOOR = {"t2i_r1": 0.78, "i2t_r5": 0.95, "f1": 0.94}
# zero-shot accuracy on 300 independent-renderer scenes, all and held-out combinations
# (measured 1.000 / 1.000, 0.947 / 0.868 and turned 0.890 / 0.686)
ZERO_SHOT = {"colour": (0.97, 0.9), "shape": (0.92, 0.82), "turned_shape": (0.86, 0.62)}


@pytest.fixture(scope="module")
def demo() -> Matcher:
    return Matcher("demo", query="image", response="caption", progress=False)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    """Every distinct scene with a held-out colour-shape combination (about 280)."""
    folder = tmp_path_factory.mktemp("heldout")
    synthetic.write_dataset(folder, 1000, seed=123, split="heldout", unique=True)
    return folder


def _table(path: Path, folder: Path) -> dict[str, list]:
    rows = list(csv.DictReader(path.open()))
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    columns["image"] = [str(folder / name) for name in columns["image"]]
    return columns


def test_demo_encoder_loads_the_shipped_checkpoint_through_the_openai_clip_path(demo):
    """The torch backend loads the safetensors through the openai_clip plugin's path; by
    default (onnx plugin installed) the same checkpoint runs as its shipped graphs."""
    from mmsim_openai_clip.plugin import DEMO_CHECKPOINT

    assert demo.spec.image_encoder.options["checkpoint"] == DEMO_CHECKPOINT
    assert demo.image_tower.name == f"onnx:{Path(DEMO_CHECKPOINT) / 'onnx'}"
    torch_backed = Matcher("demo", encoder_options={"backend": "torch"}, progress=False)
    assert torch_backed.image_tower.name == f"openai_clip:{DEMO_CHECKPOINT}"
    weights = Path(DEMO_CHECKPOINT) / "model.safetensors"
    assert weights.stat().st_size < 5_000_000  # a few MB: it ships in the repository
    assert compose("search", ["encoder=demo", "query=x"]).encoder.name == "demo"


def test_demo_model_meets_the_quality_floor_on_held_out_combinations(demo, heldout, tmp_path):
    captions = _table(heldout / "captions.csv", heldout)
    assert len(captions["image"]) > 250
    retrieval = demo.evaluate(captions)
    assert retrieval["response_to_query"]["recall@1"] >= FLOOR["t2i_r1"]  # text -> image
    assert retrieval["query_to_response"]["recall@5"] >= FLOOR["i2t_r5"]  # image -> text

    calibration = tmp_path / "calibration"
    synthetic.write_dataset(calibration, 300, seed=7, split="train", unique=True)
    fitted = Matcher("demo", query="image", response="caption", threshold="best_f1", progress=False)
    fitted.calibrate(_table(calibration / "pairs.csv", calibration))
    pairs = fitted.evaluate(_table(heldout / "pairs.csv", heldout), label="label")["pairs"]
    assert pairs["f1"] >= FLOOR["f1"]


@pytest.mark.parametrize(("by", "turns"), [("colour", 0.0), ("shape", 0.0), ("shape", 1.0)])
def test_demo_model_sees_colour_and_shape_in_images_drawn_by_other_code(demo, by, turns):
    """Zero-shot classification of single shapes drawn by the independent renderer
    (numpy rasteriser, named colours, paper backgrounds, 96 px: no training code), over
    every combination, held-out ones included; shapes upright, then turned to any angle
    (what moving footage shows)."""
    scenes = synthetic.generate(
        300, seed=11, split="all", renderer="independent", two_object_share=0.0, turns=turns
    )
    labels = [getattr(s.objects[0], by) for s in scenes]
    classes = list(synthetic.COLOURS) if by == "colour" else list(synthetic.SHAPES)
    result = demo.classify(
        [s.image for s in scenes], classes, synthetic.prompt_templates(by), labels=labels
    )
    floor, unseen_floor = ZERO_SHOT["turned_shape" if turns else by]
    assert result.accuracy >= floor
    unseen = [
        i
        for i, s in enumerate(scenes)
        if (s.objects[0].colour, s.objects[0].shape) in synthetic.HELD_OUT
    ]
    right = sum(result.predictions[i] == labels[i] for i in unseen)
    assert right / len(unseen) >= unseen_floor  # held-out combinations, too


def test_run_demo_shows_correct_results_and_writes_the_page(demo, tmp_path):
    matcher = Matcher("demo", threshold="best_f1", progress=False)
    report = run_demo(matcher, tmp_path, n_images=16, calibration_scenes=100)
    assert len(report.images) == 16 and all(p.is_file() for p in report.images)
    assert any(report.unseen) and not all(report.unseen)
    top1 = [
        report.captions[s["hits"][0]["response_id"]] == s["query"] for s in report.text_to_image
    ]
    assert sum(top1) >= len(top1) - 1
    assert report.pair_f1 >= 0.8
    page = report.html.read_text()
    for search in report.text_to_image:
        assert search["query"] in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((tmp_path / src).is_file() for src in sources)
    text = format_report(report, "demo")
    assert "Text -> image search" in text and "Pair predictions" in text and "F1" in text


def test_mmsim_demo_runs_offline_from_a_fresh_folder(tmp_path):
    result = mmsim("demo", "images=12", cwd=tmp_path)
    assert "Text -> image search" in result.stdout and "Image -> text search" in result.stdout
    assert (tmp_path / "demo_output" / "index.html").is_file()
    assert len(list((tmp_path / "demo_output" / "images").glob("*.png"))) == 12


def test_readme_quality_commands_run(tmp_path):
    """The synthetic + evaluate commands the README reports the demo model's quality with."""
    mmsim("synthetic", "out=heldout", "split=heldout", "n=40", "unique=true", cwd=tmp_path)
    result = mmsim(
        "evaluate",
        "encoder=demo",
        "pairs=heldout/captions.csv",
        "columns.response=caption",
        cwd=tmp_path,
    )
    report = json.loads(result.stdout)
    assert report["response_to_query"]["queries"] == 40
    assert report["response_to_query"]["recall@1"] >= 0.4

    mmsim(
        "synthetic",
        "out=drawn",
        "renderer=independent",
        "split=all",
        "by=shape",
        "n=30",
        cwd=tmp_path,
    )
    result = mmsim(
        "classify",
        "encoder=demo",
        "images_dir=drawn",
        "templates=drawn/templates.txt",
        cwd=tmp_path,
    )
    accuracy = float(re.search(r"accuracy ([0-9.]+)", result.stdout).group(1))
    assert "into 3 classes" in result.stdout and accuracy >= 0.6
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(rows) == 30 and {r["label"] for r in rows} <= set(synthetic.SHAPES)
