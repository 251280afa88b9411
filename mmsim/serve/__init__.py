"""An HTTP search service and web page over an index (``mmsim serve``).

Needs the ``serve`` extra (``pip install 'mmsim[serve]'``: FastAPI, uvicorn,
python-multipart). Mount it in your own ASGI app with :func:`create_app`::

    from mmsim.serve import create_app
    app = create_app("idx/")
"""

from __future__ import annotations

from mmsim.serve.app import create_app
from mmsim.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
