"""The offline demo, in one place: ``mmsim demo`` and the demo index ``mmsim serve`` uses.

- :mod:`~mmsim.demo.walkthrough`: the whole workflow on generated scenes (embed,
  search both ways, fit a threshold, predict pairs), printed and as a page;
- :mod:`~mmsim.demo.page`: the report and its HTML page (``page.css``);
- :mod:`~mmsim.demo.demo_index`: the index of generated scenes that ``mmsim serve``
  serves when no index is given.
"""

from mmsim.demo.page import DemoReport
from mmsim.demo.walkthrough import fit_threshold, format_report, run_demo

__all__ = ["DemoReport", "fit_threshold", "format_report", "run_demo"]
