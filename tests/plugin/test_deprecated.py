"""Old import paths of public names keep working for one release, with a warning that
says where to import from now; AutoGluon's ``mmsim.utils`` stays without a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import mmsim
from mmsim._deprecated import MOVED, PACKAGES

OLD_NAMES = [
    ("mmsim.towers", "ImageTower", "mmsim.plugin.towers"),
    ("mmsim.towers", "Trainable", "mmsim.plugin.trainable"),
    ("mmsim.schemas", "EncoderConfig", "mmsim.plugin.schemas"),
    ("mmsim.schemas", "FitConfig", "mmsim.training.options"),
    ("mmsim.hookspecs", "hookimpl", "mmsim.plugin.hooks"),
    ("mmsim.plugins", "register_plugin", "mmsim.plugin.loading"),
    ("mmsim.checkpoints", "load_checkpoint", "mmsim.plugin.checkpoints"),
    ("mmsim.export.contract", "TowerExport", "mmsim.plugin.exportable"),
    ("mmsim.export.specs", "hf_image_spec", "mmsim.plugin.transformers"),
    ("mmsim.search", "semantic_search", "mmsim.retrieval.search"),
    ("mmsim.thresholds", "BestF1", "mmsim.scoring.thresholds"),
    ("mmsim.report", "CalibrationReport", "mmsim.scoring.report"),
    ("mmsim.predictor", "MultiModalPredictor", "mmsim.matcher.autogluon"),
    ("mmsim.validation", "positive_int", "mmsim.errors"),
]


def _fresh(name: str) -> None:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


@pytest.mark.parametrize(("old", "name", "home"), OLD_NAMES)
def test_an_old_path_still_gives_the_same_object_and_names_the_new_one(old, name, home):
    _fresh(old)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*{home}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(home), name)


def test_a_setting_made_through_an_old_path_takes_effect(monkeypatch):
    import mmsim.inputs.remote as remote

    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("mmsim.sources")
    monkeypatch.setattr(remote, "MAX_BYTES", remote.MAX_BYTES)  # restored afterwards
    old.MAX_BYTES = 123
    assert remote.MAX_BYTES == 123 and old.MAX_BYTES == 123


def test_every_moved_module_resolves_its_names():
    for old, homes in MOVED.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(old)
        assert dir(module), old
        for home in homes:
            importlib.import_module(home)


def test_names_of_a_module_that_became_a_package_warn():
    from mmsim.inputs.detect import detect_modality

    with pytest.warns(DeprecationWarning, match="import it from mmsim.inputs.detect"):
        from mmsim.inputs import detect_modality as old
    assert old is detect_modality
    with pytest.raises(AttributeError, match="moved to"):
        mmsim.inputs.no_such_name  # noqa: B018
    assert set(PACKAGES) == {"mmsim.inputs", "mmsim.embedding"}


def test_autogluons_utils_path_is_not_deprecated():
    code = (
        "import warnings; warnings.simplefilter('error');"
        "from mmsim.utils import download, semantic_search; print(semantic_search.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "mmsim.retrieval.search"


def test_the_old_runner_argument_still_builds(tmp_path, image_paths):
    from mmsim import Matcher
    from mmsim.index.batches import LocalEngine
    from mmsim.index.index import Index

    with pytest.warns(DeprecationWarning, match="now called engine="):
        index = Index.build(
            [str(p) for p in image_paths],
            Matcher("toy", progress=False),
            tmp_path / "idx",
            progress=False,
            runner=LocalEngine(),
        )
    assert len(index) == len(image_paths)
