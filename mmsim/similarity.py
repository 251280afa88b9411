"""Similarity strategies: how an image embedding and a text embedding become a score.

A strategy is bound to the matcher's towers before use, so that strategies that need
the model's own parameters (a logit scale and bias) can read them from the towers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmsim.schemas import SimilarityConfig
from mmsim.towers import Tower


class SimilarityStrategy(ABC):
    """Scores aligned pairs (:meth:`pairwise`) and query x corpus blocks (:meth:`matrix`)."""

    def __init__(self, config: SimilarityConfig) -> None:
        self.config = config

    def bind(self, image: Tower | None, text: Tower | None) -> None:  # noqa: B027
        """Read what the strategy needs from the towers; most strategies need nothing."""

    @abstractmethod
    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scores of rows ``a[i]`` against ``b[i]``: shape (N,)."""

    @abstractmethod
    def matrix(self, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """Scores of every query against every response: shape (Q, R)."""


@dataclass
class CosineConfig(SimilarityConfig):
    name: str = "cosine"


class CosineSimilarity(SimilarityStrategy):
    """Cosine similarity in [-1, 1]. Inputs need not be normalised."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1)

    def matrix(self, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return F.normalize(queries.float(), dim=-1) @ F.normalize(responses.float(), dim=-1).T
