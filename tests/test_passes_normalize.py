"""Normalize (Constant/Identity weights, folded constant weight sub-graphs), FoldBatchNorm, Cleanup, and composing pipelines."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_close, assert_matches, library_available, run_library, run_reference
from onnx import helper

import memcc
from memcc.compiler import compile_with_report
from memcc.passes import (
    CompileContext, CompileOptions, FoldBatchNorm, MapWeights, Normalize, Pass, Pipeline,
    RewriteGemm, default_passes,
)
from memcc.passes.normalize import unfolded_weight_reason
from models import (
    batchnorm_gemm_model, constant_weights_model, init, make_model, old_opset_model,
    randn, rng, vinfo,
)


def op_types(model):
    return [n.op_type for n in model.graph.node]


def test_constant_node_weights():
    model, feeds = constant_weights_model()
    mem, report = compile_with_report(model)
    assert len(report.mapped) == 2
    types = op_types(mem)
    assert types.count("MemristiveMatMul") == 2
    assert "Identity" not in types
    # the bias Constant of the Add (read by no layer) is left as it was
    assert types.count("Constant") == 1
    assert_matches(mem, model, feeds)


def test_normalize_alone_keeps_semantics():
    model, feeds = constant_weights_model()
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize().run(ctx)
    onnx.checker.check_model(ctx.model)
    assert ctx.value_info["h"][1] == (4, 5)
    assert_matches(ctx.model, model, feeds, library=False)


@pytest.mark.parametrize("opset", [7, 9, 13, 15])
def test_fold_batchnorm_conv_opsets(opset):
    model, feeds = old_opset_model(opset)
    mem, report = compile_with_report(model)
    assert "BatchNormalization" not in op_types(mem)
    # The Relu after the conv is fused into its node (FuseActivation).
    assert op_types(mem) == ["MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    onnx.checker.check_model(mem)
    assert_matches(mem, model, feeds)


def test_fold_batchnorm_gemm():
    model, feeds = batchnorm_gemm_model()
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul"]
    assert_matches(mem, model, feeds)


def test_batchnorm_not_folded_when_conv_output_shared():
    g = rng(8)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Add", ["bn", "c"], ["y"]),
    ]
    inits = [init(randn(g, 2, 2, 1, 1), "W")] + [
        init(g.uniform(0.5, 1.5, 2).astype(np.float32), n) for n in "sbmv"
    ]
    model = make_model(nodes, [vinfo("x", [1, 2, 3, 3])], [vinfo("y", 4)], inits)
    mem, report = compile_with_report(model)
    assert op_types(mem) == ["MemristiveMatMul", "BatchNormalization", "Add"]
    assert any("other readers" in n for n in report.notes)
    assert_matches(mem, model, {"x": randn(g, 1, 2, 3, 3)})


def test_fold_batchnorm_alone():
    model, feeds = old_opset_model(13)
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    FoldBatchNorm().run(ctx)
    assert "BatchNormalization" not in op_types(ctx.model)
    assert_matches(ctx.model, model, feeds, library=False)


def test_custom_pipeline_and_custom_pass():
    """A user pipeline: only Gemm layers, plus a pass of their own that records what it saw."""
    model, feeds = old_opset_model(13)
    seen = []

    class CountLayers(Pass):
        name = "count_layers"

        def run(self, ctx):
            seen.append(len(ctx.layers))

    pipe = Pipeline(default_passes()).remove("rewrite_conv").insert_after("map_weights", CountLayers())
    assert "count_layers" in pipe.names()
    mem, report = compile_with_report(model, passes=pipe)
    assert seen == [1]
    assert op_types(mem).count("Conv") == 1 and op_types(mem).count("MemristiveMatMul") == 1
    assert report.passes == pipe.names()
    assert_matches(mem, model, feeds)


def test_pipeline_with_function_pass_and_bad_items():
    model, feeds = batchnorm_gemm_model()
    calls = []
    passes = default_passes()
    passes.insert(0, lambda ctx: calls.append(ctx.options.seed))
    memcc.compile(model, passes=passes, seed=7)
    assert calls == [7]
    with pytest.raises(memcc.ConfigError):
        memcc.compile(model, passes=[object()])
    with pytest.raises(memcc.ConfigError):
        memcc.compile(model, passes=RewriteGemm())


def test_map_weights_only_maps_once():
    model, feeds = batchnorm_gemm_model()
    passes = default_passes()
    passes.insert(6, MapWeights())  # twice in a row: the second has nothing left to do
    mem = memcc.compile(model, passes=passes)
    assert_matches(mem, model, feeds)


def test_unused_initializers_removed_but_preexisting_kept():
    g = rng(9)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    model = make_model(nodes, [vinfo("x", [2, 3])], [vinfo("y", [2, 4])],
                       [init(randn(g, 3, 4), "W"), init(randn(g, 5), "unused")])
    mem = memcc.compile(model)
    assert sorted(t.name for t in mem.graph.initializer) == ["mm.G", "unused"]


def test_context_options_validated():
    with pytest.raises(memcc.ConfigError, match="scheme"):
        CompileContext(onnx.ModelProto(), CompileOptions(scheme="quad"))


# ---- constant weight sub-graphs ------------------------------------------------------------


def _assert_matches_unoptimized(compiled, original, feeds):
    """Like `assert_matches`, against onnxruntime without graph optimizations: with them it
    rewrites DequantizeLinear → MatMul/Gemm into integer kernels that quantize the activations
    too, or moves a Transpose across a per-axis DequantizeLinear, and no longer computes the
    model's float result."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(original.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    results = [("reference evaluator", run_reference(compiled, feeds))]
    if library_available():
        results.append(("op library", run_library(compiled, feeds)))
    for what, got in results:
        for i, w in enumerate(want):
            assert_close(got[i], w, what=f"{what}, output {i}")


