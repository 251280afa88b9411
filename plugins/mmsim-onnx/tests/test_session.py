"""The onnx encoder's sessions get the options its config and the runtime ask for
(mmsim_onnx.session), and refuse a runtime they would silently ignore."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from mmsim import Matcher
from mmsim.errors import ConfigError
from mmsim.plugin import Runtime, get_registry
from mmsim_openai_clip.plugin import DEMO_CHECKPOINT, ONNX_FOLDER

GRAPHS = f"{DEMO_CHECKPOINT}/{ONNX_FOLDER}"
SPINNING = "session.intra_op.allow_spinning"


def options_of(matcher: Matcher) -> list[ort.SessionOptions]:
    return [
        t.session.graph.get_session_options() for t in (matcher.image_tower, matcher.text_tower)
    ]


def test_sessions_take_the_configured_threads_and_full_graph_optimisation():
    matcher = Matcher(
        "onnx",
        checkpoint=GRAPHS,
        encoder_options={"intra_op_threads": 1, "inter_op_threads": 3},
        num_threads=2,  # the encoder's own option wins
        progress=False,
    )
    for options in options_of(matcher):
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 3)
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert options.get_session_config_entry(SPINNING) == "0"
    assert matcher.extract_embedding(["a red circle"]).shape == (1, matcher.embedding_dim)


def test_the_runtime_thread_count_reaches_the_sessions_of_onnx_and_the_demo():
    for matcher in (
        Matcher("onnx", checkpoint=GRAPHS, num_threads=1, progress=False),
        Matcher("demo", num_threads=1, progress=False),  # its default backend: the graphs
    ):
        assert [o.intra_op_num_threads for o in options_of(matcher)] == [1, 1]
        matcher.set_runtime(num_threads=2)  # sessions fix their threads: built again
        assert [o.intra_op_num_threads for o in options_of(matcher)] == [2, 2]
        assert matcher.spec.runtime.num_threads == 2
    # unset: onnxruntime's default pool (0 = one thread per core), spinning off all the same
    default = options_of(Matcher("demo", progress=False))
    assert [(o.intra_op_num_threads, o.get_session_config_entry(SPINNING)) for o in default] == [
        (0, "0"),
        (0, "0"),
    ]


def test_a_runtime_the_graphs_cannot_honour_is_refused():
    with pytest.raises(ConfigError, match=r"encoder onnx: runtime dtype='bfloat16'.*float32"):
        Matcher("onnx", checkpoint=GRAPHS, dtype="bfloat16")
    with pytest.raises(ConfigError, match=r"encoder demo: backend='onnx'.*dtype='bfloat16'"):
        Matcher("demo", encoder_options={"backend": "onnx"}, dtype="bfloat16")
    # a CUDA runtime (built directly: this machine has no CUDA for Runtime.create)
    cuda = Runtime("cuda", "float32")
    onnx, demo = (get_registry().get("encoder", name) for name in ("onnx", "demo"))
    with pytest.raises(ConfigError, match=r"device='cuda', but the sessions would run on"):
        onnx.factory(onnx.make_config({"checkpoint": GRAPHS}), cuda)
    with pytest.raises(ConfigError, match=r"encoder demo: backend='onnx'.*device='cuda'"):
        demo.factory(demo.make_config({"backend": "onnx"}), cuda)
