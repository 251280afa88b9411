"""Resolving checkpoint references without hanging on a network that is not there.

Shared by plugins that load from a model hub: the reference is tried locally first
(a directory, or the hub's cache), and the network is used only when the copy is
missing and the user has not asked to stay offline. Every failure names the
checkpoint and says how to make it available.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mmsim.errors import CheckpointNotFoundError, DamagedFileError
from mmsim.files import damage_in

T = TypeVar("T")
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
PROBE_TIMEOUT_S = 3.0


def is_local_reference(reference: str) -> bool:
    """True for references that name a file or directory rather than a hub id.

    Hub ids are ``name`` or ``org/name``; anything that exists on disk, starts with
    ``/``, ``.`` or ``~``, or has more than one ``/`` is a path.
    """
    if Path(reference).expanduser().exists():
        return True
    return reference.startswith(("/", ".", "~")) or reference.count("/") > 1 or "\\" in reference


def offline_requested() -> bool:
    return any(os.environ.get(name, "") not in ("", "0", "false", "False") for name in OFFLINE_ENV)


def unreachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``endpoint`` cannot be reached, or None if a TCP connection opens in time.

    Hub clients retry a dead connection for tens of seconds; one short probe first lets
    a machine without network fail at once. Skipped (None) when a proxy is configured,
    since only the proxy knows the way.
    """
    if any(os.environ.get(name) for name in PROXY_ENV):
        return None
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"


def load_checkpoint(
    reference: str,
    load: Callable[[str, bool], T],
    *,
    what: str,
    endpoint: str | None = None,
    local_files_only: bool = False,
    cache_hint: str = "the Hugging Face cache (HF_HOME, default ~/.cache/huggingface)",
    how_to_fix: str | None = None,
    cached_copy: Callable[[], Path | None] | None = None,
) -> T:
    """Call ``load(reference, local_files_only)`` the way a user would want.

    ``how_to_fix`` replaces the default advice (``hf download`` / ``save_pretrained``)
    in error messages, for libraries with another way of fetching weights.
    ``cached_copy`` finds the folder the cache holds the reference in (see
    :func:`hub_snapshot`), so that a cached copy that fails to load because one of its
    files is damaged (an interrupted download) is reported with that file's name,
    not as a missing checkpoint or a bare parser error.

    1. A local path is loaded with ``local_files_only=True``; a missing one is an error.
    2. A hub id is first looked up in the cache with ``local_files_only=True``.
    3. Only if that fails, and neither ``local_files_only`` nor ``HF_HUB_OFFLINE`` is
       set, is it downloaded, after a short probe of ``endpoint`` (the hub's URL) so
       that a machine without network fails at once instead of retrying.
    """
    if is_local_reference(reference):
        path = Path(reference).expanduser()
        if not path.exists():
            raise CheckpointNotFoundError(
                f"{what} checkpoint '{reference}' looks like a local path, but {path} does "
                "not exist"
            )
        try:
            return load(str(path), True)
        except Exception as exc:
            raise _load_failure(what, reference, path, exc) from exc
    fix = how_to_fix or (
        f"To make it available: on a machine with network access run "
        f"`hf download {reference}` and copy {cache_hint} here, or save the model "
        f"with save_pretrained(...) and pass that directory as the checkpoint."
    )
    try:
        return load(reference, True)
    except Exception as cached_error:
        damaged = _damaged_copy(what, reference, cached_copy)
        if damaged is not None:
            raise damaged from cached_error
        if not isinstance(cached_error, OSError):
            raise
        if local_files_only or offline_requested():
            raise CheckpointNotFoundError(
                f"{what} checkpoint '{reference}' is not in {cache_hint} and downloads are "
                f"switched off (local_files_only or HF_HUB_OFFLINE). {fix}"
            ) from cached_error
    reason = unreachable(endpoint) if endpoint else None
    if reason is not None:
        raise CheckpointNotFoundError(
            f"{what} checkpoint '{reference}' is not in {cache_hint} and the hub is not "
            f"reachable: {reason}. {fix}"
        )
    try:
        return load(reference, False)
    except OSError as exc:
        raise CheckpointNotFoundError(
            f"{what} checkpoint '{reference}' is not in {cache_hint} and could not be "
            f"downloaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            f"{fix}"
        ) from exc


