"""``mmsim plugins``: installed plugins, their versions, and what each registered."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from mmsim.plugin.loading import autoload_enabled, describe_plugins


def run(cfg: DictConfig) -> None:
    report = describe_plugins()
    if cfg.format == "json":
        print(json.dumps(report, indent=2))
        return
    if cfg.format != "text":
        raise ValueError(f"format must be 'text' or 'json', got '{cfg.format}'")
    if not autoload_enabled():
        print("(entry-point autoload is off: MMSIM_DISABLE_PLUGIN_AUTOLOAD is set)")
    for plugin in report:
        origin = plugin["distribution"] or plugin["module"]
        version = f" {plugin['version']}" if plugin["version"] else ""
        print(f"{plugin['name']}  ({origin}{version})")
        if plugin["error"]:
            print(f"    FAILED: {plugin['error']}")
        for kind, components in plugin["components"].items():
            for component in components:
                print(f"    {kind:<11} {component['name']:<16} {component['description']}")
