"""The `max_pool` attribute (docs/op-spec.md, step 10) and `FusePool`.

- the reference: pooled output == the unpooled output pooled by hand (1-D/2-D/3-D, windows that
  do not divide the outputs, the identity window, the ADC, read noise), and its errors;
- the C++ library against the reference on conv layers in every engine's mode (ideal, including
  the NCHWc kernels, ADC, DAC with a fixed range, read noise, groups, 1-D and 3-D), and its errors;
- the pass: Conv → Relu → MaxPool becomes one node, the compiled model computes what the original
  does, and every MaxPool the op cannot reproduce stays.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import onnx
import pytest
from conftest import assert_matches, library_available, run_reference
from onnx import TensorProto, helper

import memcc
from memcc.passes import CompileContext, FusePool, Pipeline, default_passes
from memcc.reference import memristive_matmul
from models import init, make_model, randn, rng, vinfo
from test_runtime_effects import BASE, close, lib_session, noise_allowance, op_model

# ------------------------------------------------------------------------------- helpers


def pool_by_hand(y, window):
    """Max over each whole window of y [B, N, out...], one window at a time (NaN propagates)."""
    y = np.asarray(y)
    pooled = [o // m for o, m in zip(y.shape[2:], window)]
    out = np.empty(y.shape[:2] + tuple(pooled), y.dtype)
    for t in np.ndindex(*pooled):
        box = tuple(slice(t[d] * window[d], (t[d] + 1) * window[d]) for d in range(len(window)))
        out[(...,) + t] = np.max(y[(slice(None), slice(None)) + box].reshape(y.shape[:2] + (-1,)), axis=-1)
    return out


def conv_case(g, x_shape, N, *, kernel_shape, group=1, S=2, **attrs):
    """x, G, bias and the attributes of a conv layer with random conductances."""
    C = x_shape[1]
    K = (C // group) * int(np.prod(kernel_shape))
    G = g.uniform(1e-6, 1e-4, (S, K, N))
    a = dict(BASE, kernel_shape=list(kernel_shape), **attrs)
    if group != 1:
        a["group"] = group
    if S == 1:
        a["g_ref"] = 3e-5
    return g.standard_normal(x_shape).astype(np.float32), G, g.standard_normal(N), a


def without_pool(attrs):
    return {k: v for k, v in attrs.items() if k != "max_pool"}


def quantized(attrs) -> bool:
    return bool(attrs.get("adc_bits") or attrs.get("dac_bits"))


def assert_lib_agrees(got, want, attrs, extra=0.0):
    if quantized(attrs):
        # A value within rounding of an ADC/DAC level may land one level away (spec); the max of a
        # window then moves by at most that level.
        off = np.abs(got - want) > 2e-5 * np.abs(want).max() + extra
        assert off.mean() < 0.02, f"{off.mean():.1%} of the outputs differ"
    else:
        close(got, want, extra=extra)

# ------------------------------------------------------------------------------- reference


REFERENCE_CASES = {
    "1d": dict(x=(2, 3, 11), N=4, kernel_shape=[3], max_pool=[3]),  # out 9 → 3
    "1d-trailing": dict(x=(2, 3, 11), N=4, kernel_shape=[3], max_pool=[4]),  # out 9 → 2, one dropped
    "2d": dict(x=(2, 3, 8, 8), N=5, kernel_shape=[3, 3], pads=[1, 1, 1, 1], max_pool=[2, 2]),
    "2d-trailing": dict(x=(2, 3, 7, 9), N=5, kernel_shape=[3, 3], pads=[1, 1, 1, 1], max_pool=[2, 4]),
    "2d-identity": dict(x=(2, 3, 7, 9), N=5, kernel_shape=[3, 3], max_pool=[1, 1]),
    "2d-relu-adc": dict(x=(2, 4, 9, 9), N=6, kernel_shape=[3, 3], max_pool=[3, 2], activation="RELU",
                        tile_shape=[10, 4], dac_bits=6, adc_bits=6),
    "2d-grouped-strided": dict(x=(1, 4, 12, 11), N=6, kernel_shape=[2, 3], group=2, strides=[2, 1],
                               max_pool=[2, 3]),
    "3d": dict(x=(1, 2, 5, 6, 7), N=3, kernel_shape=[2, 2, 2], max_pool=[2, 1, 3]),
    "noise": dict(x=(2, 3, 8, 8), N=5, kernel_shape=[3, 3], max_pool=[2, 2], read_noise_std=0.1,
                  noise_seed=7),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_reference_pools_the_unpooled_outputs(name):
    spec = dict(REFERENCE_CASES[name])
    g = rng(len(name))
    x, G, b, a = conv_case(g, spec.pop("x"), spec.pop("N"), **spec)
    plain = memristive_matmul(x, G, b, **without_pool(a))
    pooled = memristive_matmul(x, G, b, **a)
    want = pool_by_hand(plain, a["max_pool"])
    assert pooled.dtype == np.float32 and pooled.shape == want.shape
    assert pooled.shape[2:] == tuple(o // m for o, m in zip(plain.shape[2:], a["max_pool"]))
    # Read noise is drawn for the unpooled positions (q counts them), so pooling the noisy
    # unpooled output gives exactly the pooled one.
    np.testing.assert_array_equal(pooled, want)
    if a["max_pool"] == [1, 1]:
        np.testing.assert_array_equal(pooled, plain)
    else:
        assert not np.array_equal(pooled, plain[(...,) + tuple(slice(0, s) for s in pooled.shape[2:])])


def test_reference_nan_in_a_window_gives_nan():
    g = rng(3)
    x, G, b, a = conv_case(g, (1, 2, 6, 6), 3, kernel_shape=[1, 1], max_pool=[2, 3])
    x[0, 0, 1, 4] = np.nan  # only output position (1, 4) sees it: window (0, 1)
    y = memristive_matmul(x, G, b, **a)
    assert np.isnan(y[0, :, 0, 1]).all()
    assert not np.isnan(np.delete(y.reshape(1, 3, -1), 1, axis=-1)).any()


X1 = np.ones((1, 2, 5, 5), np.float32)
G1 = np.full((2, 18, 3), 1e-5)
BAD = [
    (np.ones((2, 18), np.float32), dict(max_pool=[2, 2]), "only allowed in conv mode"),
    (X1, dict(kernel_shape=[3, 3], max_pool=[2]), "'max_pool' must have 2 values"),
    (X1, dict(kernel_shape=[3, 3], max_pool=[2, 2, 2]), "'max_pool' must have 2 values"),
    (X1, dict(kernel_shape=[3, 3], max_pool=[2, 0]), "'max_pool' must be values >= 1"),
    (X1, dict(kernel_shape=[3, 3], max_pool=[-1, 2]), "'max_pool' must be values >= 1"),
    (X1, dict(kernel_shape=[3, 3], max_pool=[4, 1]), r"max_pool \[4, 1\] is larger than the outputs \[3, 3\]"),
    (X1, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], max_pool=[1, 6]), "larger than the outputs"),
]


@pytest.mark.parametrize("x,attrs,match", BAD)
def test_bad_max_pool(x, attrs, match):
    with pytest.raises(ValueError, match=match):
        memristive_matmul(x, G1, **BASE, **attrs)
    if library_available():
        model = op_model(G1, **BASE, **attrs)
        with pytest.raises(Exception, match=match):
            lib_session(model).run(None, {"x": x})


def test_max_pool_must_be_ints():
    with pytest.raises(ValueError, match="'max_pool' must be a list of ints"):
        memristive_matmul(X1, G1, **BASE, kernel_shape=[3, 3], max_pool="2x2")

# ------------------------------------------------------------------------------- library vs reference


NCHWC = dict(x=(4, 16, 12, 12), N=32, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
LIBRARY_CASES = {
    # Ideal, enough channels and images for the library's NCHWc convolutions.
    "nchwc-2x2": dict(NCHWC, max_pool=[2, 2]),
    "nchwc-3x3": dict(NCHWC, max_pool=[3, 3]),
    "nchwc-relu-2x2": dict(NCHWC, max_pool=[2, 2], activation="RELU"),
    "nchwc-relu-3x3": dict(NCHWC, max_pool=[3, 3], activation="RELU"),
    "nchwc-5x5-trailing": dict(NCHWC, max_pool=[5, 5], activation="RELU"),
    "nchwc-odd": dict(NCHWC, x=(3, 16, 13, 11), max_pool=[2, 2]),
    "nchwc-odd-relu": dict(NCHWC, x=(3, 16, 13, 11), max_pool=[2, 2], activation="RELU"),
    "nchwc-identity": dict(NCHWC, max_pool=[1, 1]),
    "nchwc-wide-strided": dict(x=(2, 32, 15, 15), N=64, kernel_shape=[3, 3], strides=[2, 2], max_pool=[3, 2]),
    # Ideal, small layers (the plain onnxruntime Conv path).
    "small": dict(x=(2, 3, 7, 9), N=5, kernel_shape=[3, 3], pads=[1, 1, 1, 1], max_pool=[2, 3]),
    "small-relu": dict(x=(2, 3, 7, 9), N=5, kernel_shape=[3, 3], max_pool=[2, 2], activation="RELU"),
    "single-column": dict(x=(2, 4, 8, 8), N=6, kernel_shape=[3, 3], S=1, max_pool=[2, 2]),
    "grouped": dict(x=(2, 8, 9, 9), N=12, kernel_shape=[3, 3], group=4, auto_pad="SAME_UPPER", max_pool=[2, 2]),
    "depthwise": dict(x=(2, 16, 10, 10), N=16, kernel_shape=[3, 3], group=16, pads=[1, 1, 1, 1],
                      max_pool=[2, 2], activation="RELU"),
    "1d": dict(x=(4, 5, 40), N=7, kernel_shape=[5], strides=[3], max_pool=[5]),
    "1d-relu": dict(x=(4, 16, 30), N=16, kernel_shape=[3], pads=[1, 1], max_pool=[4], activation="RELU"),
    "3d": dict(x=(1, 3, 6, 7, 8), N=5, kernel_shape=[2, 3, 3], pads=[0, 1, 1, 1, 1, 0], max_pool=[2, 2, 3]),
    # ADC and DAC.
    "adc-128": dict(NCHWC, max_pool=[2, 2], tile_shape=[128, 128], dac_bits=8, adc_bits=8),
    "adc-128-relu-odd": dict(NCHWC, x=(3, 16, 13, 11), max_pool=[2, 2], activation="RELU",
                             tile_shape=[128, 128], dac_bits=8, adc_bits=8),
    "adc-small-tiles": dict(x=(2, 8, 10, 10), N=12, kernel_shape=[3, 3], max_pool=[3, 3],
                            tile_shape=[16, 5], dac_bits=8, adc_bits=8),
    "adc-grouped": dict(x=(2, 8, 9, 9), N=12, kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1],
                        max_pool=[2, 2], tile_shape=[16, 4], dac_bits=6, adc_bits=8),
    "adc-1d": dict(x=(3, 6, 25), N=10, kernel_shape=[3], max_pool=[2], tile_shape=[8, 8], dac_bits=8, adc_bits=8),
    "range-dac": dict(x=(2, 8, 10, 10), N=12, kernel_shape=[3, 3], max_pool=[2, 2], input_range=2.0,
                      dac_bits=6, tile_shape=[9, 0]),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_CASES))
def test_library_matches_reference(name):
    spec = dict(LIBRARY_CASES[name])
    g = rng(sum(map(ord, name)))
    x, G, b, a = conv_case(g, spec.pop("x"), spec.pop("N"), **spec)
    sess = lib_session(op_model(G, bias=b, **a))
    got = sess.run(None, {"x": x})[0]
    want = memristive_matmul(x, G, b, **a)
    assert got.shape == want.shape
    assert_lib_agrees(got, want, a)
    # Pooling the library's own unpooled output gives its pooled one.
    plain = lib_session(op_model(G, bias=b, **without_pool(a))).run(None, {"x": x})[0]
    assert_lib_agrees(got, pool_by_hand(plain, a["max_pool"]), a)


def _run_on(G, b, attrs, x):
    return lib_session(op_model(G, bias=b, **attrs)).run(None, {"x": x})[0]


@pytest.mark.parametrize("engine", ["require", "0"])
@pytest.mark.parametrize("name", sorted(n for n in LIBRARY_CASES if n.startswith("nchwc")))
def test_nchwc_and_plain_conv_pool_alike(name, engine, monkeypatch):
    # MEMCC_OPS_NCHWC (ops/README.md): "require" makes these layers run on onnxruntime's NCHWc
    # kernels or fail, "0" keeps them on the plain Conv; both must pool like the reference.
    monkeypatch.setenv("MEMCC_OPS_NCHWC", engine)
    spec = dict(LIBRARY_CASES[name])
    g = rng(sum(map(ord, name)))
    x, G, b, a = conv_case(g, spec.pop("x"), spec.pop("N"), **spec)
    try:
        got = _run_on(G, b, a, x)
    except Exception as exc:
        if engine != "require" or "MEMCC_OPS_NCHWC=require" not in str(exc):
            raise
        try:  # the same layer unpooled: if that cannot run either, this CPU has no NCHWc kernels
            _run_on(G, b, without_pool(a), x)
        except Exception:
            pytest.skip("onnxruntime has no NCHWc kernels on this CPU")
        raise
    close(got, memristive_matmul(x, G, b, **a))


NOISE_CASES = {
    "ideal": dict(x=(2, 8, 9, 9), N=12, kernel_shape=[3, 3], pads=[1, 1, 1, 1], max_pool=[2, 2]),
    "nchwc": dict(NCHWC, max_pool=[3, 3], activation="RELU"),
    "adc": dict(x=(2, 8, 9, 9), N=12, kernel_shape=[3, 3], max_pool=[2, 3], tile_shape=[16, 5],
                dac_bits=8, adc_bits=8),
    "grouped-1d": dict(x=(3, 6, 20), N=9, kernel_shape=[3], group=3, max_pool=[3]),
}


@pytest.mark.parametrize("name", sorted(NOISE_CASES))
def test_library_read_noise_matches_reference(name):
    spec = dict(NOISE_CASES[name])
    g = rng(sum(map(ord, name)) + 1)
    x, G, b, a = conv_case(g, spec.pop("x"), spec.pop("N"), read_noise_std=0.05, noise_seed=11, **spec)
    sess = lib_session(op_model(G, bias=b, **a))
    quiet = memristive_matmul(x, G, b, **without_pool(dict(a, read_noise_std=0.0)))
    runs = []
    for c in range(2):  # every run is a new execution: new noise, the same counters as the reference
        got = sess.run(None, {"x": x})[0]
        noisy = memristive_matmul(x, G, b, execution=c, **without_pool(a))
        want = memristive_matmul(x, G, b, execution=c, **a)
        np.testing.assert_array_equal(want, pool_by_hand(noisy, a["max_pool"]))
        # |max a - max b| <= max |a - b|: the allowance of a window is its largest.
        extra = pool_by_hand(noise_allowance(noisy.astype(np.float64) - quiet), a["max_pool"])
        assert_lib_agrees(got, want, a, extra=extra)
        runs.append(got)
    assert not np.array_equal(runs[0], runs[1])

# ------------------------------------------------------------------------------- the pass


def op_types(model):
    return [n.op_type for n in model.graph.node]


def layer_attr(model, name):
    out = []
    for n in model.graph.node:
        if n.op_type == "MemristiveMatMul":
            a = next((a for a in n.attribute if a.name == name), None)
            out.append(None if a is None else helper.get_attribute_value(a))
    return [list(v) if isinstance(v, list) else (v.decode() if isinstance(v, bytes) else v) for v in out]


def with_head(nodes, inits, last, g, *, x_shape=(2, 3, 8, 8), outputs=()):
    """Append Flatten → Gemm(5) to `nodes` ending in `last`; the Gemm's K from shape inference."""
    probe = helper.make_model(
        helper.make_graph(nodes, "probe", [vinfo("x", list(x_shape))], [vinfo(last, len(x_shape))], inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
    dims = next(v for v in inferred.graph.output if v.name == last).type.tensor_type.shape.dim
    K = int(np.prod([d.dim_value for d in dims[1:]]))
    nodes = nodes + [
        helper.make_node("Flatten", [last], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W3", "B3"], ["y"], name="fc", transB=1),
    ]
    inits = inits + [init(randn(g, 5, K, scale=0.2), "W3"), init(randn(g, 5, scale=0.1), "B3")]
    model = make_model(nodes, [vinfo("x", ["batch", *x_shape[1:]])], [vinfo("y", ["batch", 5]), *outputs], inits)
    return model, {"x": randn(g, *x_shape)}


def cnn(pool2=None, *, pool2_outputs=("p2",), extra_nodes=(), extra_outputs=()):
    """Conv → Relu → MaxPool(2x2, s2) → Conv → MaxPool(pool2) → Flatten → Gemm."""
    g = rng(4)
    pool2 = dict(kernel_shape=[2, 2], strides=[2, 2]) if pool2 is None else pool2
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "W2", "B2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c2"], list(pool2_outputs), name="pool2", **pool2),
        *extra_nodes,
    ]
    inits = [
        init(randn(g, 8, 3, 3, 3, scale=0.3), "W1"),
        init(randn(g, 8, scale=0.1), "B1"),
        init(randn(g, 16, 8, 3, 3, scale=0.2), "W2"),
        init(randn(g, 16, scale=0.1), "B2"),
    ]
    return with_head(nodes, inits, "p2", g, outputs=extra_outputs)


