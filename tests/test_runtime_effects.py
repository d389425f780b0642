"""Run-time non-idealities of the op (docs/op-spec.md): the Philox stream, read noise, the I-V
nonlinearity and drift: reference vs. C++ library, statistics (read-noise variance against a
Monte Carlo of noisy conductance copies, the drift law), the compiler passes end to end."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from memcc import compiler
from memcc.errors import ConfigError
from memcc.passes.nonidealities import TIME_INPUT, Drift, NonlinearIV, ReadNoise, parse_spec
from memcc.reference import counter_normal, drifted_conductances, evaluator, memristive_matmul, philox4x32_10
from conftest import library_available, run_library
from test_cli import mlp_model

# ------------------------------------------------------------------------------- helpers

F = TensorProto.FLOAT


def op_model(G, *, conv_kernel=None, bias=None, time_input=False, x_rank=2, **attrs) -> onnx.ModelProto:
    """One MemristiveMatMul with G (and bias) as initializers; input x (and T when time_input)."""
    inits = [numpy_helper.from_array(np.asarray(G, np.float32), "G")]
    ins = ["x", "G"]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, np.float32), "B"))
        ins.append("B")
    else:
        ins.append("")
    inputs = [helper.make_tensor_value_info("x", F, None)]
    if time_input:
        ins.append("T")
        inputs.append(helper.make_tensor_value_info("T", F, []))
    if conv_kernel is not None:
        attrs["kernel_shape"] = list(conv_kernel)
    node = helper.make_node("MemristiveMatMul", ins, ["y"], domain="ai.memcc", name="op", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", F, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


def lib_session(model):
    if not library_available():
        pytest.skip("memcc's C++ op library is not built")
    from memcc.runtime import session

    return session(model)


def close(a, b, rtol=2e-5, extra=0.0):
    """|a - b| <= rtol * max|b| + extra (elementwise extra: the read-noise allowance below)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-30)
    assert a.shape == b.shape
    err = float(np.max(np.abs(a - b) - extra))
    assert err <= rtol * scale, f"max abs error beyond the noise allowance {err:.3g} > {rtol:g} * {scale:.3g}"


# docs/op-spec.md ("Numerical agreement"): the read-noise variance may be off by a relative
# 2^-7 + 2^-16 (bfloat16 factors, the C++ library on AMX-BF16 CPUs), so the term sqrt(var) z by
# at most half that; 2^-8 plus a margin for the float32 sums. `term` is the reference's noise.
def noise_allowance(term):
    return (2.0**-8 + 2.0**-12) * np.abs(term)


BASE = dict(weight_scale=5e3, max_input_voltage=0.3)

# ------------------------------------------------------------------------------- Philox


