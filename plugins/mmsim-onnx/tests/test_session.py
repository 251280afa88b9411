"""The onnx encoder's sessions get the options its config asks for (mmsim_onnx.session)."""

from __future__ import annotations

import onnxruntime as ort

from mmsim import Matcher
from mmsim_openai_clip.plugin import DEMO_CHECKPOINT, ONNX_FOLDER


def test_sessions_take_the_configured_threads_and_full_graph_optimisation():
    matcher = Matcher(
        "onnx",
        checkpoint=f"{DEMO_CHECKPOINT}/{ONNX_FOLDER}",
        encoder_options={"intra_op_threads": 1, "inter_op_threads": 3},
        progress=False,
    )
    for tower in (matcher.image_tower, matcher.text_tower):
        options = tower.session.graph.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 3)
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert matcher.extract_embedding(["a red circle"]).shape == (1, matcher.embedding_dim)
