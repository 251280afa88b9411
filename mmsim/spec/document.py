"""``matcher.json``: a matcher's spec written as JSON (no pickles) and read back as one.

The file records the validated options of both encoders (so a later change of a
plugin's defaults cannot change what a saved matcher loads; only a shipped model, an
encoder's own default checkpoint, is recorded by the encoder's name), both strategies
with the fitted parameters of the threshold, the pair column names and the runtime.
Paths inside the saved folder are stored relative to it, so the folder can be moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmsim.errors import ConfigError, DamagedFileError, UnknownComponentError
from mmsim.files import json_problem, write_atomic
from mmsim.plugin.loading import get_registry
from mmsim.spec.matcher_spec import MatcherSpec, thaw

FILE = "matcher.json"
FORMAT = "mmsim-matcher"
VERSION = 1
_PATH_OPTIONS = ("checkpoint", "pretrained", "model_config", "cache_dir")


def portable_options(options: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """Encoder options that survive moving, zipping or sharing the saved folder.

    A checkpoint inside ``folder`` (a fine-tuned model saved beside its matcher) is
    stored relative to it (``./checkpoint``); a shipped model, the encoder's own
    default, is stored by the encoder name alone; any other existing local path is made
    absolute; hub ids and tags stay as they are.
    """
    out = dict(options)
    defaults = _defaults(str(out.get("name")))
    base = folder.resolve() if folder is not None else None
    for key in _PATH_OPTIONS:
        value = out.get(key)
        if not isinstance(value, str) or value.startswith("./"):  # already folder-relative
            continue
        if defaults.get(key) == value:
            del out[key]
            continue
        path = Path(value).expanduser()
        if not path.exists():
            continue
        resolved = path.resolve()
        if base is not None and resolved.is_relative_to(base):
            out[key] = "./" + resolved.relative_to(base).as_posix()
        else:
            out[key] = str(resolved)
    return out


def encoder_identity(spec: MatcherSpec) -> dict[str, dict[str, Any]]:
    """Both towers' encoder options in the portable form (absolute local paths, a
    shipped model by its encoder name): what decides the embeddings, compared when
    embeddings made at another time (an index, an .npz) are searched with a matcher.
    Options that say only how the model runs (its schema's ``run_options``) are left out."""
    out = {}
    for side in ("image_encoder", "text_encoder"):
        encoder = spec.encoder(side.removesuffix("_encoder"))
        options = portable_options(encoder.as_dict(), None)
        schema = get_registry().get("encoder", encoder.name).schema
        for key in getattr(schema, "run_options", ()):
            options.pop(key, None)
        out[side] = options
    return out


def local_options(options: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The inverse of :func:`portable_options` for a matcher saved in ``folder``."""
    out = dict(options)
    for key in _PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and value.startswith("./"):
            out[key] = str((folder / value).resolve())
    return out


def _defaults(encoder: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        node = get_registry().get("encoder", encoder).default_config()
    except UnknownComponentError:
        return {}
    return OmegaConf.to_container(node)  # type: ignore[return-value]


def matcher_document(
    spec: MatcherSpec, folder: Path, *, encoder: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What ``matcher.json`` in ``folder`` holds for ``spec``; ``encoder`` replaces both
    towers' encoder (an export saved with the encoder that runs it)."""
    from mmsim import __version__

    configs = spec.configs()
    return {
        "format": FORMAT,
        "version": VERSION,
        "mmsim": __version__,
        "image_encoder": portable_options(encoder or configs["image_encoder"], folder),
        "text_encoder": portable_options(encoder or configs["text_encoder"], folder),
        "similarity": configs["similarity"],
        "threshold": configs["threshold"],
        "threshold_state": thaw(spec.threshold_state),
        "columns": {"query": spec.columns.query, "response": spec.columns.response},
        "runtime": {
            "device": spec.runtime.device,
            "dtype": spec.runtime.dtype,
            "batch_size": spec.runtime.batch_size,
        },
    }


def save_spec(spec: MatcherSpec, directory: str | Path) -> Path:
    """Write ``spec`` as ``directory/matcher.json`` (whole: temp file + rename)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return write_atomic(out / FILE, json.dumps(matcher_document(spec, out), indent=2) + "\n")


def read_spec(directory: str | Path, **overrides: Any) -> MatcherSpec:
    """The spec saved in ``directory`` by :func:`save_spec`, with ``overrides`` (any
    argument of :meth:`MatcherSpec.create`: ``device``, ``batch_size``, ``query``, ...)
    replacing the saved values. A damaged file is a :class:`DamagedFileError` naming it;
    a saved component that is not installed is a ConfigError naming the file."""
    path = Path(directory) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved matcher at {directory} (expected {path})")
    document = read_document(path)
    arguments: dict[str, Any] = {
        "encoder": local_options(document["image_encoder"], Path(directory)),
        "text_encoder": local_options(document["text_encoder"], Path(directory)),
        "similarity": document["similarity"],
        "threshold": document["threshold"],
        "threshold_state": document["threshold_state"],
        "query": document["columns"].get("query"),
        "response": document["columns"].get("response"),
        **document["runtime"],
    }
    if "threshold" in overrides:  # another threshold: what the saved one learned does not apply
        arguments.pop("threshold_state")
    arguments.update(overrides)
    try:
        spec = MatcherSpec.create(**arguments)
    except (ConfigError, UnknownComponentError) as exc:
        raise ConfigError(f"saved matcher {path}: {exc}") from exc
    problem = _state_problem(spec)
    if problem is not None:
        raise _damaged(
            path,
            f"its threshold_state does not fit threshold {document['threshold']!r} ({problem})",
        )
    return spec


def _state_problem(spec: MatcherSpec) -> str | None:
    """Why the spec's threshold cannot take its saved state, or None if it can."""
    if not spec.threshold_state:
        return None
    strategy = get_registry().get("threshold", spec.threshold.name).factory(spec.threshold.config())
    try:
        strategy.load_state(thaw(spec.threshold_state))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return repr(exc)
    return None


_SECTIONS = ("image_encoder", "text_encoder", "similarity", "threshold", "columns", "runtime")


def read_document(path: Path) -> dict[str, Any]:
    """The parsed ``matcher.json``, checked for the shape :func:`save_spec` writes;
    an empty, truncated or hand-edited file is a :class:`DamagedFileError` naming it."""
    problem = json_problem(path)
    if problem is not None:
        raise _damaged(path, problem)
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise _damaged(path, f"it holds a JSON {type(document).__name__}, not an object")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ConfigError(
            f"{path} is not an mmsim matcher of format version {VERSION} "
            f"(format={document.get('format')!r}, version={document.get('version')!r})"
        )
    for key in _SECTIONS:
        if not isinstance(document.get(key), dict):
            raise _damaged(path, f"its '{key}' entry is missing or not an object")
    document.setdefault("threshold_state", {})
    return document


def _damaged(path: Path, problem: str) -> DamagedFileError:
    return DamagedFileError(
        path,
        f"saved matcher {path} cannot be read: {problem}. Save the matcher again with "
        "Matcher.save(...) or mmsim calibrate ... output_dir=...",
    )