def _transpose_weight_model(*, weight_is_output=False, opset=17):
    """MatMul(x, Transpose(W)) as PyTorch exports a Linear without constant folding."""
    g = rng(11)
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"], name="t", perm=[1, 0]),
        helper.make_node("MatMul", ["x", "Wt"], ["y"], name="mm"),
    ]
    outputs = [vinfo("y", [3, 4])] + ([vinfo("Wt", [6, 4])] if weight_is_output else [])
    model = make_model(nodes, [vinfo("x", [3, 6])], outputs, [init(randn(g, 4, 6), "W")], opset=opset)
    return model, {"x": randn(g, 3, 6)}


@pytest.mark.parametrize("opset", [9, 17])
def test_transpose_of_initializer_weight_is_folded(opset):
    model, feeds = _transpose_weight_model(opset=opset)
    mem, report = compile_with_report(model)
    assert [m.source for m in report.mapped] == ["mm"]
    assert not report.skipped and not report.notes
    assert op_types(mem) == ["MemristiveMatMul"]
    # the original weight is read by nothing any more and is not kept next to the folded one
    assert sorted(t.name for t in mem.graph.initializer) == ["mm.G"]
    assert_matches(mem, model, feeds)


def test_dequantize_linear_weight_chain_is_folded():
    """int8 weight → DequantizeLinear (per column) → Reshape (shape from a Constant) → Gemm."""
    g = rng(12)
    Wq = g.integers(-127, 128, size=(30,)).astype(np.int8)
    scale = np.float32(0.02)
    zp = np.int8(-2)
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "scale", "zp"], ["Wf"], name="dq"),
        helper.make_node("Constant", [], ["shape"], value=init(np.array([6, 5], np.int64), "shape")),
        helper.make_node("Reshape", ["Wf", "shape"], ["W"], name="reshape"),
        helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm"),
    ]
    model = make_model(nodes, [vinfo("x", [4, 6])], [vinfo("y", [4, 5])],
                       [init(Wq, "Wq"), init(scale, "scale"), init(zp, "zp")], opset=13)
    mem, report = compile_with_report(model)
    assert [m.source for m in report.mapped] == ["gemm"] and not report.skipped and not report.notes
    assert op_types(mem) == ["MemristiveMatMul"]
    _assert_matches_unoptimized(mem, model, {"x": randn(g, 4, 6)})