@pytest.mark.parametrize("counter,key,want", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(counter, key, want):
    # Random123's known-answer vectors for philox4x32_10; also as one row of a batch.
    assert [int(v) for v in philox4x32_10(counter, key)] == list(want)
    batch = philox4x32_10(np.array([counter, (1, 2, 3, 4), counter]), key)
    assert [int(v) for v in batch[2]] == list(want)
    assert [int(v) for v in batch[1]] != list(want)


def test_counter_normal_key_split_and_moments():
    z = counter_normal(2**40 + 5, 1, 2, 3, np.arange(200_000))
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    # The key's high word matters, and counters are taken mod 2^32.
    assert not np.array_equal(z[:10], counter_normal(5, 1, 2, 3, np.arange(10)))
    np.testing.assert_array_equal(counter_normal(7, 2**32 + 1, 0, 0, 0), counter_normal(7, 1, 0, 0, 0))

# ------------------------------------------------------------------------------- reference vs C++


EFFECTS = {
    "noise": dict(read_noise_std=0.05, noise_seed=11),
    "iv": dict(iv_a=0.32, iv_b=2.7),
    "drift": dict(drift_nu=0.05, drift_nu_std=0.02, drift_t0=1.0, drift_seed=4),
    "all": dict(read_noise_std=0.08, noise_seed=2**40 + 3, iv_a=0.5, iv_b=3.0, drift_nu=0.03, drift_seed=9),
}
QUANT = {
    "ideal": {},
    "adc": dict(dac_bits=8, adc_bits=10, tile_shape=[7, 5]),
    "tiles": dict(tile_shape=[9, 0]),
    # A fixed input range with a DAC and no ADC: the element-wise encoding + onnxruntime Gemm/Conv.
    "range": dict(input_range=2.0, dac_bits=6, tile_shape=[9, 0]),
}


@pytest.mark.parametrize("effect", list(EFFECTS))
@pytest.mark.parametrize("quant", list(QUANT))
@pytest.mark.parametrize("conv", [False, True])
def test_library_matches_reference(effect, quant, conv):
    g = np.random.default_rng(hash((effect, quant, conv)) % 2**32)
    attrs = {**BASE, **EFFECTS[effect], **QUANT[quant]}
    S = int(g.integers(1, 3))
    if S == 1:
        attrs["g_ref"] = 3e-5
    if conv:
        C, N, group = 4, 6, 2
        G = g.uniform(1e-6, 1e-4, (S, (C // group) * 9, N))
        x = g.standard_normal((2, C, 6, 5)).astype(np.float32)
        attrs.update(group=group, pads=[1, 1, 1, 1])
        model = op_model(G, conv_kernel=(3, 3), bias=g.standard_normal(N), time_input=True, **attrs)
    else:
        K, N = int(g.integers(5, 40)), int(g.integers(3, 30))
        G = g.uniform(1e-6, 1e-4, (S, K, N))
        x = g.standard_normal((3, int(g.integers(1, 20)), K)).astype(np.float32)
        model = op_model(G, bias=g.standard_normal(N), time_input=True, **attrs)
    sess = lib_session(model)
    ref = evaluator(model)
    noisy = attrs.get("read_noise_std", 0.0) > 0
    if noisy:
        # The same layer without read noise: the reference's noise term is the difference.
        quiet_model = copy.deepcopy(model)
        for a in quiet_model.graph.node[0].attribute:
            if a.name == "read_noise_std":
                a.f = 0.0
        quiet_ref = evaluator(quiet_model)
    for t in (1.0, 3600.0, 1e6):  # one session at several times; every run is a new execution c
        feeds = {"x": x, "T": np.array(t, np.float32)}
        got, want = sess.run(None, feeds)[0], ref.run(None, feeds)[0]
        extra = noise_allowance(want - quiet_ref.run(None, feeds)[0]) if noisy else 0.0
        if quant in ("adc", "range"):
            # A value within rounding of an ADC/DAC level may land one level away (spec).
            off = np.abs(got - want) > 2e-5 * np.abs(want).max() + extra
            assert off.mean() < 0.02
        else:
            close(got, want, extra=extra)


def test_read_noise_changes_per_execution_and_repeats_per_session():
    g = np.random.default_rng(1)
    G = g.uniform(1e-6, 1e-4, (2, 20, 8))
    model = op_model(G, **BASE, read_noise_std=0.1, noise_seed=3)
    x = g.standard_normal((4, 20)).astype(np.float32)
    sess = lib_session(model)
    a, b = sess.run(None, {"x": x})[0], sess.run(None, {"x": x})[0]
    assert not np.array_equal(a, b)
    sess2 = lib_session(model)
    np.testing.assert_array_equal(sess2.run(None, {"x": x})[0], a)
    quiet = memristive_matmul(x, G, **BASE)
    for got, c in ((a, 0), (b, 1)):
        want = memristive_matmul(x, G, **BASE, read_noise_std=0.1, noise_seed=3, execution=c)
        close(got, want, extra=noise_allowance(want - quiet))


@pytest.mark.parametrize("bad,fragment", [
    (dict(iv_b=-1.0), "iv_b"), (dict(iv_b=2.0), "iv_a"), (dict(read_noise_std=-0.1), "read_noise_std"),
    (dict(drift_t0=0.0), "drift_t0"), (dict(noise_seed=-3), "noise_seed"), (dict(drift_nu=-1.0), "drift_nu"),
])
def test_bad_attributes(bad, fragment):
    G = np.full((2, 3, 2), 1e-5)
    with pytest.raises(ValueError, match=fragment):
        memristive_matmul(np.ones((1, 3)), G, **BASE, **bad)
    if library_available():
        with pytest.raises(Exception, match=fragment):
            lib_session(op_model(G, **BASE, **bad)).run(None, {"x": np.ones((1, 3), np.float32)})


@pytest.mark.parametrize("t", [-1.0, np.nan, np.inf])
def test_bad_time(t):
    G = np.full((2, 3, 2), 1e-5)
    x = np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match="'T'"):
        memristive_matmul(x, G, None, np.array(t, np.float32), **BASE, drift_nu=0.1)
    if library_available():
        sess = lib_session(op_model(G, time_input=True, **BASE, drift_nu=0.1))
        with pytest.raises(Exception, match="'T'"):
            sess.run(None, {"x": x, "T": np.array(t, np.float32)})

# ------------------------------------------------------------------------------- statistics


def test_read_noise_variance_matches_monte_carlo_of_noisy_conductances():
    # The op's per-read Gaussian (exact sum of the devices' noise) vs. summing noisy copies of
    # every conductance, G'(1 + sigma eps), read with the noiseless op: same mean, same variance.
    g = np.random.default_rng(3)
    K, N, sigma, runs = 24, 5, 0.1, 3000
    G = g.uniform(1e-6, 1e-4, (2, K, N))
    x = g.standard_normal((2, K)).astype(np.float32)
    attrs = dict(**BASE, tile_shape=[8, 0], iv_a=0.5, iv_b=3.0)
    op = np.stack([memristive_matmul(x, G, **attrs, read_noise_std=sigma, noise_seed=1, execution=c)
                   for c in range(runs)]).astype(np.float64)
    mc = np.stack([memristive_matmul(x, G * (1 + sigma * g.standard_normal(G.shape)), **attrs)
                   for _ in range(runs)]).astype(np.float64)
    noiseless = memristive_matmul(x, G, **attrs).astype(np.float64)
    sd = mc.std(axis=0)
    assert np.all(np.abs(op.mean(axis=0) - noiseless) < 5 * sd / np.sqrt(runs))
    ratio = op.var(axis=0) / mc.var(axis=0)
    # Two independent sample variances of `runs` draws: log ratio has std ~ 2/sqrt(runs).
    assert np.all(np.abs(np.log(ratio)) < 5 * 2 / np.sqrt(runs)), ratio


def test_drift_law_uniform_exponent_scales_the_output():
    g = np.random.default_rng(4)
    G = g.uniform(1e-6, 1e-4, (2, 12, 7))
    x = g.standard_normal((5, 12)).astype(np.float32)
    nu, t0 = 0.06, 2.0
    model = op_model(G, time_input=True, **BASE, drift_nu=nu, drift_t0=t0)
    y0 = memristive_matmul(x, G, **BASE)
    sessions = [("reference", evaluator(model))]
    if library_available():
        sessions.append(("library", lib_session(model)))
    for _, sess in sessions:
        for t in (0.0, 1.0, 2.0, 60.0, 3600.0, 86400.0 * 365):
            y = sess.run(None, {"x": x, "T": np.array(t, np.float32)})[0]
            close(y, y0 * (max(t, t0) / t0) ** -nu, rtol=3e-6)


def test_drift_per_device_exponents():
    g = np.random.default_rng(5)
    G = g.uniform(1e-6, 1e-4, (2, 30, 40))
    attrs = dict(drift_nu=0.05, drift_nu_std=0.03, drift_seed=17)
    t = 1e4
    Gd = drifted_conductances(G, np.array(t, np.float32), **attrs)
    nu = np.log(G / Gd) / np.log(t)
    s, k, n = np.indices(G.shape)
    want = np.maximum(0.0, 0.05 + 0.03 * counter_normal(17, 0, s, k, n))
    np.testing.assert_allclose(nu, want, atol=1e-12)
    assert 0.03 * 0.8 < nu.std() < 0.03 * 1.1 and abs(nu.mean() - 0.0514) < 0.004
    # The op reads the drifted conductances: same as the drift-free op on G'.
    x = g.standard_normal((4, 30)).astype(np.float32)
    close(memristive_matmul(x, G, None, np.array(t, np.float32), **BASE, **attrs), memristive_matmul(x, Gd, **BASE))
    if library_available():
        y = lib_session(op_model(G, time_input=True, **BASE, **attrs)).run(None, {"x": x, "T": np.array(t, np.float32)})[0]
        close(y, memristive_matmul(x, Gd, **BASE))


def test_nonlinearity_is_sum_of_g_times_f_of_v():
    g = np.random.default_rng(6)
    K, N = 20, 9
    G = g.uniform(1e-6, 1e-4, (2, K, N))
    x = g.standard_normal((6, K)).astype(np.float64)
    a, b, vmax, ws = 0.32046175, 2.71689828, 0.3, 5e3
    s = np.abs(x).max(axis=1, keepdims=True)
    v = x / s * vmax
    currents = (a * np.sinh(b * v)) @ (G[0] - G[1])
    want = currents * ws * s / vmax
    attrs = dict(weight_scale=ws, max_input_voltage=vmax, iv_a=a, iv_b=b)
    close(memristive_matmul(x.astype(np.float32), G, **attrs), want)
    if library_available():
        close(lib_session(op_model(G, **attrs)).run(None, {"x": x.astype(np.float32)})[0], want)
    # Small voltages: f(v) ~ a b v, the linear op scaled by a b.
    small = dict(attrs, max_input_voltage=1e-4)
    close(memristive_matmul(x, G, **small), a * b * memristive_matmul(x, G, **dict(small, iv_b=0.0)), rtol=1e-6)

# ------------------------------------------------------------------------------- compiler passes


def _attrs(model):
    return {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute}
            for n in model.graph.node if n.op_type == "MemristiveMatMul"}


def test_specs_build_the_runtime_passes():
    assert parse_spec("read_noise:std=0.05:seed=3") == ReadNoise(0.05, seed=3)
    assert parse_spec("nonlinear") == NonlinearIV()
    assert parse_spec("drift:nu=0.05:nu_std=0.01:t0=1") == Drift(0.05, 0.01, 1.0)
    with pytest.raises(ConfigError, match="std must be >= 0"):
        parse_spec("read_noise:std=-1")
    with pytest.raises(ConfigError, match="t0 must be > 0"):
        parse_spec("drift:t0=0")


@pytest.fixture(scope="module")
def mlp():
    return mlp_model(), np.random.default_rng(8).standard_normal((64, 16)).astype(np.float32)


def test_compile_read_noise_end_to_end(mlp):
    model, x = mlp
    plain = compiler.compile(model)
    noisy = compiler.compile(model, nonidealities=["read_noise:std=0.05"])
    again = compiler.compile(model, nonidealities=["read_noise:std=0.05"])
    assert noisy.SerializeToString() == again.SerializeToString()  # deterministic
    attrs = _attrs(noisy)
    seeds = {a["noise_seed"] for a in attrs.values()}
    assert len(seeds) == len(attrs) and all(a["read_noise_std"] == pytest.approx(0.05) for a in attrs.values())
    other = compiler.compile(model, seed=1, nonidealities=["read_noise:std=0.05"])
    assert {a["noise_seed"] for a in _attrs(other).values()} != seeds
    fixed = _attrs(compiler.compile(model, seed=1, nonidealities=["read_noise:std=0.05:seed=9"]))
    assert fixed == _attrs(compiler.compile(model, seed=2, nonidealities=["read_noise:std=0.05:seed=9"]))
    want = evaluator(plain).run(None, {"x": x})[0]
    ref = evaluator(noisy)
    r1, r2 = ref.run(None, {"x": x})[0], ref.run(None, {"x": x})[0]
    err = np.linalg.norm(r1 - want) / np.linalg.norm(want)
    assert 0.003 < err < 0.2 and not np.array_equal(r1, r2)
    if library_available():
        sess = lib_session(noisy)
        close(sess.run(None, {"x": x})[0], r1, rtol=1e-4, extra=noise_allowance(r1 - want))
        close(sess.run(None, {"x": x})[0], r2, rtol=1e-4, extra=noise_allowance(r2 - want))


@pytest.mark.parametrize("device,params", [("data_driven", {}), ("stanford_pku", {})])
def test_compile_nonlinear_end_to_end(mlp, device, params):
    model, x = mlp
    opts = dict(device=device, programming="ideal", d2d_std=0.0)
    plain = compiler.compile(model, **opts)
    nl = compiler.compile(model, **opts, nonidealities=["nonlinear"])
    attrs = next(iter(_attrs(nl).values()))
    if device == "data_driven":
        assert attrs["iv_a"] == pytest.approx(0.32046175) and attrs["iv_b"] == pytest.approx(2.71689828)
    else:  # f(v_read) = v_read: the programmed conductance holds at the read voltage
        v_read, v0 = 0.1, 0.25
        assert attrs["iv_a"] * np.sinh(attrs["iv_b"] * v_read) == pytest.approx(v_read)
        assert attrs["iv_b"] == pytest.approx(1 / v0)
    want, got = evaluator(plain).run(None, {"x": x})[0], evaluator(nl).run(None, {"x": x})[0]
    assert np.linalg.norm(got - want) / np.linalg.norm(want) > 0.01
    if library_available():
        close(lib_session(nl).run(None, {"x": x})[0], got, rtol=1e-4)


@pytest.mark.parametrize("device", ["ideal", "vteam"])
def test_nonlinear_refuses_linear_devices(mlp, device):
    with pytest.raises(ConfigError, match=f"device '{device}' has a linear I-V"):
        compiler.compile(mlp[0], device=device, programming="ideal", nonidealities=["nonlinear"])


def test_compile_drift_runs_at_many_times_in_one_session(mlp):
    model, x = mlp
    plain = compiler.compile(model)
    drift = compiler.compile(model, nonidealities=["drift:nu=0.05:nu_std=0:t0=1"])
    onnx.checker.check_model(drift)
    assert TIME_INPUT in {i.name for i in drift.graph.input}
    for n in drift.graph.node:
        if n.op_type == "MemristiveMatMul":
            assert n.input[3] == TIME_INPUT
    want0 = evaluator(plain).run(None, {"x": x})[0]
    ref = evaluator(drift)
    close(ref.run(None, {"x": x})[0], want0)  # the default time is t0: no drift
    sess = lib_session(drift) if library_available() else None
    from memcc.runtime import prepare_inputs

    outs = []
    for t in (1.0, 10.0, 1e3, 1e5):
        feeds = {"x": x, TIME_INPUT: np.array(t, np.float32)}
        got = ref.run(None, feeds)[0]
        if sess is not None:
            close(sess.run(None, prepare_inputs(sess, feeds))[0], got, rtol=1e-4)
        outs.append(got)
    # Decay is monotone in time: each layer's weights scale by t^-nu (ReLU keeps the positive scale).
    norms = [np.linalg.norm(o) for o in outs]
    assert norms[0] > norms[1] > norms[2] > norms[3]
    # With nu_std > 0 the exponents differ per device (seeded per layer, deterministic).
    d2 = compiler.compile(model, nonidealities=["drift:nu=0.05:nu_std=0.02"])
    assert d2.SerializeToString() == compiler.compile(model, nonidealities=["drift:nu=0.05:nu_std=0.02"]).SerializeToString()
    a = evaluator(d2).run(None, {"x": x, TIME_INPUT: np.array(1e4, np.float32)})[0]
    assert not np.allclose(a, outs[2], rtol=1e-3)


def test_cli_runtime_nonidealities(tmp_path):
    from test_cli import memcc_cli

    src = tmp_path / "m.onnx"
    onnx.save(mlp_model(), src)
    out = tmp_path / "out.onnx"
    r = memcc_cli("compile", str(src), "-o", str(out), "--nonideality", "read_noise:std=0.05:seed=3",
                  "--nonideality", "drift:nu=0.05:nu_std=0.01:t0=1")
    assert r.returncode == 0, r.stderr
    compiled = onnx.load(str(out))
    attrs = next(iter(_attrs(compiled).values()))
    assert attrs["read_noise_std"] == pytest.approx(0.05) and attrs["drift_nu_std"] == pytest.approx(0.01)
