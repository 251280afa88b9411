"""AutoGluon-style helpers: ``from mmsim.utils import download, semantic_search``.

``download`` is the seed tutorial's helper: fetch a URL to a local file once, so the
tutorial runs with only its imports changed. It reuses mmsim's remote reader (retries,
timeout, fsspec URLs) and writes the file whole (temp + fsync + rename), so an
interrupted download never leaves a half file that a later call would take as cached.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path

from mmsim.files import digest_file, write_atomic
from mmsim.search import semantic_search
from mmsim.sources import is_url, read_bytes
from mmsim.validation import positive_int

DOWNLOAD_MAX_BYTES = 2 * 2**30

__all__ = ["download", "semantic_search"]


def download(
    url: str,
    path: str | Path | None = None,
    overwrite: bool = False,
    sha1_hash: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
) -> str:
    """Download ``url`` to ``path`` and return the local file's path.

    ``path``: a file, or an existing folder to put the URL's file name in; default: the
    URL's file name in the current folder. An existing file is reused (no network) unless
    ``overwrite``, or unless ``sha1_hash`` is given and the file does not match it; a
    download that does not match ``sha1_hash`` is refused and nothing is written.
    """
    if not isinstance(url, str) or not is_url(url):
        raise ValueError(f"url must be a URL such as https://host/file.jpg; got {url!r}")
    positive_int("retries", retries)
    name = Path(urllib.parse.urlsplit(url.strip()).path).name or "download"
    target = Path(path).expanduser() if path is not None else Path(name)
    if target.is_dir():
        target = target / name
    if (
        target.is_file()
        and not overwrite
        and (sha1_hash is None or digest_file(target, "sha1") == sha1_hash.lower())
    ):
        return str(target)
    data = read_bytes(url, timeout=timeout, max_bytes=DOWNLOAD_MAX_BYTES, retries=retries - 1)
    if sha1_hash is not None:
        digest = hashlib.sha1(data).hexdigest()
        if digest != sha1_hash.lower():
            raise OSError(
                f"{url} downloaded with SHA-1 {digest}, not the expected {sha1_hash}; the file "
                f"was not written to {target}: check the hash or the URL"
            )
    return str(write_atomic(target, data))
