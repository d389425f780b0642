"""memcc.reference: the NumPy oracle of docs/op-spec.md."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from memcc.reference import conv_geometry, linear_quantize, memristive_matmul


def naive_conv(X, W, B=None, strides=None, pads=None, dilations=None, group=1, auto_pad="NOTSET"):
    """Direct ONNX Conv, loops over every output element (float64)."""
    X, W = X.astype(np.float64), W.astype(np.float64)
    n = X.ndim - 2
    ks = W.shape[2:]
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    pads = pads or [0] * (2 * n)
    out, begin = [], []
    for d in range(n):
        size, e = X.shape[2 + d], (ks[d] - 1) * dilations[d] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // strides[d])
            t = max(0, (o - 1) * strides[d] + e - size)
            begin.append(t // 2 if auto_pad == "SAME_UPPER" else t - t // 2)
        else:
            p0, p1 = (0, 0) if auto_pad == "VALID" else (pads[d], pads[n + d])
            o = (size + p0 + p1 - e) // strides[d] + 1
            begin.append(p0)
        out.append(o)
    Bn, C = X.shape[:2]
    N = W.shape[0]
    cg, ng = C // group, N // group
    Y = np.zeros((Bn, N, *out))
    for b, oc in itertools.product(range(Bn), range(N)):
        h = oc // ng
        for p in itertools.product(*[range(o) for o in out]):
            acc = 0.0
            for c in range(cg):
                for off in itertools.product(*[range(k) for k in ks]):
                    idx = [p[d] * strides[d] - begin[d] + off[d] * dilations[d] for d in range(n)]
                    if all(0 <= idx[d] < X.shape[2 + d] for d in range(n)):
                        acc += X[(b, h * cg + c, *idx)] * W[(oc, c, *off)]
            Y[(b, oc, *p)] = acc + (B[oc] if B is not None else 0.0)
    return Y


def as_G(W_KN):
    """Plain weights as an S = 1 'conductance' tensor (D = W, weight_scale 1)."""
    return W_KN.astype(np.float32)[None]


# --------------------------------------------------------------------------------------------
# Quantizer
# --------------------------------------------------------------------------------------------


class TestQuantizer:
    def test_hand_case(self):
        # Q = 3 → c = 2 (2^2 = 4 ≥ 3), b = 3 → Δ = 2^(2+1-3) = 1; levels −4..3.
        out = linear_quantize([0.4, -1.6, 3.0, -2.5], 3)
        np.testing.assert_array_equal(out, [0.0, -2.0, 3.0, -2.0])  # −2.5 → −2 (ties to even)

    def test_ties_to_even(self):
        # Q = 4 → c = 2 exactly (power of two), b = 4 → Δ = 2^(2+1-4) = 0.5
        out = linear_quantize([0.25, 0.75, 1.25, -0.25, 4.0], 4)
        np.testing.assert_array_equal(out, [0.0, 1.0, 1.0, -0.0, 3.5])  # 4.0 → level 8 clamps to 7

    def test_positive_clamps_to_top_level(self):
        # b = 2: levels −2..1; Q = 1 → c = 0, Δ = 2^(0+1-2) = 0.5
        out = linear_quantize([1.0, -1.0, 0.3], 2)
        np.testing.assert_array_equal(out, [0.5, -1.0, 0.5])

    def test_overflow_rate_picks_smaller_range(self):
        vals = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 100.0])
        # q = 0.1, m = 10: t = 10 − 1 − 1 = 8 → Q = 0.9 → c = 0, b = 8 → Δ = 2^-7
        out = linear_quantize(vals, 8, 0.1)
        delta = 2.0**-7
        np.testing.assert_allclose(out[:9], np.round(vals[:9] / delta) * delta)
        assert out[9] == 127 * delta  # the outlier overflows and clamps
        # with q = 0 the outlier sets the range: Q = 100 → c = 7 → Δ = 2^(7+1-8) = 1
        np.testing.assert_array_equal(linear_quantize(vals, 8, 0.0)[:9], [0, 0, 0, 0, 0, 1, 1, 1, 1])

    def test_all_zero(self):
        np.testing.assert_array_equal(linear_quantize([0.0, 0.0, -0.0], 8), [0, 0, 0])

    def test_q_zero_from_overflow_rate(self):
        # Q is the 2nd smallest magnitude (t = 3 − 1 − floor(0.67·3) = 0): 0 → all outputs 0.
        np.testing.assert_array_equal(linear_quantize([0.0, 5.0, 7.0], 4, 0.67), [0, 0, 0])

    def test_small_values(self):
        # Q = 0.3 → c = −1 (2^-1 = 0.5 ≥ 0.3, 2^-2 < 0.3); b = 4 → Δ = 2^(−1+1−4) = 1/16
        out = linear_quantize([0.3, -0.1], 4)
        np.testing.assert_array_equal(out, [5 / 16, -2 / 16])

    @pytest.mark.parametrize("bits,q", [(0, 0.0), (1, 0.0), (25, 0.0), (8, 1.0), (8, -0.1)])
    def test_validation(self, bits, q):
        with pytest.raises(ValueError):
            linear_quantize([1.0], bits, q)


# --------------------------------------------------------------------------------------------
# Matmul mode
# --------------------------------------------------------------------------------------------


class TestMatmul:
    @pytest.mark.parametrize("tile", [(0, 0), (3, 0), (0, 2), (4, 3), (1, 1), (100, 100)])
    @pytest.mark.parametrize("scheme", ["double", "single"])
    def test_ideal_equals_xw_plus_b(self, gen, tile, scheme):
        X = gen.standard_normal((2, 3, 10)).astype(np.float32)
        W = gen.standard_normal((10, 7))
        b = gen.standard_normal(7).astype(np.float32)
        if scheme == "double":
            G = np.stack([np.maximum(W, 0), np.maximum(-W, 0)]) * 1e-3 + 1e-5
            attrs = dict(weight_scale=1e3)
        else:
            G = (W * 1e-3 + 0.5e-2)[None]
            attrs = dict(weight_scale=1e3, g_ref=0.5e-2)
        Y = memristive_matmul(X, G, b, tile_shape=list(tile), **attrs)
        assert Y.dtype == np.float32 and Y.shape == (2, 3, 7)
        np.testing.assert_allclose(Y, X.astype(np.float64) @ W + b, rtol=1e-5, atol=1e-5)

    def test_input_range_and_voltage_do_not_change_ideal(self, gen):
        X = gen.standard_normal((5, 6)).astype(np.float32)
        W = gen.standard_normal((6, 3))
        Y = memristive_matmul(X, as_G(W), weight_scale=1.0, input_range=10.0, max_input_voltage=0.1)
        np.testing.assert_allclose(Y, X @ W, rtol=1e-5, atol=1e-5)

    def test_input_range_clamps(self):
        X = np.array([[4.0, -0.5]], dtype=np.float32)
        W = np.eye(2)
        Y = memristive_matmul(X, as_G(W), weight_scale=1.0, input_range=2.0)
        np.testing.assert_allclose(Y, [[2.0, -0.5]])

    def test_rank1_and_zero_rows(self, gen):
        W = gen.standard_normal((4, 3))
        x = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
        np.testing.assert_allclose(memristive_matmul(x, as_G(W), weight_scale=1.0), x @ W, rtol=1e-6)
        b = np.arange(3, dtype=np.float32)
        Y = memristive_matmul(np.zeros((2, 4), np.float32), as_G(W), b, weight_scale=1.0)
        np.testing.assert_array_equal(Y, [b, b])  # s = 0 → y = Bias

    def test_dac(self):
        # dac_bits 2: L = 1, u ∈ {−1, 0, 1}. x = [1, 0.4, −0.6] → s = 1, u = [1, 0, −1].
        X = np.array([[1.0, 0.4, -0.6]], dtype=np.float32)
        Y = memristive_matmul(X, as_G(np.ones((3, 1))), weight_scale=1.0, dac_bits=2)
        np.testing.assert_allclose(Y, [[0.0]], atol=1e-7)

    def test_adc_per_tile_changes_result(self):
        # Two row tiles of one row each; the ADC (2 bits, levels −2..1) quantizes each tile's
        # read separately. Values are exact binary fractions (no rounding-boundary ambiguity).
        X = np.array([[1.0, 0.25]], dtype=np.float32)
        W = np.array([[1.0, 0.25], [1.0, 1.0]])
        attrs = dict(weight_scale=1.0, max_input_voltage=1.0, adc_bits=2)
        # Tile 0 read I = [1, 0.25]: Q = 1 → c = 0 → Δ = 0.5 → [0.5 (level 2 clamps to 1), 0 (tie → even)]
        # Tile 1 read I = [0.25, 0.25]: Q = 0.25 → c = −2 → Δ = 0.125 → [0.125, 0.125] (clamped)
        Y = memristive_matmul(X, as_G(W), tile_shape=[1, 0], **attrs)
        np.testing.assert_allclose(Y, [[0.625, 0.125]])
        # Untiled: one read I = [1.25, 0.5]: Q = 1.25 → c = 1 → Δ = 1 → [1, 0 (0.5 ties to even)]
        Y = memristive_matmul(X, as_G(W), **attrs)
        np.testing.assert_allclose(Y, [[1.0, 0.0]])
        # Column tiles of one column: [1.25] → Δ 1 → 1; [0.5] → Δ 0.25 → level 2 clamps → 0.25
        Y = memristive_matmul(X, as_G(W), tile_shape=[0, 1], **attrs)
        np.testing.assert_allclose(Y, [[1.0, 0.25]])

    def test_adc_error_shrinks_with_bits(self, gen):
        X = gen.standard_normal((16, 32)).astype(np.float32)
        W = gen.standard_normal((32, 8))
        exact = X @ W
        errs = [
            np.abs(memristive_matmul(X, as_G(W), weight_scale=1.0, adc_bits=b, dac_bits=b,
                                     tile_shape=[8, 4]) - exact).mean()
            for b in (3, 6, 12)
        ]
        assert errs[0] > errs[1] > errs[2] > 0

    def test_scales_back_with_weight_scale_and_s(self):
        # y = a · weight_scale · s / V_max
        X = np.array([[2.0, -4.0]], dtype=np.float32)
        G = np.array([[[3e-3], [1e-3]], [[1e-3], [2e-3]]])  # D = [[2e-3], [-1e-3]]
        Y = memristive_matmul(X, G, weight_scale=500.0)  # W = [[1], [-0.5]]
        np.testing.assert_allclose(Y, [[4.0]], rtol=1e-6)

    def test_empty_bias_means_none(self, gen):
        W = gen.standard_normal((3, 2))
        X = gen.standard_normal((1, 3)).astype(np.float32)
        Y = memristive_matmul(X, as_G(W), np.zeros(0, np.float32), weight_scale=1.0)
        np.testing.assert_allclose(Y, X @ W, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Conv mode
# --------------------------------------------------------------------------------------------


CONV_CASES = [
    dict(dims=1, C=3, N=4, ks=[3]),
    dict(dims=1, C=4, N=4, ks=[2], strides=[2], pads=[1, 0], dilations=[2]),
    dict(dims=2, C=2, N=3, ks=[3, 3]),
    dict(dims=2, C=4, N=6, ks=[3, 2], group=2, strides=[2, 1], pads=[1, 0, 0, 1]),
    dict(dims=2, C=3, N=6, ks=[3, 3], group=3, dilations=[2, 1], pads=[2, 1, 2, 1]),  # depthwise ×2
    dict(dims=2, C=2, N=2, ks=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(dims=2, C=2, N=2, ks=[2, 4], strides=[3, 2], auto_pad="SAME_LOWER"),
    dict(dims=2, C=2, N=3, ks=[3, 3], auto_pad="VALID", strides=[2, 1]),
    dict(dims=3, C=2, N=2, ks=[2, 2, 3], pads=[1, 0, 1, 0, 1, 1]),
    dict(dims=3, C=2, N=2, ks=[2, 2, 2], group=2, strides=[1, 2, 1], auto_pad="SAME_UPPER"),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c['dims']}d-" + "-".join(f"{k}" for k in c if k not in ("dims", "C", "N", "ks")))
@pytest.mark.parametrize("tile", [(0, 0), (5, 1)])
def test_conv_mode_vs_naive(case, tile, gen):
    n, C, N, ks = case["dims"], case["C"], case["N"], case["ks"]
    group = case.get("group", 1)
    X = gen.standard_normal((2, C) + (6, 5, 4)[:n]).astype(np.float32)
    W = gen.standard_normal((N, C // group, *ks)).astype(np.float32)
    B = gen.standard_normal(N).astype(np.float32)
    attrs = {k: case[k] for k in ("strides", "pads", "dilations", "auto_pad") if k in case}
    if group != 1:
        attrs["group"] = group
    D = W.reshape(N, -1).T
    Y = memristive_matmul(X, as_G(D), B, weight_scale=1.0, kernel_shape=ks, tile_shape=list(tile), **attrs)
    expected = naive_conv(X, W, B, case.get("strides"), case.get("pads"), case.get("dilations"),
                          group, case.get("auto_pad", "NOTSET"))
    assert Y.shape == expected.shape
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-5)


def test_conv_mode_adc_per_group_and_position(gen):
    """With an ADC, each (image, position, group) input vector is one read per tile."""
    X = gen.standard_normal((1, 2, 3, 3)).astype(np.float32)
    W = gen.standard_normal((4, 1, 2, 2)).astype(np.float32)
    D = W.reshape(4, -1).T
    attrs = dict(weight_scale=1.0, kernel_shape=[2, 2], group=2, adc_bits=4, dac_bits=5)
    Y = memristive_matmul(X, as_G(D), **attrs)
    # Rebuild by hand: per group, per position, a matmul-mode call on the patch vector.
    for h in range(2):
        for i, j in itertools.product(range(2), range(2)):
            patch = X[0, h, i : i + 2, j : j + 2].reshape(1, 4)
            y = memristive_matmul(patch, as_G(D[:, 2 * h : 2 * h + 2]), weight_scale=1.0,
                                  adc_bits=4, dac_bits=5)
            np.testing.assert_allclose(Y[0, 2 * h : 2 * h + 2, i, j], y[0], rtol=1e-6)


def test_conv_geometry():
    assert conv_geometry([7], [3], [2], [1, 1]) == ((4,), (1,), (1,))
    assert conv_geometry([5], [2], [2], auto_pad="SAME_UPPER") == ((3,), (0,), (1,))
    assert conv_geometry([5], [2], [2], auto_pad="SAME_LOWER") == ((3,), (1,), (0,))
    assert conv_geometry([5], [3], [1], [4, 4], auto_pad="VALID") == ((3,), (0,), (0,))
    with pytest.raises(ValueError, match="output size"):
        conv_geometry([2], [3])


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

X2 = np.ones((2, 3), np.float32)
G2 = np.ones((2, 3, 4), np.float32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(), "weight_scale"),
        (dict(weight_scale=0.0), "weight_scale"),
        (dict(weight_scale=float("inf")), "weight_scale"),
        (dict(weight_scale=1.0, g_ref=float("nan")), "g_ref"),
        (dict(weight_scale=1.0, tile_shape=[1]), "tile_shape"),
        (dict(weight_scale=1.0, tile_shape=[-1, 0]), "tile_shape"),
        (dict(weight_scale=1.0, max_input_voltage=0.0), "max_input_voltage"),
        (dict(weight_scale=1.0, input_range=-1.0), "input_range"),
        (dict(weight_scale=1.0, dac_bits=1), "dac_bits"),
        (dict(weight_scale=1.0, adc_bits=25), "adc_bits"),
        (dict(weight_scale=1.0, adc_overflow_rate=1.0), "adc_overflow_rate"),
        (dict(weight_scale=1.0, quantization="log"), "quantization"),
        (dict(weight_scale=1.0, strides=[1]), "conv mode"),
        (dict(weight_scale=1.0, colour=3), "unknown"),
    ],
)
def test_attribute_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memristive_matmul(X2, G2, **kwargs)


@pytest.mark.parametrize(
    "X,G,bias,kwargs,match",
    [
        (X2, np.ones((3, 3, 4)), None, {}, "S"),
        (X2, np.ones((3, 4)), None, {}, "S"),
        (np.ones((2, 5)), G2, None, {}, "K"),
        (X2, G2, np.ones(3), {}, "Bias"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 17, 4)), None, dict(kernel_shape=[3, 3]), "K"),
        (np.ones((1, 2, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3]), "rank"),
        (np.ones((1, 3, 4, 4)), np.ones((2, 9, 4)), None, dict(kernel_shape=[3, 3], group=2), "group"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 9, 3)), None, dict(kernel_shape=[3, 3], group=2), "group"),
        (np.ones((1, 2, 2, 2)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3]), "output size"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3], strides=[1]), "strides"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3], pads=[1, 1, 1, -1]), "pads"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3], dilations=[0, 1]), "dilations"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 3], auto_pad="SAME"), "auto_pad"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None,
         dict(kernel_shape=[3, 3], auto_pad="VALID", pads=[0, 0, 0, 0]), "pads"),
        (np.ones((1, 2, 4, 4, 4, 4)), np.ones((2, 32, 4)), None, dict(kernel_shape=[2, 2, 2, 2]), "kernel_shape"),
        (np.ones((1, 2, 4, 4)), np.ones((2, 18, 4)), None, dict(kernel_shape=[3, 0]), "kernel_shape"),
    ],
)
def test_input_validation(X, G, bias, kwargs, match):
    with pytest.raises(ValueError, match=match):
        memristive_matmul(X, G, bias, weight_scale=1.0, **kwargs)


def test_reference_evaluator_op(gen):
    """The OpRun works inside onnx.reference.ReferenceEvaluator, bias absent or present."""
    from onnx import TensorProto, helper, numpy_helper

    from memcc.reference import evaluator

    W = gen.standard_normal((4, 3)).astype(np.float32)
    node = helper.make_node("MemristiveMatMul", ["x", "G", "", ], ["y"], domain="ai.memcc",
                            weight_scale=2.0, tile_shape=[2, 0])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(W[None], "G")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])
    x = gen.standard_normal((2, 4)).astype(np.float32)
    (y,) = evaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(y, 2.0 * x @ W, rtol=1e-5)
