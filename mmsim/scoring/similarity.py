"""Similarity strategies: how an image embedding and a text embedding become a score.

A strategy is bound to the matcher's towers before use, so that strategies that need
the model's own parameters (a logit scale and bias) can read them from the towers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F

from mmsim.errors import ConfigError
from mmsim.plugin.schemas import SimilarityConfig
from mmsim.plugin.towers import Tower, logit_params
from mmsim.scoring.schemas import LogitConfig


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

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        """The scores of unit vectors at these cosines: what an index, which keeps only
        cosines, needs to apply the matcher's threshold to its hits. This default scores
        2-D unit pairs at those angles, which is right for any strategy that depends on
        the two embeddings only through their directions; override it to be faster."""
        c = torch.as_tensor(np.clip(np.asarray(cosines, dtype=np.float64), -1.0, 1.0))
        a = torch.stack([torch.ones_like(c), torch.zeros_like(c)], dim=-1)
        b = torch.stack([c, torch.sqrt(1.0 - c * c)], dim=-1)
        return self.pairwise(a, b).double().numpy()


class CosineSimilarity(SimilarityStrategy):
    """Cosine similarity in [-1, 1]. Inputs need not be normalised."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1)

    def matrix(self, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return F.normalize(queries.float(), dim=-1) @ F.normalize(responses.float(), dim=-1).T

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return np.asarray(cosines, dtype=np.float64)


class DotProduct(SimilarityStrategy):
    """Plain dot product of the embeddings as given.

    mmsim's own embeddings are L2-normalised, so on them this equals cosine; it differs
    for embeddings supplied from elsewhere (e.g. to ``semantic_search``).
    """

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.float() * b.float()).sum(-1)

    def matrix(self, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return queries.float() @ responses.float().T

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return np.asarray(cosines, dtype=np.float64)  # unit vectors: the dot is the cosine


class ModelLogit(CosineSimilarity):
    """The model's own logit: ``logit_scale * cos + logit_bias`` (bias 0 for CLIP)."""

    config: LogitConfig

    def __init__(self, config: LogitConfig) -> None:
        super().__init__(config)
        self.scale, self.bias = config.scale, config.bias

    def bind(self, image: Tower | None, text: Tower | None) -> None:
        scale, bias = logit_params(image, text)
        self.scale = self.config.scale if self.config.scale is not None else scale
        self.bias = self.config.bias if self.config.bias is not None else (bias or 0.0)
        if self.scale is None:
            raise ConfigError(
                "similarity 'logit' needs a logit scale: these towers carry none, so set "
                "similarity.scale"
            )

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.scale * super().pairwise(a, b) + self.bias

    def matrix(self, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return self.scale * super().matrix(queries, responses) + self.bias

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(cosines, dtype=np.float64) + self.bias
