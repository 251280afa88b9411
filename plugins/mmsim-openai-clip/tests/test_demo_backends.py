"""The demo encoder's two backends: its shipped ONNX graphs (the default where the onnx
plugin is installed) and its weights on torch give the same embeddings and rankings,
and a one-shot search or an index over the ONNX towers never imports torch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmsim import Matcher, semantic_search
from mmsim.errors import ConfigError
from mmsim.plugin.testing import cli_env, heavy_imports, probing_imports
from mmsim.spec.document import encoder_identity
from mmsim.synthetic import write_dataset
from mmsim_onnx.towers import OnnxImageTower, OnnxTextTower
from mmsim_openai_clip.plugin import DEMO_CHECKPOINT, ONNX_FOLDER

QUERIES = ["a red circle", "a blue square on the left", "two green triangles", "a yellow star"]
# the export's self-check refuses graphs below a cosine of 0.9999; the shipped ones
# agree with the weights to about 2e-6 per component
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_dataset(folder, 24, seed=3)
    return folder


@pytest.fixture(scope="module")
def backends() -> dict[str, Matcher]:
    return {
        "auto": Matcher("demo", progress=False),
        "torch": Matcher("demo", encoder_options={"backend": "torch"}, progress=False),
    }


def test_the_demo_runs_its_shipped_onnx_graphs_unless_told_otherwise(backends):
    auto, torch_backed = backends["auto"], backends["torch"]
    assert isinstance(auto.image_tower, OnnxImageTower)
    assert isinstance(auto.text_tower, OnnxTextTower)
    assert auto.assembly.sources["image"].trainable is None
    assert type(torch_backed.image_tower).__module__.startswith("mmsim.plugin.transformers")
    assert torch_backed.assembly.sources["image"].trainable is not None
    # fine-tuning and export get the weights on torch, from the same spec
    native = auto.assembly.native()
    assert native.sources["image"].trainable is not None
    assert native.spec.image_encoder.options["backend"] == "torch"
    # the backend says how the model runs, not which: an index or .npz made one way
    # is searched the other
    assert encoder_identity(auto.spec) == encoder_identity(torch_backed.spec)


def test_both_backends_give_the_same_embeddings_and_ranking(backends, scenes):
    images = sorted(str(p) for p in scenes.glob("*.png"))
    out = {}
    for name, matcher in backends.items():
        corpus = matcher.extract_embedding(images)
        queries = matcher.extract_embedding(QUERIES)
        hits = semantic_search(query_embeddings=queries, response_embeddings=corpus, top_k=5)
        out[name] = (corpus, queries, hits)
    (c_onnx, q_onnx, h_onnx), (c_torch, q_torch, h_torch) = out["auto"], out["torch"]
    assert np.abs(c_onnx - c_torch).max() < TOLERANCE
    assert np.abs(q_onnx - q_torch).max() < TOLERANCE
    assert [[h["response_id"] for h in q] for q in h_onnx] == [
        [h["response_id"] for h in q] for q in h_torch
    ]
    scores = [[h["score"] for h in q] for q in h_onnx]
    assert np.allclose(scores, [[h["score"] for h in q] for q in h_torch], atol=TOLERANCE)


def test_the_shipped_graphs_are_checked_against_their_manifest():
    manifest = json.loads((Path(DEMO_CHECKPOINT) / ONNX_FOLDER / "manifest.json").read_text())
    assert manifest["source"]["image_encoder"] == {"name": "demo"}  # no machine's paths
    assert set(manifest["files"]) == {"image.onnx", "text.onnx", "tokenizer.json"}
    assert manifest["precision"] == "fp32"


def test_a_backend_that_cannot_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"backend must be one of auto, onnx, torch; got 'gpu'"):
        Matcher("demo", encoder_options={"backend": "gpu"})
    with pytest.raises(ConfigError, match=rf"{tmp_path} has no exported towers in onnx/"):
        Matcher("demo", checkpoint=str(tmp_path), encoder_options={"backend": "onnx"})


def _run(*args: str, cwd: Path) -> str:
    """Run ``mmsim args`` and return its output; it must succeed without loading torch."""
    done = subprocess.run(
        [*probing_imports(), *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert heavy_imports(done.stderr) == [], done.stderr[-3000:]
    return done.stdout


def test_searches_and_an_index_over_the_demo_never_import_torch(scenes, tmp_path):
    found = json.loads(
        _run("search", "encoder=demo", "query=a red circle", f"images_dir={scenes}", cwd=tmp_path)
    )
    assert len(found[0]["hits"]) == 5  # the default top_k
    _run("index", "build", f"source={scenes}", "output=idx", "encoder=demo", cwd=tmp_path)
    hits = json.loads(_run("search", "index=idx", "query=a red circle", cwd=tmp_path))
    assert [h["path"] for h in hits[0]["hits"]] == [h["item"] for h in found[0]["hits"]]
