"""Turning items into embeddings: the one pipeline every caller goes through.

- :mod:`~mmsim.embedding.batch`: items detected once (:class:`~.batch.ItemBatch`);
- :mod:`~mmsim.embedding.pipeline`: load and encode in one pass (:func:`~.pipeline.embed`);
- :mod:`~mmsim.embedding.loader`: image batches decoded ahead in a loader thread;
- :mod:`~mmsim.embedding.texts`: texts tokenised once in length-sorted batches;
- :mod:`~mmsim.embedding.encoding`: around each ``encode``: inference mode where torch
  is loaded, outputs as numpy, unit rows;
- :mod:`~mmsim.embedding.results`: :class:`~.results.EmbeddingResult`,
  :class:`~.results.SkippedItem` and the :class:`~.results.ErrorPolicy` (raise or skip).
"""


def __getattr__(name: str) -> object:
    """Names of the module this package replaced, for one release (with a warning)."""
    from mmsim._deprecated import moved_name

    return moved_name(__name__, name)
