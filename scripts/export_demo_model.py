"""Export the ``demo`` encoder's towers to ONNX, into the package beside its weights.

    uv run python scripts/export_demo_model.py

The graphs are what ``encoder=demo`` runs where the ``onnx`` plugin is installed (no
torch or transformers to import: a one-shot search starts in about a second). They
are exported from the shipped weights with ``mmsim export`` and its self-check, and
written to ``demo_model/onnx/``: the two graphs, the tokenizer and a manifest whose
source names the ``demo`` encoder rather than this machine's paths. Run it again
whenever the demo model is retrained: the tests compare the committed graphs with the
weights on torch (``plugins/mmsim-openai-clip/tests/test_demo_backends.py``) and with
an export made from them during the run (``plugins/mmsim-onnx/tests/test_export.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mmsim import Matcher
from mmsim_onnx.manifest import FILE, write_manifest
from mmsim_openai_clip.plugin import DEMO_CHECKPOINT, ONNX_FOLDER

KEEP = ("image.onnx", "text.onnx", "tokenizer.json")


def main() -> None:
    target = Path(DEMO_CHECKPOINT) / ONNX_FOLDER
    with tempfile.TemporaryDirectory(prefix="mmsim-demo-export-") as tmp:
        exported = Matcher("demo", progress=False).export_onnx(Path(tmp) / "export")
        staged = Path(tmp) / ONNX_FOLDER
        staged.mkdir()
        for name in KEEP:
            shutil.copy2(exported / name, staged / name)
        document = json.loads((exported / FILE).read_text(encoding="utf-8"))
        for key in ("format", "version", "files"):
            document.pop(key)
        source = document["source"]
        for side in ("image", "text"):
            source[f"{side}_encoder"] = {"name": "demo"}
            source[f"{side}_tower"] = "openai_clip:demo"
        write_manifest(staged, document)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(staged, target)
    print(f"wrote {target}: {', '.join(sorted(p.name for p in target.iterdir()))}")


if __name__ == "__main__":
    main()
