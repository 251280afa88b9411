"""What a Matcher is made of: its typed, immutable spec, the file that stores it, and
the towers and strategies built from it.

- :mod:`~mmsim.spec.matcher_spec`: :class:`MatcherSpec` (encoders, strategies, the
  fitted threshold state, columns, runtime), validated against the registry's schemas;
- :mod:`~mmsim.spec.document`: ``matcher.json``, read and written from a spec, with
  paths that survive moving the folder;
- :mod:`~mmsim.spec.assembly`: :class:`~mmsim.spec.assembly.Assembly`, the live
  towers and bound strategies of a spec (the only place a spec becomes objects).
"""

from mmsim.spec.matcher_spec import Columns, ComponentSpec, MatcherSpec, RuntimeSpec

__all__ = ["Columns", "ComponentSpec", "MatcherSpec", "RuntimeSpec"]
