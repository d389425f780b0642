"""The CUDA kernels of the op library against its CPU kernels (issue: the op on the GPU).

Every case builds a model, runs it on the CPU and on the GPU (onnxruntime's CUDA execution
provider with memcc's library) and asserts equal results to float tolerance; quantized cases may
differ by one DAC/ADC level at a decision boundary (docs/op-spec.md, "Numerical agreement").

Skipped without onnxruntime-gpu or a GPU. MEMCC_REQUIRE_CUDA=1 (tests/gpu/run_on_device.sh)
turns those skips into failures, so a GPU run cannot pass by skipping.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import library_available
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _skip_or_fail(reason: str):
    if os.environ.get("MEMCC_REQUIRE_CUDA") == "1":
        pytest.fail(f"MEMCC_REQUIRE_CUDA=1 but {reason}")
    pytest.skip(reason)


def _cuda_ready() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        _skip_or_fail("onnxruntime has no CUDA execution provider (install memcc[gpu] on a GPU machine)")
    if not library_available():
        _skip_or_fail("memcc's op library is not built")
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels, where installed
        ort.preload_dlls()


def sessions(model: onnx.ModelProto, *, gpu_only: bool = True):
    """(CPU session, GPU session). With gpu_only every node must run on the GPU: a kernel
    missing for the CUDA provider is an error, not a silent fallback to the CPU."""
    import onnxruntime as ort

    from memcc.runtime import session

    _cuda_ready()
    cpu = session(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    providers = ["CUDAExecutionProvider"]
    if gpu_only:
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    else:
        providers.append("CPUExecutionProvider")
    try:
        gpu = session(model, providers=providers, sess_options=opts)
    except Exception as exc:  # no usable GPU behind the provider
        _skip_or_fail(f"no CUDA session: {str(exc).splitlines()[0]}")
    if "CUDAExecutionProvider" not in gpu.get_providers():
        _skip_or_fail("the CUDA provider did not initialise (no GPU?)")
    return cpu, gpu


def assert_agree(gpu, cpu, *, quantized: bool, what: str = "") -> None:
    gpu, cpu = np.asarray(gpu, np.float64), np.asarray(cpu, np.float64)
    assert gpu.shape == cpu.shape, what
    if cpu.size == 0:
        return
    scale = max(float(np.abs(cpu).max()), 1e-30)
    err = np.abs(gpu - cpu)
    bad = err > 1e-4 * scale
    if quantized:
        assert bad.mean() < 0.01, f"{what}: {bad.mean():.4f} of outputs differ (max err {err.max():.3g})"
        assert err.max() < 0.05 * scale, f"{what}: max err {err.max():.3g} (scale {scale:.3g})"
    else:
        assert not bad.any(), f"{what}: max err {err.max():.3g} (scale {scale:.3g})"


def op_model(G, x_rank: int, *, bias=None, time_input=False, **attrs) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.asarray(G, np.float32), "G")]
    ins = ["x", "G", ""]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, np.float32), "B"))
        ins[2] = "B"
    inputs = [helper.make_tensor_value_info("x", F, [None] * x_rank)]
    if time_input:
        ins.append("T")
        inputs.append(helper.make_tensor_value_info("T", F, []))
    node = helper.make_node("MemristiveMatMul", ins, ["y"], domain="ai.memcc", name="op", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", F, None)], inits)
    # IR 10: what onnxruntime 1.20 and later read, whatever onnx wrote by default.
    return helper.make_model(graph, ir_version=10,
                             opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


def conductances(rng, S, K, N):
    return rng.uniform(1e-6, 1e-4, size=(S, K, N)).astype(np.float32)


# Periphery settings: each exercises one path of the device code (crossbar_layer.cu).
PERIPHERY = {
    "ideal": {},
    "ideal-relu": dict(activation="RELU"),
    "dac": dict(dac_bits=8),
    "range-dac": dict(input_range=2.0, dac_bits=6),
    "adc-fused": dict(tile_shape=[128, 128], dac_bits=8, adc_bits=8),
    "adc-edge-tiles": dict(tile_shape=[100, 50], dac_bits=6, adc_bits=6),
    "adc-overflow": dict(tile_shape=[64, 64], dac_bits=8, adc_bits=8, adc_overflow_rate=0.05),
    "adc-wide-tiles": dict(tile_shape=[256, 256], dac_bits=8, adc_bits=8),
    "adc-untiled": dict(dac_bits=8, adc_bits=8),
    "iv": dict(dac_bits=8, iv_a=0.32, iv_b=2.7),
    "iv-adc": dict(tile_shape=[128, 128], dac_bits=8, adc_bits=8, iv_a=0.32, iv_b=2.7, activation="RELU"),
}
NOISE = {
    "noise": dict(read_noise_std=0.05, noise_seed=3),
    "noise-adc": dict(tile_shape=[64, 64], dac_bits=8, adc_bits=8, read_noise_std=0.05, noise_seed=3),
    "noise-adc-wide": dict(tile_shape=[64, 300], adc_bits=8, read_noise_std=0.05, noise_seed=9),
}


def quantized(attrs) -> bool:
    return bool(attrs.get("adc_bits") or attrs.get("dac_bits"))


@pytest.mark.parametrize("name", sorted(PERIPHERY))
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 300, 130), (64, 257, 300), ((2, 5), 33, 20)])
@pytest.mark.parametrize("S", [2, 1])
def test_matmul_agrees_with_cpu(name, shape, S):
    rng = np.random.default_rng(zlib.crc32(f"{name}/{S}".encode()))
    lead, K, N = shape
    lead = lead if isinstance(lead, tuple) else (lead,)
    G = conductances(rng, S, K, N)
    attrs = dict(weight_scale=5e3, **PERIPHERY[name])
    if S == 1:
        attrs["g_ref"] = 5e-5
    model = op_model(G, len(lead) + 1, bias=rng.standard_normal(N), **attrs)
    cpu, gpu = sessions(model)
    x = rng.standard_normal((*lead, K)).astype(np.float32)
    assert_agree(gpu.run(None, {"x": x})[0], cpu.run(None, {"x": x})[0], quantized=quantized(attrs), what=name)


CONVS = {
    "2d": dict(x=(3, 8, 12, 12), N=16, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    "2d-strided-dilated": dict(x=(2, 6, 15, 13), N=8, kernel_shape=[3, 2], strides=[2, 1], dilations=[2, 3]),
    "2d-grouped": dict(x=(2, 8, 9, 9), N=12, kernel_shape=[3, 3], group=4, auto_pad="SAME_UPPER"),
    "depthwise": dict(x=(2, 6, 10, 10), N=6, kernel_shape=[3, 3], group=6, pads=[1, 0, 1, 2]),
    "1d": dict(x=(4, 5, 40), N=7, kernel_shape=[5], strides=[3]),
    "3d": dict(x=(1, 3, 6, 7, 8), N=5, kernel_shape=[2, 3, 3], pads=[0, 1, 1, 1, 1, 0]),
    "wide": dict(x=(2, 32, 8, 8), N=200, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
}


@pytest.mark.parametrize("periphery", ["ideal", "ideal-relu", "dac", "adc-fused", "adc-edge-tiles",
                                       "adc-overflow", "adc-untiled", "iv-adc"])
@pytest.mark.parametrize("conv", sorted(CONVS))
def test_conv_agrees_with_cpu(conv, periphery):
    rng = np.random.default_rng(zlib.crc32(f"{conv}/{periphery}".encode()))
    spec = dict(CONVS[conv])
    x_shape, N = spec.pop("x"), spec.pop("N")
    K = x_shape[1] // spec.get("group", 1) * int(np.prod(spec["kernel_shape"]))
    attrs = dict(weight_scale=5e3, **spec, **PERIPHERY[periphery])
    model = op_model(conductances(rng, 2, K, N), len(x_shape), bias=rng.standard_normal(N), **attrs)
    cpu, gpu = sessions(model)
    x = rng.standard_normal(x_shape).astype(np.float32)
    assert_agree(gpu.run(None, {"x": x})[0], cpu.run(None, {"x": x})[0], quantized=quantized(attrs),
                 what=f"{conv}/{periphery}")


# max_pool (step 10) after each kind of layer: the pooled outputs of the device against the CPU's
# (whose ideal 2-D path pools in onnxruntime's NCHWc layout).
POOLS = {
    "2d-2x2": ("2d", [2, 2]),
    "2d-3x2-odd": ("2d-strided-dilated", [3, 2]),
    "1d": ("1d", [4]),
    "3d": ("3d", [2, 2, 3]),
    "wide": ("wide", [2, 2]),
}


@pytest.mark.parametrize("periphery", ["ideal", "ideal-relu", "adc-fused", "iv-adc"])
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_max_pool_agrees_with_cpu(pool, periphery):
    rng = np.random.default_rng(zlib.crc32(f"{pool}/{periphery}".encode()))
    conv, window = POOLS[pool]
    spec = dict(CONVS[conv])
    x_shape, N = spec.pop("x"), spec.pop("N")
    K = x_shape[1] // spec.get("group", 1) * int(np.prod(spec["kernel_shape"]))
    attrs = dict(weight_scale=5e3, **spec, **PERIPHERY[periphery], max_pool=window)
    model = op_model(conductances(rng, 2, K, N), len(x_shape), bias=rng.standard_normal(N), **attrs)
    cpu, gpu = sessions(model)
    x = rng.standard_normal(x_shape).astype(np.float32)
    assert_agree(gpu.run(None, {"x": x})[0], cpu.run(None, {"x": x})[0], quantized=quantized(attrs),
                 what=f"{pool}/{periphery}")


@pytest.mark.parametrize("name", sorted(NOISE))
@pytest.mark.parametrize("conv", [False, True])
def test_read_noise_same_seed_same_noise(name, conv):
    """The counter-based stream makes the GPU draw the CPU's normals: equal results run by run
    (the execution counter advances alike), and different runs differ."""
    rng = np.random.default_rng(5)
    if conv:
        x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
        G, extra = conductances(rng, 2, 72, 300), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    else:
        x = rng.standard_normal((33, 200)).astype(np.float32)
        G, extra = conductances(rng, 2, 200, 300), {}
    attrs = dict(weight_scale=5e3, **extra, **NOISE[name])
    cpu, gpu = sessions(op_model(G, x.ndim, **attrs))
    runs = []
    for _ in range(2):
        want, got = cpu.run(None, {"x": x})[0], gpu.run(None, {"x": x})[0]
        assert_agree(got, want, quantized=quantized(attrs), what=name)
        runs.append(got)
    assert not np.allclose(runs[0], runs[1])


def test_drift_follows_the_time_input():
    rng = np.random.default_rng(6)
    G = conductances(rng, 2, 96, 40)
    attrs = dict(weight_scale=5e3, drift_nu=0.05, drift_nu_std=0.02, drift_seed=4, tile_shape=[32, 32],
                 dac_bits=8, adc_bits=8)
    cpu, gpu = sessions(op_model(G, 2, time_input=True, **attrs))
    x = rng.standard_normal((16, 96)).astype(np.float32)
    outs = []
    for t in (1.0, 1e3, 1e6, 10.0):
        feeds = {"x": x, "T": np.array(t, np.float32)}
        got = gpu.run(None, feeds)[0]
        assert_agree(got, cpu.run(None, feeds)[0], quantized=True, what=f"t={t}")
        outs.append(got)
    assert not np.allclose(outs[0], outs[2])


def test_inputs_and_outputs_stay_on_the_device():
    """Inputs bound in GPU memory and the output left there: the op reads and writes device
    memory only (T excepted, which it declares a host input)."""
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    G = conductances(rng, 2, 64, 48)
    model = op_model(G, 2, tile_shape=[32, 32], dac_bits=8, adc_bits=8, weight_scale=5e3)
    cpu, gpu = sessions(model)
    x = rng.standard_normal((10, 64)).astype(np.float32)
    binding = gpu.io_binding()
    binding.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output("y", "cuda", 0)
    gpu.run_with_iobinding(binding)
    out = binding.get_outputs()[0]
    assert out.device_name().lower() == "cuda"
    assert_agree(out.numpy(), cpu.run(None, {"x": x})[0], quantized=True)


def test_bad_input_is_an_error_not_a_crash():
    rng = np.random.default_rng(8)
    _cpu, gpu = sessions(op_model(conductances(rng, 2, 6, 4), 2, weight_scale=1.0))
    with pytest.raises(Exception, match="K = G.shape"):
        gpu.run(None, {"x": np.ones((3, 5), np.float32)})


@pytest.mark.parametrize(
    "options",
    [dict(device="ideal"), dict(device="vteam", tile=(128, 128), dac_bits=8, adc_bits=8, seed=1)],
    ids=["ideal", "vteam-tiled"],
)
def test_example_model_agrees_and_keeps_accuracy(options):
    import memcc

    data = np.load(EXAMPLES / "digits_test.npz")
    x, labels = data["x"].astype(np.float32), data["y"]
    nonideal = [] if options["device"] == "ideal" else ["read_noise:std=0.02"]
    mem = memcc.compile(EXAMPLES / "digits_cnn.onnx", nonidealities=nonideal or None, progress=False, **options)
    cpu, gpu = sessions(mem, gpu_only=False)
    want = cpu.run(None, {cpu.get_inputs()[0].name: x})[0]
    got = gpu.run(None, {gpu.get_inputs()[0].name: x})[0]
    assert_agree(got, want, quantized=options["device"] != "ideal")
    assert abs((got.argmax(1) == labels).mean() - (want.argmax(1) == labels).mean()) <= 1 / len(labels)
