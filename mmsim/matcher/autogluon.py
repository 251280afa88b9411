"""AutoGluon's image-text similarity API on top of :class:`~mmsim.Matcher`.

Code written for ``autogluon.multimodal`` runs with its imports changed to ``mmsim``
(``mmsim.utils`` is this module under AutoGluon's name)::

    from mmsim import MultiModalPredictor
    from mmsim.utils import semantic_search

    predictor = MultiModalPredictor(problem_type="image_text_similarity")
    image_embeddings = predictor.extract_embedding(image_paths, as_tensor=True)
    hits = semantic_search(matcher=predictor, query_embeddings=..., response_embeddings=...)
    predictor = MultiModalPredictor(query="abc", response="xyz",
                                    problem_type="image_text_similarity")
    predictor.predict({"abc": [...], "xyz": [...]}), predictor.predict_proba(...)

Differences on purpose: ``predict`` does not call every pair with a positive cosine a
match, and ``predict_proba`` is not ``(cos + 1) / 2``; pass ``threshold="autogluon"``
to get AutoGluon's rule. The backbone defaults to OpenAI CLIP ViT-B/32 as in AutoGluon;
``MMSIM_ENCODER`` / ``MMSIM_CHECKPOINT`` change the default (e.g. to a local copy on a
machine without hub access), and ``encoder=`` / ``checkpoint=`` choose per call.

``download`` is the seed tutorial's helper: fetch a URL to a local file once, so the
tutorial runs with only its imports changed. It reuses mmsim's remote reader (retries,
timeout, fsspec URLs) and writes the file whole (temp + fsync + rename), so an
interrupted download never leaves a half file that a later call would take as cached.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

from mmsim.errors import ConfigError, positive_int
from mmsim.files import digest_file, write_atomic
from mmsim.inputs.remote import is_url, read_bytes
from mmsim.matcher.matcher import Matcher
from mmsim.retrieval.search import semantic_search

PROBLEM_TYPE = "image_text_similarity"
ENV_ENCODER = "MMSIM_ENCODER"
ENV_CHECKPOINT = "MMSIM_CHECKPOINT"
DOWNLOAD_MAX_BYTES = 2 * 2**30

__all__ = ["MultiModalPredictor", "download", "semantic_search"]


class MultiModalPredictor(Matcher):
    """A :class:`Matcher` constructed the way AutoGluon's predictor is."""

    problem_type = PROBLEM_TYPE  # the only one (also for predictors loaded from a spec)

    def __init__(
        self,
        problem_type: str = PROBLEM_TYPE,
        query: str | None = None,
        response: str | None = None,
        *,
        encoder: Any = None,
        checkpoint: str | None = None,
        **options: Any,
    ) -> None:
        if problem_type != PROBLEM_TYPE:
            raise ConfigError(
                f"mmsim's MultiModalPredictor does problem_type='{PROBLEM_TYPE}' only, "
                f"not {problem_type!r}"
            )
        if encoder is None:
            encoder = os.environ.get(ENV_ENCODER, "openai_clip")
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT) or None
        super().__init__(encoder, checkpoint, query, response, **options)


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
