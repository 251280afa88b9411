"""The plugin system: hooks, staging, duplicates, failures, schemas, glob listing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import mmsim
import mmsim.plugin.loading as plugins
from mmsim.errors import ConfigError, DuplicateComponentError, UnknownComponentError
from mmsim.plugin.hooks import hookimpl
from mmsim.plugin.schemas import SimilarityConfig
from mmsim.scoring.similarity import CosineSimilarity


@dataclass
class ScaledConfig(SimilarityConfig):
    name: str = "scaled_cosine"
    scale: float = 2.0


class ScaledCosine(CosineSimilarity):
    def pairwise(self, a, b):
        return super().pairwise(a, b) * self.config.scale

    def matrix(self, q, r):
        return super().matrix(q, r) * self.config.scale


class GoodPlugin:
    @hookimpl
    def mmsim_register(self, registry):
        registry.register_similarity("scaled_cosine", ScaledCosine, ScaledConfig, description="x2")


BUILTIN_SIMILARITIES = ["cosine", "dot", "logit"]


def test_core_components_register_through_the_hook(no_autoload):
    assert mmsim.list_similarities() == BUILTIN_SIMILARITIES
    assert mmsim.list_thresholds() == sorted(
        [
            "fixed",
            "native",
            "platt",
            "isotonic",
            "best_f1",
            "target_fpr",
            "target_precision",
            "autogluon",
        ]
    )
    assert mmsim.list_encoders() == ["toy"]  # autoload off: no backbone, the core's toy
    report = {p["name"]: p for p in plugins.describe_plugins()}
    assert report["mmsim"]["components"]["similarity"][0]["name"] == "cosine"


def test_entry_point_plugins_load_when_autoload_is_on(fresh_plugins, monkeypatch):
    monkeypatch.delenv(plugins.ENV_DISABLE_AUTOLOAD, raising=False)
    assert "openai_clip" in mmsim.list_encoders()
    info = {p.name: p for p in plugins.loaded_plugins()}["openai_clip"]
    assert info.distribution == "mmsim-openai-clip"
    assert info.version == "0.1.0"
    assert info.registered == [("encoder", "openai_clip"), ("encoder", "demo")]


def test_blocked_plugins_are_not_loaded(fresh_plugins, monkeypatch):
    monkeypatch.delenv(plugins.ENV_DISABLE_AUTOLOAD, raising=False)
    monkeypatch.setenv(plugins.ENV_BLOCKED, "mmsim-openai-clip")
    assert "openai_clip" not in mmsim.list_encoders()


def test_registered_plugin_is_usable_and_listed_by_glob(no_autoload):
    plugins.register_plugin(GoodPlugin(), name="good")
    assert mmsim.list_similarities("scaled_*") == ["scaled_cosine"]
    assert mmsim.list_similarities("*cos*") == ["cosine", "scaled_cosine"]
    component = plugins.get_registry().get("similarity", "scaled_cosine")
    assert component.owner == "good"
    strategy = component.factory(component.make_config({"scale": 3.0}))
    import torch

    a = torch.tensor([[1.0, 0.0]])
    assert strategy.pairwise(a, a).item() == pytest.approx(3.0)


def test_loading_is_idempotent(no_autoload):
    plugin = GoodPlugin()
    plugins.register_plugin(plugin, name="good")
    first = plugins.get_registry()
    plugins.register_plugin(plugin, name="good")  # same plugin again: no duplicate error
    assert plugins.get_registry() is first
    assert [p.name for p in plugins.loaded_plugins()].count("good") == 1


def test_duplicate_names_fail_naming_both_owners(no_autoload):
    plugins.register_plugin(GoodPlugin(), name="first-owner")
    plugins.register_plugin(GoodPlugin(), name="second-owner")
    with pytest.raises(DuplicateComponentError, match="'first-owner' and by 'second-owner'"):
        plugins.get_registry()


def test_duplicate_registered_after_loading_fails_at_once(no_autoload):
    plugins.register_plugin(GoodPlugin(), name="first-owner")
    plugins.get_registry()
    with pytest.raises(DuplicateComponentError, match="'first-owner' and by 'late-owner'"):
        plugins.register_plugin(GoodPlugin(), name="late-owner")


def test_plugin_that_fails_to_register_warns_and_leaves_nothing_behind(no_autoload):
    class HalfBroken:
        @hookimpl
        def mmsim_register(self, registry):
            registry.register_similarity("half", ScaledCosine, ScaledConfig)
            raise RuntimeError("boom in register")

    plugins.register_plugin(HalfBroken(), name="half-broken")
    with pytest.warns(plugins.PluginLoadWarning, match="half-broken.*RuntimeError: boom"):
        registry = plugins.get_registry()
    assert "half" not in registry.names("similarity")
    assert registry.names("similarity") == BUILTIN_SIMILARITIES  # the others keep working
    info = {p.name: p for p in plugins.loaded_plugins()}["half-broken"]
    assert "boom in register" in info.error


def test_plugin_that_fails_to_import_warns(no_autoload, monkeypatch):
    monkeypatch.setenv(plugins.ENV_PLUGINS, "mmsim_no_such_module_xyz")
    with pytest.warns(plugins.PluginLoadWarning, match="mmsim_no_such_module_xyz.*ModuleNotFound"):
        assert plugins.get_registry().names("similarity") == BUILTIN_SIMILARITIES


def test_misspelled_hook_is_reported(no_autoload):
    class Misspelled:
        @hookimpl
        def mmsim_registr(self, registry):  # typo: never called
            pass

    plugins.register_plugin(Misspelled(), name="typo-plugin")
    with pytest.warns(plugins.PluginLoadWarning, match="typo-plugin.*mmsim_registr"):
        plugins.get_registry()


def test_schema_validation_names_the_component(no_autoload):
    plugins.register_plugin(GoodPlugin(), name="good")
    component = plugins.get_registry().get("similarity", "scaled_cosine")
    with pytest.raises(ConfigError, match=r"similarity 'scaled_cosine'.*bogus"):
        component.make_config({"bogus": 1})
    with pytest.raises(ConfigError, match="scale"):
        component.make_config({"scale": "not-a-number"})


def test_unknown_component_lists_what_is_available(no_autoload):
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'cosine'.*Available: cosine"):
        plugins.get_registry().get("similarity", "cosin")


def test_bad_registrations_are_refused(no_autoload):
    class BadSchema:
        @hookimpl
        def mmsim_register(self, registry):
            registry.register_similarity("plain", ScaledCosine, dict)

    plugins.register_plugin(BadSchema(), name="bad-schema")
    with pytest.warns(plugins.PluginLoadWarning, match="must be a dataclass subclassing"):
        plugins.get_registry()


def test_schemas_reach_hydra_config_store(no_autoload):
    from hydra.core.config_store import ConfigStore

    plugins.register_plugin(GoodPlugin(), name="good")
    plugins.get_registry()
    node = ConfigStore.instance().load("similarity/scaled_cosine.yaml").node
    assert node.scale == 2.0 and node.name == "scaled_cosine"


def test_two_plugins_with_one_name_are_reported(no_autoload):
    plugins.register_plugin(GoodPlugin(), name="same-name")
    plugins.register_plugin(GoodPlugin(), name="same-name")
    with pytest.warns(plugins.PluginLoadWarning, match="'same-name'.*already registered"):
        registry = plugins.get_registry()
    assert registry.get("similarity", "scaled_cosine").owner == "same-name"


def test_core_and_plugin_listing_import_no_backbone_library():
    """mmsim's core never imports a backbone library; plugins import theirs only to build."""
    import subprocess
    import sys

    probe = (
        "import sys, mmsim, mmsim.cli, mmsim.config; mmsim.config.compose('embed'); "
        "mmsim.plugin.loading.describe_plugins(); "
        "print(sorted(m for m in ('transformers', 'open_clip') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
