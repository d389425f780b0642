"""RewriteMatMul and RewriteConv."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches
from onnx import helper

import memcc
from memcc.compiler import compile_with_report
from models import conv_model, init, make_model, randn, rng, vinfo


def op_types(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("x_shape", [[6], [3, 6], [2, 3, 6], [2, 1, 3, 6]])
def test_matmul_nd_activations(x_shape):
    g = rng(0)
    node = helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")
    out = x_shape[:-1] + [4]
    model = make_model([node], [vinfo("x", x_shape)], [vinfo("y", out)], [init(randn(g, 6, 4), "W")])
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul"]
    assert_matches(mem, model, {"x": randn(g, *x_shape)})


@pytest.mark.parametrize(
    "w_shape,a_const,reason",
    [
        ([6], False, "1-D"),
        ([6], True, "first input"),
        ([2, 6, 4], False, "batched"),
        ([3, 6], True, "first input"),
    ],
)
def test_matmul_skips(w_shape, a_const, reason):
    g = rng(1)
    inputs = ["W", "x"] if a_const else ["x", "W"]
    node = helper.make_node("MatMul", inputs, ["y"], name="mm")
    x_shape = [6, 2] if a_const else [3, 6]
    model = make_model([node], [vinfo("x", x_shape)], [vinfo("y", 2 if len(w_shape) < 3 else 3)],
                       [init(randn(g, *w_shape), "W")])
    with pytest.raises(memcc.NothingToMapError, match=reason):
        memcc.compile(model)


def test_matmul_two_activations_reported_as_attention():
    g = rng(2)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="proj"),
        helper.make_node("MatMul", ["h", "x2"], ["y"], name="scores"),
    ]
    model = make_model(nodes, [vinfo("x", [3, 6]), vinfo("x2", [4, 5])], [vinfo("y", [3, 5])],
                       [init(randn(g, 6, 4), "W")])
    mem, report = compile_with_report(model)
    assert [(s.node, s.reason) for s in report.skipped] == [("scores", "both inputs are activations (attention)")]
    assert op_types(mem) == ["MemristiveMatMul", "MatMul"]
    assert_matches(mem, model, {"x": randn(g, 3, 6), "x2": randn(g, 4, 5)})


CONV_CASES = [
    dict(dims=1, C=3, N=4, kernel=3),
    dict(dims=1, C=4, N=8, kernel=2, strides=[2], pads=[1, 0], dilations=[2], group=2),
    dict(dims=2, C=4, N=6),
    dict(dims=2, C=4, N=6, group=2, kernel=[3, 2], strides=[2, 1], pads=[1, 0, 0, 1], bias=False),
    dict(dims=2, C=4, N=4, group=4, pads=[1, 1, 1, 1]),  # depthwise
    dict(dims=2, C=3, N=6, group=3, dilations=[2, 1], pads=[2, 1, 2, 1]),  # depthwise multiplier 2
    dict(dims=2, C=2, N=3, strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(dims=2, C=2, N=3, kernel=[2, 4], strides=[3, 2], auto_pad="SAME_LOWER"),
    dict(dims=2, C=2, N=3, auto_pad="VALID"),
    dict(dims=2, C=2, N=3, kernel=1),
    dict(dims=3, C=2, N=3, kernel=2, pads=[1, 0, 1, 0, 1, 1], size=4),
    dict(dims=3, C=2, N=2, kernel=2, group=2, strides=[1, 2, 1], auto_pad="SAME_UPPER", size=[4, 5, 3]),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv_cases(case):
    model, feeds = conv_model(**case)
    mem, report = compile_with_report(model)
    assert op_types(mem) == ["MemristiveMatMul"]
    (layer,) = report.mapped
    C, N, group = case["C"], case["N"], case.get("group", 1)
    k = case.get("kernel", 3)
    ks = [k] * case["dims"] if isinstance(k, int) else k
    assert layer.K == C // group * int(np.prod(ks)) and layer.N == N and layer.group == group
    op = mem.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in op.attribute}
    assert list(attrs["kernel_shape"]) == ks
    if case.get("auto_pad"):
        assert "pads" not in attrs
    assert_matches(mem, model, feeds)


def test_conv_tiles_counted():
    model, feeds = conv_model(dims=2, C=4, N=6, group=2)
    mem, report = compile_with_report(model, tile=(5, 2))
    # per group K = 2·9 = 18 → 4 row tiles; N/group = 3 → 2 column tiles; × 2 groups
    assert report.mapped[0].tiles == 4 * 2 * 2
    assert_matches(mem, model, feeds)  # ideal: tiling changes nothing


def test_conv_weight_not_constant_skipped():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c")
    model = make_model([node], [vinfo("x", [1, 2, 5, 5]), vinfo("w", [3, 2, 3, 3])], [vinfo("y", 4)])
    with pytest.raises(memcc.NothingToMapError, match="not a constant"):
        memcc.compile(model)


def test_conv_runtime_bias_passes_through():
    g = rng(3)
    node = helper.make_node("Conv", ["x", "W", "b"], ["y"], name="c", pads=[1, 1])
    model = make_model([node], [vinfo("x", [2, 2, 6]), vinfo("b", [3])], [vinfo("y", 3)],
                       [init(randn(g, 3, 2, 3), "W")])
    mem = memcc.compile(model)
    assert list(mem.graph.node[0].input) == ["x", "c.G", "b"]
    assert_matches(mem, model, {"x": randn(g, 2, 2, 6), "b": randn(g, 3)})