def test_dequantize_linear_per_axis_weight_is_folded():
    g = rng(16)
    Wq = g.integers(-127, 128, size=(6, 5)).astype(np.int8)
    scale = g.uniform(0.01, 0.03, 5).astype(np.float32)
    zp = g.integers(-3, 4, size=5).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "scale", "zp"], ["W"], name="dq", axis=1),
        helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"),
    ]
    model = make_model(nodes, [vinfo("x", [4, 6])], [vinfo("y", [4, 5])],
                       [init(Wq, "Wq"), init(scale, "scale"), init(zp, "zp")], opset=13)
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize().run(ctx)
    assert op_types(ctx.model) == ["MatMul"]
    W = ctx.constant("W")
    np.testing.assert_array_equal(W, (Wq.astype(np.float32) - zp) * scale)
    mem = memcc.compile(model)
    _assert_matches_unoptimized(mem, model, {"x": randn(g, 4, 6)})


def test_arithmetic_cast_and_unsqueeze_chain_is_folded_at_old_opset():
    """Squeeze/Unsqueeze take `axes` as an attribute before opset 13: evaluated at the model's opset."""
    g = rng(13)
    nodes = [
        helper.make_node("Cast", ["W16"], ["W32"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", ["W32", "s"], ["Ws"]),
        helper.make_node("Sub", ["Ws", "off"], ["Wo"]),
        helper.make_node("Unsqueeze", ["Wo"], ["Wu"], axes=[0]),
        helper.make_node("Squeeze", ["Wu"], ["W"], axes=[0]),
        helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"),
    ]
    inits = [init(randn(g, 5, 3).astype(np.float16), "W16"), init(np.float32(0.5), "s"),
             init(randn(g, 3), "off")]
    model = make_model(nodes, [vinfo("x", [2, 5])], [vinfo("y", [2, 3])], inits, opset=11)
    mem, report = compile_with_report(model)
    assert op_types(mem) == ["MemristiveMatMul"] and not report.notes
    assert_matches(mem, model, {"x": randn(g, 2, 5)})


def test_split_of_a_packed_weight_is_folded():
    g = rng(14)
    nodes = [
        helper.make_node("Split", ["W"], ["Wa", "Wb"], axis=1),
        helper.make_node("MatMul", ["x", "Wa"], ["ya"], name="a"),
        helper.make_node("MatMul", ["x", "Wb"], ["yb"], name="b"),
        helper.make_node("Add", ["ya", "yb"], ["y"]),
    ]
    model = make_model(nodes, [vinfo("x", [2, 4])], [vinfo("y", [2, 3])], [init(randn(g, 4, 6), "W")])
    mem, report = compile_with_report(model)
    assert [m.source for m in report.mapped] == ["a", "b"]
    assert_matches(mem, model, {"x": randn(g, 2, 4)})


def test_identities_around_a_folded_weight():
    """W → Identity → Transpose → Identity → MatMul: the Identities are aliases, not copies."""
    g = rng(17)
    nodes = [
        helper.make_node("Identity", ["W"], ["W_id"]),
        helper.make_node("Transpose", ["W_id"], ["Wt"], perm=[1, 0]),
        helper.make_node("Identity", ["Wt"], ["Wt_id"]),
        helper.make_node("MatMul", ["x", "Wt_id"], ["y"], name="mm"),
    ]
    model = make_model(nodes, [vinfo("x", [3, 6])], [vinfo("y", [3, 4])], [init(randn(g, 4, 6), "W")])
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize().run(ctx)
    assert op_types(ctx.model) == ["MatMul"]
    assert sorted(t.name for t in ctx.model.graph.initializer) == ["W", "Wt"]
    mem, report = compile_with_report(model)
    assert op_types(mem) == ["MemristiveMatMul"] and not report.notes
    assert_matches(mem, model, {"x": randn(g, 3, 6)})


def test_identity_of_a_weight_is_not_read_into_an_array(monkeypatch):
    """Identity(W) → MatMul, as PyTorch exports tied or shared weights: the Identity only renames
    W, so Normalize reads no weight (they can be large); a folded node behind it still can."""
    from memcc.passes import normalize

    read = []
    value = normalize._ConstantSources.value
    monkeypatch.setattr(normalize._ConstantSources, "value",
                        lambda self, name: read.append(name) or value(self, name))
    g = rng(19)
    nodes = [
        helper.make_node("Identity", ["W"], ["W_id"]),
        helper.make_node("Identity", ["W_id"], ["W_id2"]),
        helper.make_node("MatMul", ["x", "W_id2"], ["h"], name="mm"),
        helper.make_node("Transpose", ["W_id"], ["Wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["h", "Wt"], ["y"], name="back"),
    ]
    model = make_model(nodes, [vinfo("x", [3, 6])], [vinfo("y", [3, 6])], [init(randn(g, 6, 4), "W")])
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize(infer_shapes=False).run(ctx)
    assert read == ["W_id"]  # for the Transpose only
    assert op_types(ctx.model) == ["MatMul", "MatMul"]
    assert [n.input[1] for n in ctx.model.graph.node] == ["W", "Wt"]
    mem, report = compile_with_report(model)
    assert [m.source for m in report.mapped] == ["mm", "back"]
    assert_matches(mem, model, {"x": randn(g, 3, 6)})


def test_skip_reasons_classify_the_graph_once_per_pass(monkeypatch):
    """Every skipped MatMul asks where its second input comes from; on a transformer asking the
    graph each time would cost nodes x layers, so the answer is worked out once per pass."""
    from memcc.passes import normalize

    built = []
    init_origins = normalize._WeightOrigins.__init__
    monkeypatch.setattr(normalize._WeightOrigins, "__init__",
                        lambda self, ctx: built.append(1) or init_origins(self, ctx))
    g = rng(20)
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1])]
    for i in range(6):
        nodes.append(helper.make_node("MatMul", ["q", "kt"], [f"s{i}"], name=f"qk{i}"))
        nodes.append(helper.make_node("MatMul", [f"s{i}", "W"], [f"y{i}"], name=f"proj{i}"))
    model = make_model(nodes, [vinfo("q", [2, 3, 4]), vinfo("k", [2, 3, 4])],
                       [vinfo(f"y{i}", [2, 3, 5]) for i in range(6)], [init(randn(g, 3, 5), "W")])
    mem, report = compile_with_report(model)
    assert [s.reason for s in report.skipped] == ["both inputs are activations (attention)"] * 6
    assert len(built) == 1


def test_skip_reasons_follow_graph_changes():
    """What a pass learnt about the graph is dropped once the nodes may have changed: between the
    passes of a pipeline, and when a rewrite pass runs on its own."""
    from memcc.passes import RewriteMatMul

    def feed_from_input(ctx):  # the Transpose now reads a graph input: Wt is an activation
        ctx.graph.input.append(vinfo("V", [4, 6]))
        ctx.graph.node[0].input[0] = "V"

    model, _ = _transpose_weight_model(weight_is_output=True)
    unfolded = "weight computed by Transpose from constants; not folded"
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize(infer_shapes=False).run(ctx)
    seen = []
    Pipeline([lambda c: seen.append(unfolded_weight_reason(c, "Wt")), feed_from_input,
              lambda c: seen.append(unfolded_weight_reason(c, "Wt"))]).run(ctx)
    assert seen == [unfolded, ""]

    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize(infer_shapes=False).run(ctx)
    assert unfolded_weight_reason(ctx, "Wt") == unfolded
    feed_from_input(ctx)
    RewriteMatMul().run(ctx)
    assert [s.reason for s in ctx.report.skipped] == ["both inputs are activations (attention)"]


def test_constant_expression_on_the_activation_side_is_left_alone():
    """Div(c1, c2) scales the activations, not a weight: nothing asks for it to be folded."""
    g = rng(18)
    nodes = [
        helper.make_node("Div", ["c1", "c2"], ["c"], name="div"),
        helper.make_node("Mul", ["x", "c"], ["xs"]),
        helper.make_node("MatMul", ["xs", "W"], ["y"], name="mm"),
    ]
    inits = [init(np.float32(3.0), "c1"), init(np.float32(2.0), "c2"), init(randn(g, 4, 2), "W")]
    model = make_model(nodes, [vinfo("x", [3, 4])], [vinfo("y", [3, 2])], inits)
    mem, report = compile_with_report(model)
    assert op_types(mem) == ["Div", "Mul", "MemristiveMatMul"]
    assert_matches(mem, model, {"x": randn(g, 3, 4)})


def test_normalize_alone_folds_and_keeps_semantics():
    model, feeds = _transpose_weight_model()
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize().run(ctx)
    onnx.checker.check_model(ctx.model)
    assert op_types(ctx.model) == ["MatMul"]
    assert ctx.value_info["Wt"] == (onnx.TensorProto.FLOAT, (6, 4))
    assert_matches(ctx.model, model, feeds, library=False)


def test_graph_input_through_transpose_stays_attention():
    """Q·Kᵀ: the Transpose reads a graph input, so nothing is folded and the reason stays."""
    g = rng(15)
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
        helper.make_node("MatMul", ["s", "W"], ["y"], name="proj"),
    ]
    model = make_model(nodes, [vinfo("q", [2, 3, 4]), vinfo("k", [2, 3, 4])], [vinfo("y", [2, 3, 5])],
                       [init(randn(g, 3, 5), "W")])
    mem, report = compile_with_report(model)
    assert "Transpose" in op_types(mem)
    assert [(s.node, s.reason) for s in report.skipped] == [("qk", "both inputs are activations (attention)")]
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    assert unfolded_weight_reason(ctx, "kt") == ""
    assert_matches(mem, model, {"q": randn(g, 2, 3, 4), "k": randn(g, 2, 3, 4)})