def test_default_pipeline_runs_fuse_pool_after_fuse_activation():
    names = Pipeline(default_passes()).names()
    assert names[names.index("fuse_activation") + 1] == "fuse_pool"
    assert isinstance(memcc.passes.FusePool(), FusePool)


def test_conv_relu_maxpool_becomes_one_node():
    model, feeds = cnn()
    mem, report = memcc.compiler.compile_with_report(model)
    assert "fuse_pool" in report.passes
    assert op_types(mem) == ["MemristiveMatMul", "MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [[2, 2], [2, 2], None]
    assert layer_attr(mem, "activation") == ["RELU", None, None]
    # the nodes write the MaxPools' outputs; the unpooled values are gone from the graph
    assert [n.output[0] for n in mem.graph.node[:2]] == ["p1", "p2"]
    produced = {o for n in mem.graph.node for o in n.output}
    assert {"c1", "r1", "c2"}.isdisjoint(produced | {v.name for v in mem.graph.value_info})
    assert_matches(mem, model, feeds)


def test_fusion_changes_nothing_in_adc_mode():
    model, feeds = cnn()
    options = dict(tile=(16, 8), dac_bits=8, adc_bits=8)
    fused = memcc.compile(model, **options)
    unfused = memcc.compile(model, passes=Pipeline(default_passes()).remove("fuse_pool"), **options)
    assert "MaxPool" not in op_types(fused) and op_types(unfused).count("MaxPool") == 2
    want = run_reference(unfused, feeds)[0]
    np.testing.assert_array_equal(run_reference(fused, feeds)[0], want)
    if library_available():
        got = lib_session(fused).run(None, feeds)[0]
        close(got, lib_session(unfused).run(None, feeds)[0], rtol=1e-4)
        close(got, want, rtol=2e-2)  # ADC level flips move the classifier's sums a little at most


def test_pass_can_be_removed():
    model, feeds = cnn()
    mem = memcc.compile(model, passes=Pipeline(default_passes()).remove("fuse_pool"))
    assert op_types(mem).count("MaxPool") == 2
    assert layer_attr(mem, "max_pool") == [None, None, None]
    assert_matches(mem, model, feeds)


def test_without_fuse_activation_the_relu_blocks_the_first_pool():
    model, feeds = cnn()
    mem = memcc.compile(model, passes=Pipeline(default_passes()).remove("fuse_activation"))
    assert op_types(mem) == ["MemristiveMatMul", "Relu", "MaxPool", "MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [None, [2, 2], None]
    assert_matches(mem, model, feeds)


FUSED = {
    "no-indices-name": (dict(kernel_shape=[2, 2], strides=[2, 2], storage_order=1), ("p2", ""), [2, 2]),
    "window-1-no-strides": (dict(kernel_shape=[1, 1]), ("p2",), [1, 1]),
    "valid-3x3-trailing": (dict(kernel_shape=[3, 3], strides=[3, 3], auto_pad="VALID"), ("p2",), [3, 3]),
    "explicit-defaults": (dict(kernel_shape=[2, 1], strides=[2, 1], pads=[0, 0, 0, 0], dilations=[1, 1],
                               ceil_mode=0, auto_pad="NOTSET"), ("p2",), [2, 1]),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_pools_the_op_reproduces_are_fused(name):
    pool2, outs, window = FUSED[name]
    model, feeds = cnn(pool2, pool2_outputs=outs)
    mem = memcc.compile(model)
    assert "MaxPool" not in op_types(mem)
    assert layer_attr(mem, "max_pool") == [[2, 2], window, None]
    assert_matches(mem, model, feeds)


def test_one_dimensional_conv_and_pool():
    g = rng(6)
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[3], strides=[3]),
    ]
    model, feeds = with_head(nodes, [init(randn(g, 16, 4, 3, scale=0.3), "W1")], "p1", g, x_shape=(3, 4, 20))
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [[3], None]
    assert_matches(mem, model, feeds)


I64 = TensorProto.INT64
KEPT = {
    "pads": dict(pool2=dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])),
    "overlapping": dict(pool2=dict(kernel_shape=[2, 2], strides=[1, 1])),
    "strides-absent": dict(pool2=dict(kernel_shape=[2, 2])),
    "strides-differ-per-axis": dict(pool2=dict(kernel_shape=[2, 2], strides=[2, 1])),
    "ceil-mode": dict(pool2=dict(kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1)),
    "same-upper": dict(pool2=dict(kernel_shape=[3, 3], strides=[3, 3], auto_pad="SAME_UPPER")),
    "dilated": dict(pool2=dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2])),
    "indices-used": dict(pool2_outputs=("p2", "idx"), extra_outputs=(vinfo("idx", 4, I64),)),
    "conv-output-read-twice": dict(extra_nodes=(helper.make_node("Sigmoid", ["c2"], ["s"], name="sig"),),
                                   extra_outputs=(vinfo("s", 4),)),
    "conv-output-is-graph-output": dict(extra_outputs=(vinfo("c2", 4),)),
}


