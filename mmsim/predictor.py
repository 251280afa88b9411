"""``MultiModalPredictor``: AutoGluon's image-text similarity API on top of :class:`Matcher`.

Code written for ``autogluon.multimodal`` runs with its imports changed to ``mmsim``::

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
"""

from __future__ import annotations

import os
from typing import Any

from mmsim.errors import ConfigError
from mmsim.matcher import Matcher

PROBLEM_TYPE = "image_text_similarity"
ENV_ENCODER = "MMSIM_ENCODER"
ENV_CHECKPOINT = "MMSIM_CHECKPOINT"


class MultiModalPredictor(Matcher):
    """A :class:`Matcher` constructed the way AutoGluon's predictor is."""

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
        self.problem_type = problem_type
        super().__init__(encoder, checkpoint, query, response, **options)
