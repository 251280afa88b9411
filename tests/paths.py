"""Where the tests find the repository and the third-party test plugin."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTSIDE_PLUGIN_DIR = REPO / "tests" / "plugin" / "outside_plugin"
