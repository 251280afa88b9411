"""Thresholding strategies: how a similarity score becomes a decision and a probability.

There is no universal threshold for CLIP-style scores (it depends on the model and on
the kind of query), so a strategy is a component that can be swapped by config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mmsim.schemas import ThresholdConfig
from mmsim.towers import Tower, logit_params


class ThresholdStrategy(ABC):
    """Maps scores to P(match) (:meth:`proba`) and to 0/1 decisions (:meth:`decide`)."""

    def __init__(self, config: ThresholdConfig) -> None:
        self.config = config

    def bind(self, image: Tower | None, text: Tower | None) -> None:  # noqa: B027
        """Read what the strategy needs from the towers; most strategies need nothing."""

    @abstractmethod
    def proba(self, scores: np.ndarray) -> np.ndarray:
        """P(match) for each score, shape (N,)."""

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """1 where a pair is judged a match; by default P(match) >= 0.5."""
        return (self.proba(scores) >= 0.5).astype(np.int64)


@dataclass
class FixedThresholdConfig(ThresholdConfig):
    """``value`` is the score at which a pair counts as a match.

    ``sharpness`` is the slope of the logistic that turns the distance from the
    threshold into a probability; left unset, it is the model's own logit scale (CLIP's
    is 100), or 100 for towers without one. The probability is not calibrated: fit a
    calibrated strategy on labelled pairs for that.
    """

    name: str = "fixed"
    value: float = 0.25
    sharpness: float | None = None


_DEFAULT_SHARPNESS = 100.0


class FixedThreshold(ThresholdStrategy):
    """A pair matches when its score is at least ``value``."""

    config: FixedThresholdConfig

    def __init__(self, config: FixedThresholdConfig) -> None:
        super().__init__(config)
        self.sharpness = config.sharpness or _DEFAULT_SHARPNESS

    def bind(self, image: Tower | None, text: Tower | None) -> None:
        if self.config.sharpness is None:
            scale, _ = logit_params(image, text)
            self.sharpness = scale or _DEFAULT_SHARPNESS

    def proba(self, scores: np.ndarray) -> np.ndarray:
        z = self.sharpness * (np.asarray(scores, dtype=np.float64) - self.config.value)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores) >= self.config.value).astype(np.int64)
