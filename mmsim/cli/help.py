"""``mmsim <command> --help``: what the command does, its options, two examples.

Everything comes from the command's own ``conf/<command>.yaml``: the header comment
says what the command does and shows examples, and the comment beside each option
explains it, so the help and the config cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

_OPTION = re.compile(r"^(\s*)([A-Za-z_][\w]*):\s*(.*?)\s*(?:#\s?(.*))?$")
_GROUPS = ("encoder", "image_encoder", "text_encoder", "similarity", "threshold", "engine")


def parse_conf(path: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(description lines, example lines, [(dotted option, comment)]) of a config file."""
    description, examples, options = [], [], []
    parents: list[tuple[int, str]] = []
    header = True
    for line in path.read_text(encoding="utf-8").splitlines():
        if header and line.startswith("#"):
            text = line[1:].strip()
            if text.startswith("mmsim ") and line.startswith("#   "):
                examples.append(text)
            elif text and not examples:
                description.append(text)
            continue
        header = False
        found = _OPTION.match(line)
        if not found or line.lstrip().startswith("-"):
            continue
        indent, key, _value, comment = found.groups()
        if key in ("defaults", "hydra") and not indent:
            parents = [(0, "#skip")]
            continue
        while parents and parents[-1][0] >= len(indent):
            parents.pop()
        if parents and parents[0][1] == "#skip":
            continue
        name = ".".join([p for _, p in parents] + [key])
        options.append((name, comment or ""))
        parents.append((len(indent), key))
    return description, examples, options


def render(command: str, config_name: str, cfg: DictConfig) -> str:
    from mmsim.config import conf_dir
    from mmsim.plugin.loading import get_registry

    description, examples, options = parse_conf(conf_dir() / f"{config_name}.yaml")
    for shared in ("matcher", "common"):  # options the command takes from shared files
        if shared != config_name and f"  - {shared}\n" in _read(conf_dir(), config_name):
            options += [o for o in parse_conf(conf_dir() / f"{shared}.yaml")[2] if o not in options]
    lines = [
        " ".join(description) or f"mmsim {command}",
        "",
        f"usage: mmsim {command} key=value ...",
    ]
    lines += ["", "options:"]
    width = max([len(name) for name, _ in options] + [len("image_encoder")]) + 2
    for name, comment in options:
        node = OmegaConf.select(cfg, name, throw_on_missing=False)
        if isinstance(node, DictConfig):
            continue
        parent, _, key = name.rpartition(".")
        holder = OmegaConf.select(cfg, parent) if parent else cfg
        missing = OmegaConf.is_missing(holder, key)
        shown = "(required)" if missing else f"[default: {_show(node)}]"
        lines.append(f"  {name:<{width}}{comment} {shown}".rstrip())
    registry = get_registry()
    groups = [g for g in _GROUPS if g in cfg or (g.endswith("_encoder") and "encoder" in cfg)]
    if groups:
        lines += ["", "components (group=name chooses one; group.option=value sets its options):"]
        for group in groups:
            kind = "encoder" if group.endswith("encoder") else group
            current = cfg.get(group)
            chosen = current.get("name") if isinstance(current, DictConfig) else None
            names = ", ".join(f"{n} (default)" if n == chosen else n for n in registry.names(kind))
            lines.append(f"  {group:<{width}}{names}")
        if "runtime" in cfg:
            keys = ", ".join(str(k) for k in cfg.runtime)
            lines.append(f"  {'runtime':<{width}}runtime.{{{keys}}}=..., or runtime=bf16")
    if examples:
        lines += ["", "examples:", *(f"  {e}" for e in examples[:3])]
    lines += [
        "",
        f"`mmsim {command} --cfg job` prints the composed config; `mmsim plugins` "
        "lists every component and its owner.",
    ]
    return "\n".join(lines)


def _show(value: object) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return "null" if value is None else str(value)


def _read(folder: Path, name: str) -> str:
    return (folder / f"{name}.yaml").read_text(encoding="utf-8")
