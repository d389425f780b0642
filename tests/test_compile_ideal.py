"""memcc.compile end to end with the ideal device: compiled model == original model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_close, assert_matches, run_original, run_reference

import memcc
from memcc.compiler import compile_with_report
from models import (
    batchnorm_gemm_model, constant_weights_model, conv_model, nothing_to_map_model,
    old_opset_model, sklearn_mlp, torch_cnn, torch_mlp, torch_transformer,
)

pytest.importorskip("torch")


def op_types(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("scheme", ["double", "single"])
def test_torch_cnn(tmp_path, scheme):
    path, feeds = torch_cnn(tmp_path)
    original = onnx.load(str(path))
    assert "BatchNormalization" in op_types(original)
    mem, report = compile_with_report(path, scheme=scheme)
    assert "BatchNormalization" not in op_types(mem)
    assert [m.op_type for m in report.mapped] == ["Conv", "Conv", "Gemm"]
    assert report.mapped[1].group == 3
    assert not report.skipped
    onnx.checker.check_model(mem)
    assert_matches(mem, original, feeds)


def test_torch_mlp(tmp_path):
    path, feeds = torch_mlp(tmp_path)
    mem, report = compile_with_report(str(path), tile=(8, 8))
    assert len(report.mapped) == 3 and op_types(mem).count("MemristiveMatMul") == 3
    # K=20, N=32 on 8×8 tiles: 3 × 4 tiles
    assert report.mapped[0].tiles == 12
    assert_matches(mem, onnx.load(str(path)), feeds)


def test_torch_transformer(tmp_path):
    path, feeds = torch_transformer(tmp_path)
    original = onnx.load(str(path))
    mem, report = compile_with_report(original)
    assert len(report.mapped) == 6  # q, k, v, o, ff1, ff2
    attention = [s for s in report.skipped if s.reason == "both inputs are activations (attention)"]
    assert len(attention) == 2 and len(report.skipped) == 2
    assert op_types(mem).count("MatMul") == 2
    assert_matches(mem, original, feeds)


def test_sklearn_mlp_digits():
    model, feeds = sklearn_mlp()
    mem, report = compile_with_report(model)
    assert len(report.mapped) == 2
    want = run_original(model, feeds)
    got = run_reference(mem, feeds)
    # outputs: label (int64) and probabilities
    np.testing.assert_array_equal(got[0], want[0])
    assert_close(got[1], want[1])
    assert_matches(mem, model, feeds)


def test_constant_node_model():
    model, feeds = constant_weights_model()
    assert_matches(memcc.compile(model), model, feeds)


@pytest.mark.parametrize("opset", [7, 8, 9, 11])
def test_old_opset(opset):
    model, feeds = old_opset_model(opset)
    mem = memcc.compile(model)
    onnx.checker.check_model(mem)
    assert {(o.domain, o.version) for o in mem.opset_import} >= {("ai.memcc", 1)}
    if mem.ir_version < 4:  # every initializer declared as a graph input, with its real shape
        declared = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in mem.graph.input}
        for t in mem.graph.initializer:
            assert declared[t.name] == list(t.dims)
        assert set(declared) == {t.name for t in mem.graph.initializer} | {"x"}
    assert_matches(mem, model, feeds)


def test_nothing_to_map():
    with pytest.raises(memcc.NothingToMapError, match="attention"):
        memcc.compile(nothing_to_map_model())


def test_checker_opset_and_no_leftovers():
    model, feeds = old_opset_model(13)
    mem = memcc.compile(model)
    onnx.checker.check_model(mem, full_check=False)
    assert [(o.domain, o.version) for o in mem.opset_import if o.domain == "ai.memcc"] == [("ai.memcc", 1)]
    used = {i for n in mem.graph.node for i in n.input}
    assert all(t.name in used for t in mem.graph.initializer)
    for n in mem.graph.node:
        if n.op_type == "MemristiveMatMul":
            assert n.domain == "ai.memcc"
            G = next(t for t in mem.graph.initializer if t.name == n.input[1])
            assert G.data_type == onnx.TensorProto.FLOAT and G.dims[0] == 2


def test_deterministic_and_input_not_mutated(tmp_path):
    path, feeds = torch_cnn(tmp_path)
    model = onnx.load(str(path))
    before = model.SerializeToString()
    a = memcc.compile(model, seed=3, tile=(4, 4))
    b = memcc.compile(model, seed=3, tile=(4, 4))
    assert model.SerializeToString() == before
    assert a.SerializeToString() == b.SerializeToString()
    c = memcc.compile(str(path), seed=3, tile=(4, 4))
    assert c.SerializeToString() == a.SerializeToString()


def test_single_scheme_attributes():
    model, feeds = batchnorm_gemm_model()
    mem = memcc.compile(model, scheme="single", r_on=2e3, r_off=2e5)
    (node,) = mem.graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["g_ref"] == pytest.approx((1 / 2e3 + 1 / 2e5) / 2, rel=1e-6)
    G = onnx.numpy_helper.to_array(mem.graph.initializer[-1] if mem.graph.initializer[-1].name == node.input[1]
                                   else next(t for t in mem.graph.initializer if t.name == node.input[1]))
    assert G.shape[0] == 1 and G.min() >= 1 / 2e5 * (1 - 1e-6) and G.max() <= 1 / 2e3 * (1 + 1e-6)
    assert_matches(mem, model, feeds)


def test_crossbar_attributes_written():
    model, feeds = conv_model()
    mem = memcc.compile(model, tile=(16, 8), dac_bits=8, adc_bits=6, adc_overflow_rate=0.01,
                        max_input_voltage=0.2, input_range=3.0)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in mem.graph.node[0].attribute}
    assert list(attrs["tile_shape"]) == [16, 8]
    assert (attrs["dac_bits"], attrs["adc_bits"]) == (8, 6)
    assert attrs["adc_overflow_rate"] == pytest.approx(0.01)
    assert attrs["max_input_voltage"] == pytest.approx(0.2)
    assert attrs["input_range"] == pytest.approx(3.0)
    assert attrs["quantization"] == b"linear" or attrs["quantization"] == "linear"
    # with quantization the result is close to, not equal to, the original
    want = run_original(model, feeds)[0]
    got = run_reference(mem, feeds)[0]
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < rel < 0.1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(scheme="triple"), "scheme"),
        (dict(tile=(3,)), "tile"),
        (dict(tile=(-1, 4)), "tile"),
        (dict(dac_bits=1), "dac_bits"),
        (dict(adc_bits=30), "adc_bits"),
        (dict(adc_bits=4.0), "adc_bits"),
        (dict(adc_overflow_rate=1.0), "adc_overflow_rate"),
        (dict(max_input_voltage=0), "max_input_voltage"),
        (dict(input_range=-1), "input_range"),
        (dict(r_on=1e5, r_off=1e3), "r_on"),
        (dict(r_on=1e6), "r_on"),  # above the ideal device's default r_off
        (dict(r_off=float("nan")), "r_off"),
        (dict(device="nope"), "unknown device"),
        (dict(seed=-1), "seed"),
        (dict(progress="yes"), "progress"),
    ],
)
def test_option_validation(kwargs, match):
    model, _ = batchnorm_gemm_model()
    with pytest.raises(memcc.ConfigError, match=match) as info:
        memcc.compile(model, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(tile=(2**63, 1)), "tile: 9223372036854775808 is too large"),
        (dict(r_on=1e-300, r_off=1e300), r"r_on: 1e-300 ohm gives a conductance of 1e\+300 S, outside float32"),
        (dict(device_params={"r_on": 1e-300}), "device 'ideal': r_on: 1e-300 ohm"),
        (dict(device="vteam", device_params={"r_off": 1e300}, d2d_std=0), "device 'vteam': r_off"),
        (dict(r_on=1.0, r_off=1.00000001), "equal in float32"),
        (dict(max_input_voltage=1e-300), "max_input_voltage: 1e-300 V is outside float32's normal range"),
        (dict(input_range=1e-300), "input_range"),
        # valid conductances, but weight_scale = w_max / 3.3e38 S is subnormal
        (dict(r_on=3e-39, r_off=1.0), "weight_scale .* is .* in float32, outside the normal range"),
        # with the ADC on the op quantizes raw currents: rows · V_max · window overflows float32
        (dict(r_on=1e-30, r_off=1.0, adc_bits=8, max_input_voltage=1e10), "column current can reach"),
    ],
)
def test_values_the_op_cannot_hold_in_float32_are_refused(kwargs, match):
    model, _ = batchnorm_gemm_model()
    with pytest.raises(memcc.ConfigError, match=match) as info:
        memcc.compile(model, **kwargs)
    assert "\n" not in str(info.value)


def test_extreme_but_representable_values_compile():
    model, _ = batchnorm_gemm_model()
    compiled = memcc.compile(model, tile=(2**63 - 1, 0), r_on=1e-30, r_off=1e30, adc_bits=8)
    node = next(n for n in compiled.graph.node if n.op_type == "MemristiveMatMul")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["tile_shape"] == [2**63 - 1, 0] and 0 < attrs["weight_scale"] < np.inf


def test_model_load_errors(tmp_path):
    with pytest.raises(memcc.ModelLoadError):
        memcc.compile(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(memcc.ModelLoadError):
        memcc.compile(bad)


def test_report_summary():
    model, feeds = old_opset_model(13)
    _, report = compile_with_report(model, tile=(8, 2))
    text = report.summary()
    assert "mapped 2 layers, skipped 0 nodes" in text and "conv" in text
    assert report.as_dict()["mapped"][0]["K"] == 18


def test_progress_bar_forced(capsys):
    model, feeds = batchnorm_gemm_model()
    memcc.compile(model, progress=True)
    assert "mapping layers" in capsys.readouterr().err
    memcc.compile(model, progress=False)
    assert capsys.readouterr().err == ""


def test_quantized_reference_agrees_with_library(tmp_path):
    """With DAC/ADC/tiling on, the C++ op matches the reference up to rare one-level flips."""
    from conftest import run_library

    path, feeds = torch_mlp(tmp_path)
    mem = memcc.compile(path, tile=(8, 8), dac_bits=6, adc_bits=6, adc_overflow_rate=0.05)
    ref = run_reference(mem, feeds)[0]
    lib = run_library(mem, feeds)[0]  # skips when the library is not built
    scale = np.abs(ref).max()
    close = np.isclose(lib, ref, rtol=1e-4, atol=1e-5 * scale)
    assert close.mean() > 0.95
    assert np.abs(lib - ref).max() < 0.1 * scale