def hub_snapshot(repo_id: str, cache_dir: str | None, revision: str | None) -> Path | None:
    """The Hugging Face cache's snapshot folder of ``repo_id`` at ``revision``, or None
    when it is not cached (or ``huggingface_hub``, which every hub-loading plugin has,
    is not installed). Never downloads."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, revision=revision, local_files_only=True
        )
    except Exception:  # any failure only means there is no cached copy to diagnose
        return None
    return Path(folder)


def _damaged_copy(
    what: str, reference: str, cached_copy: Callable[[], Path | None] | None
) -> DamagedFileError | None:
    """The error naming a damaged file in the cached copy of ``reference``, if any."""
    folder = cached_copy() if cached_copy is not None else None
    damage = damage_in(folder) if folder is not None else None
    if damage is None:
        return None
    file, problem = damage
    return DamagedFileError(
        file,
        f"{what} checkpoint '{reference}' cannot be loaded from the cache: {file} is "
        f"damaged ({problem}). It is probably an interrupted download: delete that file "
        "(or the whole cached folder) and download it again.",
    )


def _load_failure(what: str, reference: str, path: Path, exc: Exception) -> Exception:
    """The error for a local checkpoint that exists but does not load: the damaged file
    named when one is found (a truncated download, a half-copied folder)."""
    damage = damage_in(path)
    if damage is not None:
        file, problem = damage
        return DamagedFileError(
            file,
            f"{what} checkpoint '{reference}' cannot be loaded: {file} is damaged ({problem}). "
            "It is probably an interrupted download or copy: download or copy it again, or "
            "save the model again with save_pretrained(...)",
        )
    detail = str(exc).splitlines()[0] if str(exc) else ""
    kind = "directory" if path.is_dir() else "file"
    message = (
        f"{what} checkpoint {kind} '{reference}' could not be loaded "
        f"({type(exc).__name__}: {detail}); check that it is a complete {what} checkpoint"
    )
    if isinstance(exc, OSError):
        return CheckpointNotFoundError(message)
    return DamagedFileError(path, message)


def load_pretrained(
    config: Any,
    loaders: tuple[Callable[..., Any], ...],
    *,
    what: str,
    endpoint: str | None,
) -> tuple[Any, ...]:
    """Load the parts of a ``from_pretrained`` checkpoint (model, processor, tokenizer, ...).

    For plugins over transformers-style classes: each loader is a ``from_pretrained``
    called with the config's ``checkpoint``, ``revision`` and ``cache_dir``, through
    :func:`load_checkpoint`'s local-first policy.
    """

    def load(reference: str, local_only: bool) -> tuple[Any, ...]:
        kwargs = {
            "revision": config.revision,
            "cache_dir": config.cache_dir,
            "local_files_only": local_only,
        }
        return tuple(loader(reference, **kwargs) for loader in loaders)

    return load_checkpoint(
        config.checkpoint,
        load,
        what=what,
        endpoint=endpoint,
        local_files_only=config.local_files_only,
        cached_copy=lambda: hub_snapshot(config.checkpoint, config.cache_dir, config.revision),
    )


def save_pretrained(directory: Path, parts: tuple[Any, ...]) -> dict[str, Any]:
    """Write ``from_pretrained``-style parts (model, processor, tokenizer) to one folder.

    The counterpart of :func:`load_pretrained` for fine-tuned models: returns the
    encoder options that load the folder back (a local folder has no revision).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for part in parts:
        part.save_pretrained(directory)
    return {"checkpoint": str(directory), "revision": None}
