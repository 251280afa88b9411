"""Hydra configs: composition, presets, schema validation, conf/ inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from mmsim import Matcher
from mmsim.config import compose, conf_dir
from tests.paths import REPO


@pytest.mark.parametrize("command", ["embed", "search", "match", "plugins"])
def test_every_command_config_composes(command):
    cfg = compose(command)
    if command != "plugins":
        assert cfg.encoder.name == "openai_clip"
        assert cfg.encoder.checkpoint == "openai/clip-vit-base-patch32"
        assert cfg.similarity.name == "cosine" and cfg.threshold.name == "fixed"
        assert cfg.runtime.dtype == "float32"


def test_overrides_and_presets():
    cfg = compose("embed", ["encoder=clip_vit_l14", "runtime=bf16", "threshold.value=0.3"])
    assert cfg.encoder.checkpoint == "openai/clip-vit-large-patch14"
    assert cfg.encoder.name == "openai_clip" and cfg.encoder.local_files_only is False
    assert cfg.runtime.dtype == "bfloat16" and cfg.runtime.batch_size == 32
    assert cfg.threshold.value == 0.3


def test_schema_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ConfigCompositionException, match=r"encoder.bogus"):
        compose("embed", ["encoder.bogus=1"])
    with pytest.raises(ConfigCompositionException, match=r"runtime.batch_size"):
        compose("embed", ["runtime.batch_size=many"])
    with pytest.raises(ConfigCompositionException, match=r"threshold.value"):
        compose("match", ["threshold.value=high"])


def test_matcher_from_composed_config(image_paths):
    cfg = compose(
        "match",
        [
            "encoder=toy",
            "threshold.value=-1.0",
            "columns.query=img",
            "columns.response=caption",
            "runtime.progress=false",
        ],
    )
    matcher = Matcher.from_config(cfg)
    assert (matcher.query, matcher.response) == ("img", "caption")
    direct = Matcher("toy", progress=False)
    items = [str(image_paths[0]), "a dog"]
    assert (matcher.extract_embedding(items) == direct.extract_embedding(items)).all()
    assert matcher.predict({"img": [str(image_paths[0])], "caption": ["x"]}).tolist() == [1]


def test_composed_config_selects_separate_towers(outside_plugin):
    cfg = compose(
        "embed", ["encoder=outside", "text_encoder=outside", "text_encoder.checkpoint=other"]
    )
    assert cfg.text_encoder.checkpoint == "other" and cfg.get("image_encoder") is None
    matcher = Matcher.from_config(cfg)
    assert (
        matcher.text_tower.name == "outside:other"
        and matcher.image_tower.name == "outside:outside-v1"
    )
    OmegaConf.to_yaml(cfg)  # every value resolves


def test_conf_ships_inside_the_wheel(tmp_path):
    """Users who install the wheel get the same configs as the source checkout."""
    subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("mmsim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for path in conf_dir().rglob("*.yaml"):
        assert f"mmsim/conf/{path.relative_to(conf_dir()).as_posix()}" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = "import mmsim.config as c; print(c.conf_dir()); print(c.compose('embed').encoder.name)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": ""},
    )
    conf, name = out.stdout.split()
    assert Path(conf) == target / "mmsim" / "conf" and name == "openai_clip"


def test_every_backbone_is_selectable_from_config(open_clip_dirs, tiny_siglip_dir, tiny_clip_dir):
    open_clip = compose(
        "search",
        [
            "encoder=open_clip",
            f"encoder.checkpoint={open_clip_dirs['clip_dir']}",
            "encoder.trim_text=false",
            "query=x",
        ],
    )
    assert open_clip.encoder.pretrained == "laion2b_s34b_b79k"  # the schema's default
    assert Matcher.from_config(open_clip).text_tower.causal is None  # trim_text=false reached it
    siglip = compose(
        "search", ["encoder=siglip", f"encoder.checkpoint={tiny_siglip_dir}", "query=x"]
    )
    assert Matcher.from_config(siglip).text_tower.logit_bias == pytest.approx(-10.0)
    mixed = compose(
        "search",
        [
            f"encoder.checkpoint={tiny_clip_dir}",
            "text_encoder=open_clip",
            f"text_encoder.checkpoint={open_clip_dirs['clip_dir']}",
            "query=x",
        ],
    )
    matcher = Matcher.from_config(mixed)
    assert matcher.image_tower.name.startswith("openai_clip:")
    assert matcher.text_tower.name.startswith("open_clip:")
