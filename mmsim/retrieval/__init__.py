"""Ranking: semantic search over embeddings, retrieval evaluation, zero-shot classification.

- :mod:`~mmsim.retrieval.search`: bounded-memory top-k with deterministic ties;
- :mod:`~mmsim.retrieval.evaluation`: recall@k, hit rate, MRR, nDCG, mAP from judgements;
- :mod:`~mmsim.retrieval.zeroshot`: class names and prompt templates as a classifier;
- :mod:`~mmsim.retrieval.query`: what a user asks an index for: :class:`Query` (positive
  and negative parts, each a text, an image, an embedding or an indexed item, with
  weights) and how the parts' embeddings combine into one vector;
- :mod:`~mmsim.retrieval.keywords`: user text -> a safe SQLite FTS5 ``MATCH`` expression;
- :mod:`~mmsim.retrieval.fusion`: reciprocal rank fusion of several rankings;
- :mod:`~mmsim.retrieval.options`: the checked options of one search (mode, cutoffs,
  paging, sort).

None of these touches a model or an index: :mod:`mmsim.index.querying` runs a query.
"""
