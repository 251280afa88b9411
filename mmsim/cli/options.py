"""Checking a command's options before anything heavy is imported.

The command's config is composed with Hydra's compose API (no torch, no backbone
library), so a misspelled or missing option, a value of the wrong type or an unknown
component name is answered in a fraction of a second with one line that names the
option, the closest valid one and what the command accepts, instead of a traceback
after the model has loaded. Hydra's advice to add an unknown key with ``+`` is not
given: a ``+key`` is accepted only inside an open mapping (such as ``options`` of
``mmsim index optimize``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmsim.errors import MmsimError


class OptionError(MmsimError):
    """A command-line option the command does not accept; the message says why."""


def option_names(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every settable option of a composed config, dotted (``encoder.checkpoint``)."""
    tree = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    return _names(tree, prefix)  # type: ignore[arg-type]


def _names(tree: dict[str, object], prefix: str) -> list[str]:
    names = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if name == "hydra":
            continue
        names.append(name)
        if isinstance(value, dict):
            names += _names(value, f"{name}.")
    return names


def check(
    config_name: str, overrides: Sequence[str], command: str, *, require: bool = True
) -> DictConfig:
    """The composed config for ``overrides``; raises :class:`OptionError` with one line.
    ``require=False`` lets required options stay unset (for ``--help``)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    from mmsim.config import conf_dir, prepare

    prepare()  # the plugins' and the core's schemas in Hydra's ConfigStore
    given = [o for o in overrides if not o.startswith("hydra.")]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        base = _chosen(compose, config_name, given)
        known = option_names(base)
        for override in given:
            _check_append(override, base, known, command)
        try:
            cfg = compose(config_name=config_name, overrides=given)
        except MissingConfigException as exc:
            raise OptionError(_missing_choice(str(exc), command)) from None
        except OverrideParseException as exc:
            raise OptionError(f"cannot read an option: {_first_line(exc)}") from None
        except HydraException as exc:
            raise OptionError(_composition(exc, known, command)) from None
    missing = [name for name in option_names(cfg) if _is_missing(cfg, name)]
    if missing and require:
        raise OptionError(
            f"missing option {', '.join(missing)}; `mmsim {command} --help` says what "
            f"each option is, e.g. mmsim {command} {missing[0]}=..."
        )
    return cfg


def _chosen(compose: Any, config_name: str, given: Sequence[str]) -> DictConfig:
    """The config with the components the command line chooses (``engine=ray``,
    ``encoder=toy``) but none of their options set, so an unknown option is named
    against the chosen component's own options; the defaults if that does not compose."""
    from hydra.errors import HydraException

    keys = [o.split("=", 1)[0] for o in given]
    choices = [o for o, k in zip(given, keys, strict=True) if "=" in o and not set(k) & set(".+~")]
    try:
        return compose(config_name=config_name, overrides=choices)
    except HydraException:
        return compose(config_name=config_name)


def _is_missing(cfg: DictConfig, name: str) -> bool:
    parent, _, key = name.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and OmegaConf.is_missing(node, key)


def _check_append(override: str, base: DictConfig, known: list[str], command: str) -> None:
    key = override.split("=", 1)[0]
    if not key.startswith("+") or key.startswith("++"):
        return
    name = key.lstrip("+")
    parent = name.rpartition(".")[0]
    node = OmegaConf.select(base, parent) if parent else None
    if not isinstance(node, DictConfig) or isinstance(node, ListConfig):
        raise OptionError(_unknown(name, known, command))


def _composition(exc: Exception, known: list[str], command: str) -> str:
    text = f"{exc} {exc.__cause__ or ''}"
    found = re.search(r"Could not (?:override|append to) '([^']+)'", text)
    if found and ("not in struct" in text or "No match in the defaults" in text):
        return _unknown(found.group(1), known, command)
    key = re.search(r"full_key: (\S+)", text)
    if key and re.search(r"Key '[^']+' (?:is )?not in", text):  # a schema without that field
        return _unknown(key.group(1), known, command)
    reason = _first_line(exc.__cause__ or exc)
    if key:
        return f"option {key.group(1)}: {reason}"
    return reason


def _unknown(name: str, known: list[str], command: str) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    top = sorted({k.split(".")[0] for k in known})
    return (
        f"unknown option '{name}'.{hint} mmsim {command} takes: {', '.join(top)} "
        f"(`mmsim {command} --help` explains each)"
    )


def _missing_choice(text: str, command: str) -> str:
    found = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    options = re.search(
        r"Available options in '[^']+':\s*(.*?)(?:Config search path|$)", text, re.S
    )
    if not found:
        return _first_line(text)
    group, name = found.groups()
    choices = " ".join(options.group(1).split()) if options else "none"
    close = difflib.get_close_matches(name, choices.split(), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"no {group} named '{name}'.{hint} Available: {choices}"


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
