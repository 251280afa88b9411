"""What mmsim accepts and how it reads it, before any model is involved.

- :mod:`~mmsim.inputs.detect`: the modality of each item (image or text) and how a
  container (a list, an array, a dict or DataFrame of columns) becomes a list of items;
- :mod:`~mmsim.inputs.images`: one image item (path, URL, bytes, PIL image, array) as
  the upright RGB image a tower preprocesses;
- :mod:`~mmsim.inputs.remote`: http(s) and fsspec URLs, with timeouts, retries, a cap;
- :mod:`~mmsim.inputs.identity`: when two items are the same item;
- :mod:`~mmsim.inputs.folders`: the one folder scanner;
- :mod:`~mmsim.inputs.tables`: the one table reader (CSV, Parquet, lines);
- :mod:`~mmsim.inputs.pairs`: image-caption pairs for fine-tuning, from any of those.

Nothing here imports torch: reading and checking inputs stays cheap.
"""


def __getattr__(name: str) -> object:
    """Names of the module this package replaced, for one release (with a warning)."""
    from mmsim._deprecated import moved_name

    return moved_name(__name__, name)
