"""The Matcher, the public face of mmsim, and its AutoGluon-compatible form.

- :mod:`~mmsim.matcher.matcher`: :class:`Matcher` (embed, search, match, calibrate,
  fit, evaluate, classify, save / load, export), a thin facade over a spec's assembly;
- :mod:`~mmsim.matcher.autogluon`: ``MultiModalPredictor``, ``download`` and
  ``semantic_search`` under AutoGluon's names (``mmsim.utils`` is this module).
"""

from mmsim.matcher.matcher import Matcher
from mmsim.scoring.pairs import SkippedPairsWarning

__all__ = ["Matcher", "SkippedPairsWarning"]
