"""The ``wheels`` mark: tests that build the workspace's wheels and install them with pip
into a new virtual environment (a minute or more, and downloads from PyPI where a
package is not in pip's cache): ``pytest -m "not wheels"`` leaves them out."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wheels: builds the wheels and installs them with pip into a new environment"
    )