def test_overridable_initializer_is_not_folded():
    """An initializer that is also a graph input is a default the caller may replace."""
    model, feeds = _transpose_weight_model()
    model.graph.input.append(vinfo("W", [4, 6]))
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize(infer_shapes=False).run(ctx)
    assert op_types(ctx.model) == ["Transpose", "MatMul"]
    assert unfolded_weight_reason(ctx, "Wt") == ""


def test_unfolded_constant_weight_is_reported_as_such():
    """A Transpose(W) that is also a graph output is kept; the report says it was not folded."""
    model, feeds = _transpose_weight_model(weight_is_output=True)
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize().run(ctx)
    assert op_types(ctx.model) == ["Transpose", "MatMul"]
    assert any("'t'" in n and "graph output" in n for n in ctx.report.notes)
    assert unfolded_weight_reason(ctx, "Wt") == "weight computed by Transpose from constants; not folded"


def test_unfolded_constant_weight_skip_reason():
    model, feeds = _transpose_weight_model(weight_is_output=True)
    with pytest.raises(memcc.errors.NothingToMapError, match="weight computed by Transpose"):
        compile_with_report(model)


def test_large_expansion_is_not_folded():
    nodes = [
        helper.make_node("Expand", ["one", "shape"], ["W"], name="expand"),
        helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"),
    ]
    model = make_model(nodes, [vinfo("x", [2, 2048])], [vinfo("y", [2, 1024])],
                       [init(np.ones((1, 1), np.float32), "one"), init(np.array([2048, 1024], np.int64), "shape")])
    ctx = CompileContext(onnx.ModelProto.FromString(model.SerializeToString()))
    Normalize(infer_shapes=False).run(ctx)
    assert op_types(ctx.model) == ["Expand", "MatMul"]
    assert any("'expand'" in n and "elements" in n for n in ctx.report.notes)


def test_torch_transformer_without_exporter_constant_folding(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import models

    export = models.export_torch
    monkeypatch.setattr(models, "export_torch",
                        lambda *a, **k: export(*a, do_constant_folding=False, **k))
    path, feeds = models.torch_transformer(tmp_path)
    model = onnx.load(str(path))
    assert sum(n.op_type == "Transpose" and n.input[0].endswith(".weight") for n in model.graph.node) == 6
    mem, report = compile_with_report(model)
    assert len(report.mapped) == 6
    assert [s.reason for s in report.skipped] == ["both inputs are activations (attention)"] * 2
    assert_matches(mem, model, feeds)
