"""memcc.runtime: locating the op library, input handling, running MemristiveMatMul."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import library_available
from onnx import TensorProto, helper, numpy_helper

from memcc import runtime
from memcc.errors import ConfigError, MemccError, ModelLoadError


needs_library = pytest.mark.skipif(not library_available(), reason="libmemcc_ops is not built/installed")


def plain_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def memristive_model(k=6, n=5, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    g = rng.uniform(1e-6, 1e-4, size=(2, k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    node = helper.make_node(
        "MemristiveMatMul", ["x", "G", "B"], ["y"], domain="ai.memcc", weight_scale=1e4, **attrs
    )
    graph = helper.make_graph(
        [node],
        "mem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        [numpy_helper.from_array(g, "G"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)]
    )
    weights = 1e4 * (g[0].astype(np.float64) - g[1])
    return model, weights, bias


# ---------------------------------------------------------------------------- library_path


def test_library_path_missing(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(runtime, "_PACKAGE_DIR", tmp_path)
    with pytest.raises(MemccError) as info:
        runtime.library_path()
    msg = str(info.value)
    assert "libmemcc_ops" in msg and "pip install" in msg and str(tmp_path) in msg
    assert "\n" not in msg


def test_library_path_found_in_package(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(runtime, "_PACKAGE_DIR", tmp_path)
    lib = tmp_path / runtime._LIB_NAMES[0]
    lib.write_bytes(b"")
    assert runtime.library_path() == str(lib)


def test_library_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.LIBRARY_ENV, str(tmp_path / "nope.so"))
    with pytest.raises(MemccError, match=runtime.LIBRARY_ENV):
        runtime.library_path()
    lib = tmp_path / "custom.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(runtime.LIBRARY_ENV, str(lib))
    assert runtime.library_path() == str(lib.resolve())


def test_session_reports_missing_library(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(runtime, "_PACKAGE_DIR", tmp_path)
    with pytest.raises(MemccError, match="not installed"):
        runtime.session(plain_model())


def test_session_rejects_bad_sources(tmp_path):
    if not library_available():
        pytest.skip("libmemcc_ops is not built/installed")
    with pytest.raises(ModelLoadError, match="no such file"):
        runtime.session(tmp_path / "missing.onnx")
    with pytest.raises(ModelLoadError, match="directory"):
        runtime.session(tmp_path)
    with pytest.raises(ModelLoadError):
        runtime.session(3.5)


# ---------------------------------------------------------------------------- inputs


@pytest.fixture
def plain_session():
    return ort.InferenceSession(plain_model().SerializeToString(), providers=["CPUExecutionProvider"])


def test_run_with_existing_session_and_casting(plain_session):
    x = np.ones((2, 4), dtype=np.float64)  # cast to float32 for the model
    (y,) = runtime.run(plain_session, x)
    np.testing.assert_allclose(y, np.ones((2, 4)) @ np.arange(12).reshape(4, 3))
    (y2,) = runtime.run(plain_session, {"x": x.astype(np.float32)})
    np.testing.assert_array_equal(y, y2)


def test_input_errors(plain_session):
    with pytest.raises(ConfigError, match="no input named 'z'"):
        runtime.prepare_inputs(plain_session, {"z": np.ones((1, 4))})
    with pytest.raises(ConfigError, match="no value given"):
        runtime.prepare_inputs(plain_session, {})
    with pytest.raises(ConfigError, match="rank"):
        runtime.prepare_inputs(plain_session, np.ones(4, np.float32))
    with pytest.raises(ConfigError, match="axis 1"):
        runtime.prepare_inputs(plain_session, np.ones((2, 5), np.float32))
    with pytest.raises(ConfigError, match="dtype"):
        runtime.prepare_inputs(plain_session, np.array([["a"] * 4]))


# ---------------------------------------------------------------------------- with the library


@needs_library
@pytest.mark.parametrize("source", ["proto", "bytes", "path"])
def test_session_runs_memristive_matmul(tmp_path, source):
    model, weights, bias = memristive_model()
    if source == "proto":
        arg = model
    elif source == "bytes":
        arg = model.SerializeToString()
    else:
        arg = tmp_path / "mem.onnx"
        onnx.save(model, str(arg))
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    sess = runtime.session(arg)
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, x @ weights + bias, rtol=1e-4, atol=1e-4)


@needs_library
def test_run_convenience_and_custom_options():
    model, weights, bias = memristive_model()
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    (y,) = runtime.run(model, x, sess_options=opts)
    np.testing.assert_allclose(y, x @ weights + bias, rtol=1e-4, atol=1e-4)


@needs_library
def test_invalid_attribute_is_one_line_error():
    model, _, _ = memristive_model(dac_bits=1)  # outside 0 or 2..24
    x = np.ones((1, 6), np.float32)
    with pytest.raises(MemccError) as info:
        runtime.run(model, x)
    assert "\n" not in str(info.value)


@needs_library
def test_same_options_reused_for_two_sessions():
    model, weights, bias = memristive_model()
    opts = ort.SessionOptions()
    x = np.ones((2, 6), np.float32)
    for _ in range(2):  # the library must be registered on `opts` only once
        (y,) = runtime.session(model, sess_options=opts).run(None, {"x": x})
        np.testing.assert_allclose(y, x @ weights + bias, rtol=1e-4, atol=1e-4)
