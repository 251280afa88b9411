"""Ranking: semantic search over embeddings, retrieval evaluation, zero-shot classification.

- :mod:`~mmsim.retrieval.search`: bounded-memory top-k with deterministic ties;
- :mod:`~mmsim.retrieval.evaluation`: recall@k, hit rate, MRR, nDCG, mAP from judgements;
- :mod:`~mmsim.retrieval.zeroshot`: class names and prompt templates as a classifier.
"""
