"""End-to-end check of libmemcc_ops inside onnxruntime (run by ctest, or by hand).

    python ops/tests/smoke_ort.py path/to/libmemcc_ops.so

Builds one-node models, runs them in onnxruntime with the library registered and compares with
an independent NumPy transcription of docs/op-spec.md (float64). Also checks that bad attributes
and shapes come back as onnxruntime errors carrying the library's message. Exits 77 (skipped)
when numpy, onnx or onnxruntime are missing.

Every numeric case runs twice: with MEMCC_OPS_ENGINE=native (onnxruntime's own Gemm / Conv /
MatMul invoked from the op where the kernel picks them; a kernel that cannot be created is an
error rather than a silent fallback) and with MEMCC_OPS_ENGINE=blas (the OpenBLAS engine only).
"""

from __future__ import annotations

import math
import os
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover
    print(f"skipped: {exc}")
    sys.exit(77)

LIB = sys.argv[1] if len(sys.argv) > 1 else None
RNG = np.random.default_rng(1234)


# ---- spec transcription ---------------------------------------------------------------------

def quant(a, bits, q):
    m = a.shape[-1]
    t = min(max(m - 1 - math.floor(q * m), 0), m - 1)
    Q = np.sort(np.abs(a), axis=-1)[..., t]
    out = np.zeros_like(a)
    for i in range(a.shape[0]):
        if Q[i] == 0:
            continue
        f, e = math.frexp(Q[i])
        c = e - 1 if f == 0.5 else e
        d = math.ldexp(1.0, c + 1 - bits)
        out[i] = np.clip(np.round(a[i] / d), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * d
    return out


def crossbar(x, D, at):
    R, K = x.shape
    n = D.shape[1]
    s = np.full(R, at["input_range"]) if at["input_range"] > 0 else np.abs(x).max(axis=1, initial=0.0)
    safe = np.where(s == 0, 1.0, s)
    u = np.clip(x / safe[:, None], -1, 1)
    if at["dac_bits"]:
        L = 2.0 ** (at["dac_bits"] - 1) - 1
        u = np.round(u * L) / L
    v = u * at["max_input_voltage"]
    tr = at["tile_shape"][0] or max(K, 1)
    tc = at["tile_shape"][1] or max(n, 1)
    acc = np.zeros((R, n))
    for r0 in range(0, K, tr):
        cur = v[:, r0:r0 + tr] @ D[r0:r0 + tr]
        if at["adc_bits"]:
            for c0 in range(0, n, tc):
                cur[:, c0:c0 + tc] = quant(cur[:, c0:c0 + tc], at["adc_bits"], at["adc_overflow_rate"])
        acc += cur
    y = acc * (at["weight_scale"] * safe / at["max_input_voltage"])[:, None]
    y[s == 0] = 0
    return y


DEFAULTS = dict(g_ref=0.0, tile_shape=(0, 0), max_input_voltage=0.3, input_range=0.0, dac_bits=0,
                adc_bits=0, adc_overflow_rate=0.0, activation="NONE")


def spec(X, G, bias, **attrs):
    y = spec_linear(X, G, bias, **attrs)
    return np.maximum(y, 0.0) if attrs.get("activation", "NONE") == "RELU" else y


def spec_linear(X, G, bias, **attrs):
    at = dict(DEFAULTS, **attrs)
    X = X.astype(np.float64)
    G = G.astype(np.float64)
    D = G[0] - G[1] if G.shape[0] == 2 else G[0] - at["g_ref"]
    K, N = D.shape
    if "kernel_shape" not in at:
        y = crossbar(X.reshape(-1, K), D, at).reshape(X.shape[:-1] + (N,))
        return y + (bias if bias is not None else 0)
    ks = at["kernel_shape"]
    n = len(ks)
    st = at.get("strides", [1] * n)
    dl = at.get("dilations", [1] * n)
    pads = at.get("pads", [0] * (2 * n))
    grp = at.get("group", 1)
    mode = at.get("auto_pad", "NOTSET")
    B, C = X.shape[:2]
    sp = X.shape[2:]
    out, pb = [], []
    for d in range(n):
        e = (ks[d] - 1) * dl[d] + 1
        if mode.startswith("SAME"):
            o = -(-sp[d] // st[d])
            t = max(0, (o - 1) * st[d] + e - sp[d])
            b = t // 2 if mode == "SAME_UPPER" else t - t // 2
            pe = t - b
        else:
            b, pe = (0, 0) if mode == "VALID" else (pads[d], pads[n + d])
            o = (sp[d] + b + pe - e) // st[d] + 1
        out.append(o)
        pb.append(b)
    Cg, Ng = C // grp, N // grp
    offs = list(np.ndindex(*ks))
    P = int(np.prod(out))
    Y = np.zeros((B, N, P))
    for b in range(B):
        for h in range(grp):
            vecs = np.zeros((P, K))
            for pi, p in enumerate(np.ndindex(*out)):
                k = 0
                for c in range(Cg):
                    for o in offs:
                        idx = [p[d] * st[d] - pb[d] + o[d] * dl[d] for d in range(n)]
                        if all(0 <= idx[d] < sp[d] for d in range(n)):
                            vecs[pi, k] = X[(b, h * Cg + c) + tuple(idx)]
                        k += 1
            Y[b, h * Ng:(h + 1) * Ng] = crossbar(vecs, D[:, h * Ng:(h + 1) * Ng], at).T
    if bias is not None:
        Y += bias[None, :, None]
    return Y.reshape((B, N) + tuple(out))


# ---- onnxruntime ----------------------------------------------------------------------------

def model(x_shape, G, bias, **attrs):
    inputs = ["X", "G"] + (["Bias"] if bias is not None else [])
    node = helper.make_node("MemristiveMatMul", inputs, ["Y"], domain="ai.memcc", name="layer0", **attrs)
    inits = [numpy_helper.from_array(G, "G")]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "Bias"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


def session(m, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.register_custom_ops_library(LIB)
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(X, G, bias, **attrs):
    return session(model(X.shape, G, bias, **attrs)).run(None, {"X": X})[0]


def check(name, X, G, bias, **attrs):
    got = run(X, G, bias, **attrs)
    want = spec(X, G, bias, **{k: v for k, v in attrs.items()})
    assert got.shape == want.shape, (name, got.shape, want.shape)
    scale = max(1e-30, np.abs(want).max(initial=0.0))
    err = np.abs(got - want)
    if err.size == 0:
        print(f"ok   {name}: empty output {got.shape}")
        return got
    # One DAC/ADC level may flip at a decision boundary (docs/op-spec.md, "Numerical agreement").
    quantized = attrs.get("adc_bits", 0) or attrs.get("dac_bits", 0)
    tol = 1e-4 * scale
    bad = err > tol
    if quantized:
        assert bad.mean() < 0.01, f"{name}: {bad.mean():.4f} of outputs differ (max err {err.max():.3g})"
    else:
        assert not bad.any(), f"{name}: max error {err.max():.3g} (scale {scale:.3g})"
    print(f"ok   {name}: max |err| {err.max():.3g} (scale {scale:.3g})")
    return got


def expect_error(name, text, X, G, bias, **attrs):
    try:
        run(X, G, bias, **attrs)
    except Exception as exc:  # onnxruntime's Fail / InvalidArgument / RuntimeException
        msg = str(exc)
        assert text in msg, f"{name}: message lacks {text!r}: {msg}"
        print(f"ok   {name}: {type(exc).__name__}: ...{msg[msg.find('MemristiveMatMul node'):][:110]}")
        return
    raise AssertionError(f"{name}: no error raised")


def conductances(S, K, N):
    return RNG.uniform(1e-6, 1e-4, size=(S, K, N)).astype(np.float32)


def numeric_cases(engine):
    # "native": a node whose onnxruntime kernel cannot be created fails instead of falling back.
    os.environ["MEMCC_OPS_ENGINE"] = engine
    print(f"---- engine: {engine}")
    f32 = np.float32
    X = RNG.standard_normal((5, 7, 40)).astype(f32)
    G = conductances(2, 40, 24)
    b = RNG.standard_normal(24).astype(f32)
    check("matmul ideal S=2 rank-3", X, G, b, weight_scale=1e4)
    check("matmul ideal S=1 g_ref", X, conductances(1, 40, 24), None, weight_scale=2e4, g_ref=5e-5)
    check("matmul input_range clamp", X, G, b, weight_scale=1e4, input_range=1.0)
    check("matmul DAC only", X, G, b, weight_scale=1e4, dac_bits=5, tile_shape=[16, 8])
    check("matmul tiles+DAC+ADC edge tiles", X, G, b, weight_scale=1e4, dac_bits=8, adc_bits=8, tile_shape=[16, 10])
    check("matmul ADC overflow", X, G, None, weight_scale=1e4, adc_bits=6, adc_overflow_rate=0.2, tile_shape=[0, 7])
    Xz = X.copy()
    Xz[0, 0] = 0
    check("matmul zero vector", Xz, G, b, weight_scale=1e4, adc_bits=8, tile_shape=[16, 16])
    check("matmul rank-1", RNG.standard_normal(40).astype(f32), G, b, weight_scale=1e4)
    check("matmul R=0", np.zeros((0, 40), f32), G, b, weight_scale=1e4, adc_bits=8)
    check("matmul big", RNG.standard_normal((300, 256)).astype(f32), conductances(2, 256, 200), None,
          weight_scale=1e4, adc_bits=8, dac_bits=8, tile_shape=[64, 64])

    Xc = RNG.standard_normal((2, 6, 9, 8)).astype(f32)
    check("conv2d ideal pads strides", Xc, conductances(2, 54, 10), RNG.standard_normal(10).astype(f32),
          weight_scale=1e4, kernel_shape=[3, 3], pads=[1, 0, 2, 1], strides=[2, 1])
    check("conv2d groups dilation ADC", Xc, conductances(2, 12, 9), None, weight_scale=1e4, kernel_shape=[2, 3],
          group=3, dilations=[2, 1], adc_bits=7, dac_bits=6, tile_shape=[5, 3])
    check("conv2d depthwise SAME_LOWER", Xc, conductances(1, 9, 6), None, weight_scale=1e4, kernel_shape=[3, 3],
          group=6, auto_pad="SAME_LOWER", strides=[2, 2])
    check("conv2d pointwise", Xc, conductances(2, 6, 5), RNG.standard_normal(5).astype(f32), weight_scale=1e4,
          kernel_shape=[1, 1])
    check("conv1d SAME_UPPER DAC", RNG.standard_normal((3, 4, 11)).astype(f32), conductances(2, 12, 6), None,
          weight_scale=1e4, kernel_shape=[3], auto_pad="SAME_UPPER", dac_bits=4, input_range=1.5)
    check("conv3d VALID ADC", RNG.standard_normal((1, 2, 5, 4, 6)).astype(f32), conductances(2, 16, 4), None,
          weight_scale=1e4, kernel_shape=[2, 2, 2], auto_pad="VALID", adc_bits=8)

    # Cases aimed at the engine choices: ideal mode goes to onnxruntime's Gemm / Conv (explicit
    # pads, SAME_* resolved per input size, no bias as a null input), the ADC modes of matmul
    # layers with >= 256 rows and of narrow-group convs to the batched MatMul path.
    check("matmul ideal no bias", RNG.standard_normal((3, 50, 33)).astype(f32), conductances(2, 33, 17), None,
          weight_scale=1e4)
    check("matmul many rows ADC overflow edge tiles", RNG.standard_normal((2, 300, 70)).astype(f32),
          conductances(1, 70, 45), b[:1].repeat(45), weight_scale=1e4, g_ref=5e-5, adc_bits=6, dac_bits=7,
          adc_overflow_rate=0.1, tile_shape=[32, 20])
    check("matmul many rows DAC+clamp no ADC", RNG.standard_normal((400, 30)).astype(f32), conductances(2, 30, 9),
          None, weight_scale=1e4, dac_bits=6, input_range=1.0, tile_shape=[8, 4])
    check("conv1d ideal dilated strided", RNG.standard_normal((3, 4, 20)).astype(f32), conductances(2, 12, 6),
          RNG.standard_normal(6).astype(f32), weight_scale=1e4, kernel_shape=[3], dilations=[3], strides=[2],
          pads=[2, 1])
    check("conv2d ideal groups dilation SAME_UPPER", Xc, conductances(2, 8, 9), RNG.standard_normal(9).astype(f32),
          weight_scale=1e4, kernel_shape=[2, 2], group=3, dilations=[2, 1], strides=[2, 2], auto_pad="SAME_UPPER")
    check("conv2d ideal depthwise SAME_LOWER", Xc, conductances(1, 9, 6), None, weight_scale=1e4, g_ref=2e-5,
          kernel_shape=[3, 3], group=6, auto_pad="SAME_LOWER", strides=[2, 2])
    check("conv3d ideal pads", RNG.standard_normal((2, 2, 5, 4, 6)).astype(f32), conductances(2, 16, 4), None,
          weight_scale=1e4, kernel_shape=[2, 2, 2], pads=[1, 0, 1, 0, 1, 2])
    check("conv2d depthwise ADC dilation pads", RNG.standard_normal((3, 6, 12, 10)).astype(f32),
          conductances(2, 9, 12), RNG.standard_normal(12).astype(f32), weight_scale=1e4, kernel_shape=[3, 3],
          group=6, dilations=[2, 1], pads=[2, 1, 1, 0], strides=[1, 2], adc_bits=8, dac_bits=8, tile_shape=[4, 1])
    check("conv3d depthwise ADC", RNG.standard_normal((2, 3, 5, 4, 6)).astype(f32), conductances(2, 8, 3), None,
          weight_scale=1e4, kernel_shape=[2, 2, 2], group=3, adc_bits=7, tile_shape=[5, 0])
    check("conv1d depthwise DAC", RNG.standard_normal((2, 4, 15)).astype(f32), conductances(2, 3, 4), None,
          weight_scale=1e4, kernel_shape=[3], group=4, auto_pad="SAME_UPPER", dac_bits=5)

    # activation = RELU (step 9) on every engine: NCHWc conv and the small GEMM (in the kernel), plain Conv, Gemm,
    # batched MatMul and OpenBLAS (a pass over Y).
    check("matmul ideal RELU", X, G, b, weight_scale=1e4, activation="RELU")
    # Ideal matmul: our small GEMM up to 256 rows (bias and RELU in its epilogue), Gemm above.
    Gw, bw = conductances(2, 70, 45), RNG.standard_normal(45).astype(f32)
    check("matmul ideal 256 rows RELU", RNG.standard_normal((256, 70)).astype(f32), Gw, bw, weight_scale=1e4,
          activation="RELU")
    check("matmul ideal 257 rows RELU", RNG.standard_normal((257, 70)).astype(f32), Gw, bw, weight_scale=1e4,
          activation="RELU")
    check("matmul ADC RELU", X, G, b, weight_scale=1e4, adc_bits=8, dac_bits=8, tile_shape=[16, 10],
          activation="RELU")
    check("matmul many rows ADC RELU", RNG.standard_normal((300, 70)).astype(f32), conductances(2, 70, 45), None,
          weight_scale=1e4, adc_bits=8, tile_shape=[32, 20], activation="RELU")
    check("conv2d ideal RELU", RNG.standard_normal((2, 16, 9, 7)).astype(f32), conductances(2, 144, 20),
          RNG.standard_normal(20).astype(f32), weight_scale=1e4, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          activation="RELU")
    check("conv3d ideal RELU", RNG.standard_normal((2, 2, 5, 4, 6)).astype(f32), conductances(2, 16, 4),
          RNG.standard_normal(4).astype(f32), weight_scale=1e4, kernel_shape=[2, 2, 2], activation="RELU")
    check("conv2d ADC RELU", Xc, conductances(2, 54, 10), RNG.standard_normal(10).astype(f32), weight_scale=1e4,
          kernel_shape=[3, 3], adc_bits=8, dac_bits=8, tile_shape=[20, 4], activation="RELU")
    check("conv2d depthwise ADC RELU", Xc, conductances(2, 9, 6), RNG.standard_normal(6).astype(f32),
          weight_scale=1e4, kernel_shape=[3, 3], group=6, adc_bits=8, activation="RELU")
    os.environ.pop("MEMCC_OPS_ENGINE", None)


# Ideal 2-D convs on onnxruntime's NCHWc kernels (ops/README.md): every variant, padded channel
# counts, groups, strides, dilations, pads. Each case runs with MEMCC_OPS_NCHWC=require (a conv the
# NCHWc kernels do not run is an error) and is compared with the spec and with the plain Conv
# (MEMCC_OPS_NCHWC=0). Shapes valid for MLAS block sizes 8 and 16.
NCHWC_CASES = [
    # name, X shape, N, attributes
    ("NCHW input (C < block)", (2, 3, 12, 11), 10, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("NCHW input strided dilated", (2, 5, 13, 12), 8, dict(kernel_shape=[3, 2], strides=[2, 1], dilations=[1, 2],
                                                            pads=[1, 0, 2, 1])),
    ("blocked", (2, 16, 9, 7), 33, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("blocked C padded", (2, 20, 9, 7), 10, dict(kernel_shape=[3, 3])),
    ("blocked strides dilations", (3, 32, 11, 13), 40, dict(kernel_shape=[3, 3], strides=[2, 2], dilations=[1, 2],
                                                            pads=[1, 2, 0, 1])),
    ("pointwise", (2, 32, 9, 7), 48, dict(kernel_shape=[1, 1])),
    ("pointwise strided", (2, 32, 9, 7), 48, dict(kernel_shape=[1, 1], strides=[2, 2])),
    ("grouped", (2, 64, 8, 8), 64, dict(kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1])),
    ("depthwise", (2, 32, 10, 10), 32, dict(kernel_shape=[3, 3], group=32, pads=[1, 1, 1, 1])),
    ("depthwise C padded strided", (2, 20, 10, 10), 20, dict(kernel_shape=[3, 3], group=20, strides=[2, 2],
                                                             dilations=[2, 1], pads=[1, 2, 0, 1])),
    ("SAME_UPPER", (2, 16, 9, 8), 16, dict(kernel_shape=[2, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    # Batches past one chunk of NCHWc tensors (256 Ki floats per invocation), the last one partial:
    # 7 + 2 images (blocked, block 16) and 3 + 2 (NCHW input, block 16).
    ("blocked, several chunks", (9, 32, 24, 24), 32, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("NCHW input, several chunks", (5, 3, 48, 48), 32, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
]


def nchwc_cases():
    f32 = np.float32
    os.environ["MEMCC_OPS_ENGINE"] = "native"
    print("---- NCHWc")
    os.environ["MEMCC_OPS_NCHWC"] = "require"
    try:
        run(RNG.standard_normal((1, 16, 4, 4)).astype(f32), conductances(2, 144, 16), None, weight_scale=1e4,
            kernel_shape=[3, 3])
    except Exception as exc:  # noqa: BLE001
        if "MEMCC_OPS_NCHWC=require" not in str(exc):
            raise
        print(f"skip NCHWc cases: onnxruntime has no NCHWc kernels here ({str(exc)[-100:]})")
        os.environ.pop("MEMCC_OPS_NCHWC", None)
        return
    for name, x_shape, N, at in NCHWC_CASES:
        X = RNG.standard_normal(x_shape).astype(f32)
        C = x_shape[1]
        K = C // at.get("group", 1) * int(np.prod(at["kernel_shape"]))
        G = conductances(2, K, N)
        for bias in (None, RNG.standard_normal(N).astype(f32)):
            for act in ("NONE", "RELU"):
                attrs = dict(at, weight_scale=1e4, activation=act)
                label = f"nchwc {name}{' bias' if bias is not None else ''}{' RELU' if act == 'RELU' else ''}"
                os.environ["MEMCC_OPS_NCHWC"] = "require"
                got = check(label, X, G, bias, **attrs)
                os.environ["MEMCC_OPS_NCHWC"] = "0"
                plain = run(X, G, bias, **attrs)
                scale = max(1e-30, np.abs(plain).max(initial=0.0))
                assert np.abs(got - plain).max() <= 1e-5 * scale, f"{label}: differs from the plain Conv"
        # Read noise (its variance product on the NCHWc kernels too) and a fixed input range (the
        # encoded X convolved): the same terms as the plain Conv's (one session each: c = 0).
        for extra in (dict(read_noise_std=0.05, noise_seed=3), dict(input_range=2.0, dac_bits=6),
                      dict(input_range=2.0, dac_bits=6, read_noise_std=0.05, noise_seed=3)):
            attrs = dict(at, weight_scale=1e4, **extra)
            label = f"nchwc {name} {sorted(extra)}"
            os.environ["MEMCC_OPS_NCHWC"] = "require"
            got = run(X, G, None, **attrs)
            os.environ["MEMCC_OPS_NCHWC"] = "0"
            plain = run(X, G, None, **attrs)
            scale = max(1e-30, np.abs(plain).max(initial=0.0))
            assert np.abs(got - plain).max() <= 1e-5 * scale, f"{label}: differs from the plain Conv"
            print(f"ok   {label}: as the plain Conv")
    os.environ.pop("MEMCC_OPS_NCHWC", None)
    os.environ.pop("MEMCC_OPS_ENGINE", None)


def main():
    if LIB is None:
        print("usage: smoke_ort.py libmemcc_ops.so")
        return 2
    f32 = np.float32
    for engine in ("native", "blas"):
        numeric_cases(engine)
    nchwc_cases()
    X = RNG.standard_normal((5, 7, 40)).astype(f32)
    G = conductances(2, 40, 24)
    b = RNG.standard_normal(24).astype(f32)
    Xc = RNG.standard_normal((2, 6, 9, 8)).astype(f32)

    expect_error("weight_scale <= 0", "'weight_scale' must be > 0", X, G, b, weight_scale=-1.0)
    expect_error("missing weight_scale", "'weight_scale' is required", X, G, b)
    expect_error("dac_bits range", "'dac_bits' must be 0 or in 2..24", X, G, b, weight_scale=1.0, dac_bits=1)
    expect_error("quantization", "'quantization' must be", X, G, b, weight_scale=1.0, quantization="log")
    expect_error("overflow", "'adc_overflow_rate' must satisfy", X, G, b, weight_scale=1.0, adc_overflow_rate=1.0)
    expect_error("tile_shape", "'tile_shape' must be two values", X, G, b, weight_scale=1.0, tile_shape=[4])
    expect_error("activation", "'activation' must be one of NONE, RELU", X, G, b, weight_scale=1.0,
                 activation="Relu")
    expect_error("conv attr in matmul", "only allowed in conv mode", X, G, b, weight_scale=1.0, strides=[1])
    expect_error("K mismatch", "must equal K", X, conductances(2, 41, 24), b, weight_scale=1.0)
    expect_error("bias length", "'Bias' must have shape", X, G, b[:5], weight_scale=1.0)
    expect_error("G rank", "input 'G' must have shape", X, G[0], b, weight_scale=1.0)
    expect_error("group divides", "must divide the channels", Xc, conductances(2, 54, 10), None, weight_scale=1.0,
                 kernel_shape=[3, 3], group=4)
    expect_error("auto_pad+pads", "'pads' must be absent", Xc, conductances(2, 54, 10), None, weight_scale=1.0,
                 kernel_shape=[3, 3], auto_pad="VALID", pads=[0, 0, 0, 0])
    expect_error("output < 1", "output size along spatial axis", Xc, conductances(2, 6 * 100, 10), None,
                 weight_scale=1.0, kernel_shape=[10, 10])
    print("all smoke checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
