"""The `activation` attribute (docs/op-spec.md, step 9) and `FuseActivation`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches

import memcc
from memcc.passes import Pipeline, default_passes
from memcc.reference import memristive_matmul
from models import init, make_model, randn, rng, vinfo

from onnx import helper


def op_types(model):
    return [n.op_type for n in model.graph.node]


def activation_of(node):
    return next((a.s.decode() for a in node.attribute if a.name == "activation"), None)


def cnn(relu_twice: bool = False, relu_output: bool = False):
    g = rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "W2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W3", "B3"], ["h"], name="fc", transB=1),
        helper.make_node("Relu", ["h"], ["y"], name="relu3"),
    ]
    outputs = [vinfo("y", ["batch", 5])]
    if relu_twice:  # c2 also read by a second node: not fused
        nodes.append(helper.make_node("Sigmoid", ["c2"], ["s"], name="sig"))
        outputs.append(vinfo("s", ["batch", 16, 2, 2]))
    if relu_output:  # c1 is a graph output: not fused
        outputs.append(vinfo("c1", ["batch", 8, 8, 8]))
    inits = [
        init(randn(g, 8, 3, 3, 3, scale=0.3), "W1"),
        init(randn(g, 8, scale=0.1), "B1"),
        init(randn(g, 16, 8, 3, 3, scale=0.2), "W2"),
        init(randn(g, 5, 16 * 2 * 2, scale=0.2), "W3"),
        init(randn(g, 5, scale=0.1), "B3"),
    ]
    model = make_model(nodes, [vinfo("x", ["batch", 3, 8, 8])], outputs, inits)
    feeds = {"x": randn(g, 2, 3, 8, 8)}
    return model, feeds


def test_relu_fused_into_layers():
    model, feeds = cnn()
    mem = memcc.compile(model)
    # the MaxPool after the first Relu is fused too (FusePool, tests/test_fuse_pool.py)
    assert op_types(mem) == ["MemristiveMatMul", "MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    assert [activation_of(n) for n in mem.graph.node if n.op_type == "MemristiveMatMul"] == ["RELU"] * 3
    assert mem.graph.output[0].name == "y"
    assert_matches(mem, model, feeds)


def test_relu_fused_tiled():
    model, feeds = cnn()
    mem = memcc.compile(model, tile=(16, 8), dac_bits=8, adc_bits=8)
    assert "Relu" not in op_types(mem)
    assert_matches(memcc.compile(model, tile=(16, 8)), model, feeds)


def test_relu_kept_when_not_the_only_reader():
    model, feeds = cnn(relu_twice=True, relu_output=True)
    mem = memcc.compile(model)
    assert op_types(mem).count("Relu") == 2
    acts = [activation_of(n) for n in mem.graph.node if n.op_type == "MemristiveMatMul"]
    assert acts == [None, None, "RELU"]
    assert_matches(mem, model, feeds)


def test_pass_can_be_removed():
    model, feeds = cnn()
    passes = Pipeline(default_passes()).remove("fuse_activation")
    mem = memcc.compile(model, passes=passes)
    assert op_types(mem).count("Relu") == 3
    assert_matches(mem, model, feeds)


def test_reference_activation():
    g = rng(1)
    X = randn(g, 6, 10)
    G = g.uniform(1e-6, 1e-4, (2, 10, 7)).astype(np.float32)
    b = randn(g, 7)
    for extra in ({}, dict(tile_shape=[4, 3], dac_bits=6, adc_bits=6)):
        y = memristive_matmul(X, G, b, weight_scale=1e4, **extra)
        r = memristive_matmul(X, G, b, weight_scale=1e4, activation="RELU", **extra)
        np.testing.assert_array_equal(r, np.maximum(y, 0))
        assert (y < 0).any()
    Xc = randn(g, 2, 3, 5, 5)
    Gc = g.uniform(1e-6, 1e-4, (2, 27, 4)).astype(np.float32)
    y = memristive_matmul(Xc, Gc, None, weight_scale=1e4, kernel_shape=[3, 3])
    r = memristive_matmul(Xc, Gc, None, weight_scale=1e4, kernel_shape=[3, 3], activation="RELU")
    np.testing.assert_array_equal(r, np.maximum(y, 0))
    with pytest.raises(ValueError, match="'activation' must be one of"):
        memristive_matmul(X, G, b, weight_scale=1e4, activation="Relu")
