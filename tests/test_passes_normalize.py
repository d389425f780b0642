"""Normalize (Constant/Identity weights), FoldBatchNorm, Cleanup, and composing pipelines."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_matches
from onnx import helper

import memcc
from memcc.compiler import compile_with_report
from memcc.passes import (
    CompileContext, CompileOptions, FoldBatchNorm, MapWeights, Normalize, Pass, Pipeline,
    RewriteGemm, default_passes,
)
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
