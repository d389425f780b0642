"""RewriteGemm: every transA/transB/alpha/beta/C form, via the whole default pipeline."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from conftest import assert_matches

import memcc
from memcc.compiler import compile_with_report
from models import gemm_model, make_model, vinfo, init, randn, rng

from onnx import helper

C_FORMS = [None, "scalar", "one", "vector", "row", "matrix", "column", "input"]


def op_types(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([0, 1], [0, 1])))
@pytest.mark.parametrize("c", C_FORMS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.7, -1.5), (2.0, 0.0)])
def test_gemm_forms(trans_a, trans_b, c, alpha, beta):
    model, feeds = gemm_model(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    mem, report = compile_with_report(model)
    onnx.checker.check_model(mem)
    assert len(report.mapped) == 1 and report.mapped[0].weight_shape == (6, 3)
    types = op_types(mem)
    assert types.count("MemristiveMatMul") == 1 and "Gemm" not in types
    assert ("Transpose" in types) == bool(trans_a)
    bias_form = c in ("scalar", "one", "vector", "row")
    needs_add = c in ("matrix", "column", "input") and beta != 0.0
    assert ("Add" in types) == needs_add
    assert ("Mul" in types) == (c == "input" and beta not in (0.0, 1.0))
    op = next(n for n in mem.graph.node if n.op_type == "MemristiveMatMul")
    assert (len(op.input) == 3 and op.input[2] != "") == (bias_form and beta != 0.0)
    assert {t.name for t in mem.graph.initializer} >= {op.input[1]}
    assert "B" not in {t.name for t in mem.graph.initializer}  # the old weight is gone
    assert_matches(mem, model, feeds)


@pytest.mark.parametrize("opset", [7, 9, 10])
def test_gemm_old_opsets_c_required(opset):
    model, feeds = gemm_model(trans_b=1, c="vector", opset=opset, beta=0.5)
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul"]
    assert_matches(mem, model, feeds)


def test_gemm_weight_not_constant_is_skipped():
    nodes = [helper.make_node("Gemm", ["a", "b"], ["y"], name="g1")]
    model = make_model(nodes, [vinfo("a", [2, 3]), vinfo("b", [3, 4])], [vinfo("y", [2, 4])])
    with pytest.raises(memcc.NothingToMapError, match="B is not a constant"):
        memcc.compile(model)


def test_gemm_constant_first_input_is_skipped():
    g = rng(0)
    nodes = [
        helper.make_node("Gemm", ["A", "x"], ["y"], name="g1"),
        helper.make_node("MatMul", ["y", "W"], ["z"], name="mm"),
    ]
    model = make_model(nodes, [vinfo("x", [3, 4])], [vinfo("z", [2, 5])],
                       [init(randn(g, 2, 3), "A"), init(randn(g, 4, 5), "W")])
    mem, report = compile_with_report(model)
    assert [s.node for s in report.skipped] == ["g1"]
    assert "first input" in report.skipped[0].reason
    assert op_types(mem) == ["Gemm", "MemristiveMatMul"]
    assert_matches(mem, model, {"x": randn(g, 3, 4)})


def test_gemm_float64_is_skipped():
    nodes = [helper.make_node("Gemm", ["a", "B"], ["y"], name="g1")]
    model = make_model(nodes, [vinfo("a", [2, 3], onnx.TensorProto.DOUBLE)],
                       [vinfo("y", [2, 4], onnx.TensorProto.DOUBLE)], [init(np.ones((3, 4)), "B")])
    with pytest.raises(memcc.NothingToMapError, match="float32"):
        memcc.compile(model)


def test_shared_weight_two_gemms():
    """A weight read by two Gemms: two layers, each with its own G, names unique."""
    g = rng(1)
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
        helper.make_node("Gemm", ["h", "W"], ["y"], name="fc_1"),
    ]
    model = make_model(nodes, [vinfo("x", [2, 4])], [vinfo("y", [2, 4])], [init(randn(g, 4, 4), "W")])
    mem, report = compile_with_report(model)
    names = [t.name for t in mem.graph.initializer]
    assert len(names) == len(set(names)) == 2
    assert len(report.mapped) == 2
    assert_matches(mem, model, {"x": randn(g, 2, 4)})
