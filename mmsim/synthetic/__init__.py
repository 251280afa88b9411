"""Synthetic captioned images: scenes of coloured shapes, for demos, training and tests.

Each scene holds one or two shapes and its caption says what they are and where ("a
small red circle on the left", "a red circle left of a blue square"). What a scene
shows is sampled in :mod:`~mmsim.synthetic.world` (continuous positions, sizes,
rotations; held-out colour-shape combinations for validation and test), and drawn by
one of two renderers that share no code: :mod:`~mmsim.synthetic.training_renderer`
(varied Pillow drawing, what models train on) and
:mod:`~mmsim.synthetic.independent_renderer` (a numpy rasteriser, for evaluation).
Everything is deterministic per seed.
"""

from mmsim.synthetic.dataset import (
    RENDERERS,
    Renderer,
    Scene,
    generate,
    labelled_pairs,
    write_dataset,
)
from mmsim.synthetic.world import (
    COLOURS,
    HELD_OUT,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    SPLITS,
    VALIDATION_HELD_OUT,
    VOCABULARY,
    Layout,
    Shape,
    Split,
    prompt_templates,
    without_colours,
)

__all__ = [
    "COLOURS",
    "HELD_OUT",
    "POSITIONS",
    "RELATIONS",
    "RENDERERS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "VALIDATION_HELD_OUT",
    "VOCABULARY",
    "Layout",
    "Renderer",
    "Scene",
    "Shape",
    "Split",
    "generate",
    "labelled_pairs",
    "prompt_templates",
    "without_colours",
    "write_dataset",
]