@pytest.mark.parametrize("name", sorted(KEPT))
def test_pools_the_op_cannot_reproduce_stay(name):
    model, feeds = cnn(**KEPT[name])
    mem = memcc.compile(model)
    assert op_types(mem).count("MaxPool") == 1  # the second; the first is still fused
    assert layer_attr(mem, "max_pool") == [[2, 2], None, None]
    assert_matches(mem, model, feeds)


def test_pool_after_another_node_or_pool_stays():
    # conv → Sigmoid → MaxPool (not directly after the layer), conv → MaxPool → MaxPool (the layer
    # pools once: the second MaxPool reads a pooled output).
    g = rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s1"], name="sig"),
        helper.make_node("MaxPool", ["s1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "W2"], ["c2"], name="conv2"),
        helper.make_node("MaxPool", ["c2"], ["p2"], name="pool2", kernel_shape=[1, 1]),
        helper.make_node("MaxPool", ["p2"], ["p3"], name="pool3", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [init(randn(g, 8, 3, 3, 3, scale=0.3), "W1"), init(randn(g, 8, 8, 1, 1, scale=0.3), "W2")]
    model, feeds = with_head(nodes, inits, "p3", g)
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul", "Sigmoid", "MaxPool", "MemristiveMatMul", "MaxPool",
                             "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [None, [1, 1], None]
    assert_matches(mem, model, feeds)


def test_a_second_run_does_not_pool_a_pooled_layer_again():
    # Conv → MaxPool → MaxPool with the pass twice: the second run finds the layer already pooled.
    g = rng(11)
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxPool", ["p1"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model, feeds = with_head(nodes, [init(randn(g, 8, 3, 3, 3, scale=0.3), "W1")], "p2", g)
    passes = Pipeline(default_passes()).insert_after("fuse_pool", FusePool())
    mem = memcc.compile(model, passes=passes)
    assert op_types(mem) == ["MemristiveMatMul", "MaxPool", "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [[2, 2], None]
    assert_matches(mem, model, feeds)


def test_only_layers_of_this_compile_are_pooled():
    # The pass on its own, over a model compiled without it: nodes that are not in `ctx.layers`
    # (layers of an earlier compile) stay as they are; once they are, their MaxPools are fused.
    model, feeds = cnn()
    unfused, report = memcc.compiler.compile_with_report(
        model, passes=Pipeline(default_passes()).remove("fuse_pool"))
    ctx = CompileContext(copy.deepcopy(unfused))
    FusePool().run(ctx)
    assert op_types(ctx.model) == op_types(unfused)
    ctx.layers.extend(report.mapped)
    FusePool().run(ctx)
    assert op_types(ctx.model) == ["MemristiveMatMul", "MemristiveMatMul", "Flatten", "MemristiveMatMul"]
    assert layer_attr(ctx.model, "max_pool") == [[2, 2], [2, 2], None]
    assert_matches(ctx.model, model, feeds)


def test_pool_after_a_matmul_mode_layer_stays():
    # MatMul over the last axis of a 4-D tensor: a matmul-mode layer whose output MaxPool reads.
    g = rng(8)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
        helper.make_node("MaxPool", ["m"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model, feeds = with_head(nodes, [init(randn(g, 8, 6, scale=0.3), "W")], "p", g)
    mem = memcc.compile(model)
    assert op_types(mem) == ["MemristiveMatMul", "MaxPool", "Flatten", "MemristiveMatMul"]
    assert layer_attr(mem, "max_pool") == [None, None]
    assert_matches(mem, model, feeds)


def test_pool_after_a_digital_conv_stays():
    # A Conv memcc leaves digital (its weight is an input) is no layer of this compile.
    g = rng(9)
    nodes = [
        helper.make_node("Conv", ["x", "Wd"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    nodes += [
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W3", "B3"], ["y"], name="fc", transB=1),
    ]
    inits = [init(randn(g, 5, 4 * 4 * 4, scale=0.2), "W3"), init(randn(g, 5, scale=0.1), "B3")]
    inputs = [vinfo("x", ["batch", 3, 8, 8]), vinfo("Wd", [4, 3, 3, 3])]
    model = make_model(nodes, inputs, [vinfo("y", ["batch", 5])], inits)
    feeds = {"x": randn(g, 2, 3, 8, 8), "Wd": randn(g, 4, 3, 3, 3, scale=0.3)}
    mem, report = memcc.compiler.compile_with_report(model)
    assert [s.op_type for s in report.skipped] == ["Conv"]
    assert op_types(mem) == ["Conv", "MaxPool", "Flatten", "MemristiveMatMul"]
    assert_matches(mem, model, feeds)


def test_info_lists_the_pooling():
    from memcc.info import describe

    model, _ = cnn()
    layers = describe(memcc.compile(model))["layers"]
    assert [layer["max_pool"] for layer in layers] == [[2, 2], [2, 2], None]


def test_every_window_shape_of_a_small_grid_agrees_with_onnx_maxpool():
    # The fused node against Conv + MaxPool in onnxruntime for all windows up to the output size.
    g = rng(10)
    for mh, mw in itertools.product(range(1, 5), range(1, 4)):
        nodes = [
            helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
            helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[mh, mw], strides=[mh, mw]),
        ]
        model = make_model(nodes, [vinfo("x", [2, 3, 6, 5])], [vinfo("y", 4)],
                           [init(randn(g, 4, 3, 2, 2, scale=0.3), "W")])
        mem = memcc.compile(model)
        assert op_types(mem) == ["MemristiveMatMul"], (mh, mw)
        assert mem.graph.output[0].name == "y"
        assert_matches(mem, model, {"x": randn(g, 2, 3, 6, 5)})
