"""``python -m mmsim``: the same as the ``mmsim`` command."""

from mmsim.cli import main

main()
