"""Compile-time non-idealities (memcc.passes.nonidealities): finite conductance states, device
faults, endurance; their statistics, their effect end to end, specs, CLI and TOML."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import memcc
from memcc import compiler
from memcc.errors import ConfigError
from memcc.passes import (
    DeviceFaults,
    Endurance,
    FiniteStates,
    Pipeline,
    default_passes,
    make_nonideality,
    nonideality,
)
from memcc.passes.nonidealities import degraded_window, parse_spec, with_nonidealities
from memcc.passes.nonidealities.endurance import DEFAULT_A_OFF, DEFAULT_A_ON, DEFAULT_THRESHOLD
from memcc.passes.program_devices import layer_seed, sample_layer_devices
from memcc.quantize import nearest_state, nearest_state_index
from test_cli import assert_user_error, memcc_cli, mlp_model

# ------------------------------------------------------------------------------- helpers


def big_gemm_model(K=400, N=250, seed=0) -> onnx.ModelProto:
    """One Gemm of K·N weights: 2·K·N = 200,000 devices in the double-column scheme."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((K, N)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["y"], name="fc")], "big",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", K])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", N])],
        [numpy_helper.from_array(W, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: ideal device with 10 % device-to-device spread: every device has its own window
D2D = dict(device="ideal", d2d_std=0.1)


def conductances(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {t.name: t for t in model.graph.initializer}
    return {n.name: numpy_helper.to_array(inits[n.input[1]])
            for n in model.graph.node if n.op_type == "MemristiveMatMul"}


def windows(G: np.ndarray, node: str, seed: int = 0, **options):
    """Each device's own (g_off, g_on), float64, shaped like G (as ProgramDevices sampled them)."""
    device = compiler.CompileOptions(**options).validated().make_device()
    model = sample_layer_devices(device, G.size, seed, node)
    g_off = np.broadcast_to(np.asarray(model.g_off, dtype=np.float64), (G.size,)).reshape(G.shape)
    g_on = np.broadcast_to(np.asarray(model.g_on, dtype=np.float64), (G.size,)).reshape(G.shape)
    return g_off, g_on


def f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def output_error(compiled, original, x) -> float:
    import onnxruntime as ort

    from memcc.reference import evaluator

    want = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = evaluator(compiled).run(None, {"x": x})[0]
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.fixture(scope="module")
def big():
    model = big_gemm_model()
    plain = compiler.compile(model, **D2D)
    return model, plain, conductances(plain)["fc"]


@pytest.fixture(scope="module")
def mlp_inputs():
    return mlp_model(), np.random.default_rng(7).standard_normal((256, 16)).astype(np.float32)


# ------------------------------------------------------------------------------- nearest_state


def test_nearest_state_matches_brute_force():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 17):
        states = np.unique(rng.uniform(0, 1, n))
        values = rng.uniform(-0.5, 1.5, 5000)
        got = nearest_state(values, states)
        brute = states[np.argmin(np.abs(values[:, None] - states[None, :]), axis=1)]  # first = lower
        assert got.dtype == np.float32 and got.shape == values.shape
        np.testing.assert_array_equal(got, brute.astype(np.float32))


def test_nearest_state_ties_go_to_the_lower_state():
    states = np.array([0.0, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(nearest_state([0.5, 1.5, 3.0, 3.0001, -7, 9], states), [0, 1, 2, 4, 0, 4])
    np.testing.assert_array_equal(nearest_state_index([0.5, 1.5, 3.0], states), [0, 1, 2])
    assert np.isnan(nearest_state([np.nan], states)[0])
    np.testing.assert_array_equal(nearest_state([[-1.0, 5.0]], [2.0]), [[2.0, 2.0]])
    with pytest.raises(ValueError, match="sorted"):
        nearest_state([0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="non-empty"):
        nearest_state([0.0], [])


def test_nearest_state_compiled_routine_equals_numpy():
    """The op library's binary search (ops/src/nearest_state.h) and the NumPy one agree index for
    index, ties, NaN, duplicates and out-of-range values included."""
    from conftest import library_available

    from memcc import quantize
    from memcc.runtime import native_routines

    if not library_available():
        pytest.skip("memcc's C++ op library is not built")
    assert native_routines() is not None
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 64):
        states = np.sort(np.round(rng.uniform(0, 4, n) * 4) / 4)  # quarter grid: duplicates, exact ties
        values = np.round(rng.uniform(-1, 5, (40, 50)) * 8) / 8
        values[0, :3] = np.nan
        native = quantize._native_index(values, states)
        np.testing.assert_array_equal(native, quantize._numpy_index(values, states))
        assert native.shape == values.shape and native[0, 0] == -1
        np.testing.assert_array_equal(quantize.nearest_state_index(values, states), native)


# ------------------------------------------------------------------------------- finite states


def test_finite_states_levels_per_device_window(big):
    model, _, before = big
    n = 8
    after = conductances(compiler.compile(model, nonidealities=[FiniteStates(n)], **D2D))["fc"]
    g_off, g_on = windows(before, "fc", **D2D)
    width = g_on - g_off
    k = (after.astype(np.float64) - g_off) / width * (n - 1)
    # every device sits on one of its own N levels g_off + k/(N-1)·width (float32 rounding)
    assert np.max(np.abs(k - np.rint(k))) < 1e-3
    k = np.rint(k).astype(int)
    assert k.min() == 0 and k.max() == n - 1 and len(np.unique(k)) == n
    # ... the nearest one to the programmed conductance (brute force over all N levels)
    levels = g_off[..., None] + np.arange(n) / (n - 1) * width[..., None]
    dist = np.abs(before.astype(np.float64)[..., None] - levels)
    best = np.argmin(dist, axis=-1)
    mismatch = best != k
    near_tie = np.abs(np.take_along_axis(dist, k[..., None], -1)[..., 0] - dist.min(-1)) <= 1e-6 * width
    assert np.all(near_tie[mismatch])
    assert mismatch.mean() < 1e-4


def test_finite_states_exactly_n_values_with_identical_devices(big):
    model = big[0]
    for n in (2, 5, 16):
        G = conductances(compiler.compile(model, nonidealities=[f"finite_states:n={n}"], device="ideal"))["fc"]
        values = np.unique(G)
        assert len(values) == n
        np.testing.assert_allclose(values, np.linspace(1e-5, 1e-3, n), rtol=1e-6)


def test_finite_states_tie_resolves_to_the_lower_level():
    # a 1x1 layer with weight +1: positive crossbar at g_on, negative at g_off; 3 explicit states
    # whose midpoints are exactly those conductances.
    W = np.array([[1.0]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "one",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g_on, g_off = float(np.float32(1e-3)), float(np.float32(1e-5))
    states = [g_off - 2**-30, g_off + 2**-30, g_on - 2**-20, g_on + 2**-20]
    G = conductances(compiler.compile(model, nonidealities=[FiniteStates(states=states)]))["mm"]
    np.testing.assert_array_equal(G.reshape(-1), f32([states[2], states[0]]))


def test_finite_states_explicit_measured_states(big):
    model, _, before = big
    states = [2e-5, 1e-4, 3e-4, 5e-4, 9e-4]
    p = FiniteStates(states=list(reversed(states)))  # sorted by the pass
    assert p.states == states
    after = conductances(compiler.compile(model, nonidealities=[p], **D2D))["fc"]
    assert set(np.unique(after).tolist()) <= set(f32(states).tolist())
    brute = np.asarray(states)[np.argmin(np.abs(before.astype(np.float64)[..., None] - np.asarray(states)), -1)]
    np.testing.assert_array_equal(after, f32(brute))


def test_output_error_grows_with_fewer_states(mlp_inputs):
    model, x = mlp_inputs
    errors = [output_error(compiler.compile(model, nonidealities=[FiniteStates(n)]), model, x)
              for n in (256, 64, 16, 4)]
    plain = output_error(compiler.compile(model), model, x)
    assert plain < errors[0] < errors[1] < errors[2] < errors[3], errors
    assert errors[0] < 0.01 and errors[3] > 0.1, errors


# ------------------------------------------------------------------------------- faults


def test_fault_proportions_disjoint_sets_and_values(big):
    model, _, before = big
    p_lrs, p_hrs, p_unf = 0.02, 0.03, 0.01
    faults = DeviceFaults(stuck_lrs=p_lrs, stuck_hrs=p_hrs, unformed=p_unf)
    after_model, report = compiler.compile_with_report(model, nonidealities=[faults], **D2D)
    after = conductances(after_model)["fc"]
    n = before.size
    assert n == 200_000
    code = faults.sample(n, layer_seed(0, "fc")).reshape(before.shape)
    counts = {c: int(np.count_nonzero(code == c)) for c in (1, 2, 3)}
    for c, p in ((1, p_lrs), (2, p_hrs), (3, p_unf)):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[c] - n * p) <= 4 * sigma, (c, counts[c], n * p, sigma)
    g_off, g_on = windows(before, "fc", **D2D)
    np.testing.assert_array_equal(after[code == 1], f32(g_on[code == 1]))  # the device's own g_on
    np.testing.assert_array_equal(after[code == 2], f32(g_off[code == 2]))
    np.testing.assert_array_equal(after[code == 3], f32(0.1 * g_off[code == 3]))
    np.testing.assert_array_equal(after[code == 0], before[code == 0])
    assert len(np.unique(g_on)) > 1000  # the windows really differ per device
    # disjoint sets: the report's counts add up and match the sampled sets
    layer = report.mapped[0].nonidealities[0]
    assert (layer["n_stuck_lrs"], layer["n_stuck_hrs"], layer["n_unformed"]) == (counts[1], counts[2], counts[3])
    assert layer["n_faulty"] == sum(counts.values()) == int(np.count_nonzero(code))
    assert report.nonidealities[0]["total"]["n_faulty"] == layer["n_faulty"]


def test_fault_sets_are_disjoint_even_when_they_cover_every_device():
    faults = DeviceFaults(stuck_lrs=0.5, stuck_hrs=0.3, unformed=0.2)
    code = faults.sample(100_000, layer_seed(3, "x"))
    assert np.count_nonzero(code == 0) == 0
    for c, p in ((1, 0.5), (2, 0.3), (3, 0.2)):
        assert abs(np.mean(code == c) - p) < 4 * math.sqrt(p * (1 - p) / code.size)


def test_faults_seed_determinism_and_sensitivity(mlp_inputs):
    model, _ = mlp_inputs
    spec = ["faults:stuck_lrs=0.05:stuck_hrs=0.05:unformed=0.02"]
    a = compiler.compile(model, nonidealities=spec, seed=1, **D2D).SerializeToString()
    b = compiler.compile(model, nonidealities=spec, seed=1, **D2D).SerializeToString()
    c = compiler.compile(model, nonidealities=spec, seed=2, **D2D).SerializeToString()
    assert a == b and a != c
    ga = DeviceFaults(0.05, 0.05).sample(1000, layer_seed(1, "fc1"))
    gc = DeviceFaults(0.05, 0.05).sample(1000, layer_seed(2, "fc1"))
    assert not np.array_equal(ga, gc)
    # the pass's own seed replaces the compile seed for the fault map
    own = compiler.compile(model, nonidealities=[DeviceFaults(0.05, 0.05, 0.02, seed=1)], seed=1, **D2D)
    assert own.SerializeToString() == a


def test_output_error_grows_with_more_faults(mlp_inputs):
    model, x = mlp_inputs
    errors = [output_error(compiler.compile(model, nonidealities=[DeviceFaults(p / 2, p / 2)]), model, x)
              for p in (0.0, 0.01, 0.05, 0.2)]
    assert errors[0] < 1e-5 < errors[1] < errors[2] < errors[3], errors


def test_unformed_factor_one_is_memtorchs_hrs():
    p = DeviceFaults(unformed=0.5, unformed_factor=1.0)
    g = np.full(10, 5e-4)
    from memcc.passes.nonidealities import LayerDevicesView

    view = LayerDevicesView(rec=None, g_off=np.full(10, 1e-5), g_on=np.full(10, 1e-3),
                            pulses=np.zeros(10, np.int64), seed=layer_seed(0, "x"))
    new, stats = p.transform(g, view)
    assert set(np.unique(new)) <= {5e-4, 1e-5} and stats["n_unformed"] == np.count_nonzero(new == 1e-5)


# ------------------------------------------------------------------------------- endurance


def test_degraded_window_law():
    g_off, g_on = 1e-5, 1e-3
    for n in (0.0, 1.0, DEFAULT_THRESHOLD):  # up to the threshold: unchanged
        assert degraded_window(g_off, g_on, n) == (g_off, g_on)
    for factor in (10.0, 1e3):
        off, on = degraded_window(g_off, g_on, DEFAULT_THRESHOLD * factor)
        # R_on(n) = r_on (n/n_th)^a_on, R_off(n) = r_off (n/n_th)^a_off
        assert math.isclose(1 / on, 1e3 * factor**DEFAULT_A_ON, rel_tol=1e-12)
        assert math.isclose(1 / off, 1e5 * factor**DEFAULT_A_OFF, rel_tol=1e-12)
    off, on = degraded_window(g_off, g_on, 1e30)  # closed at the geometric middle
    assert math.isclose(off, 1e-4) and math.isclose(on, 1e-4)
    off, on = degraded_window(np.array([g_off] * 3), np.array([g_on] * 3), np.array([1e4, 1e5, 1e6]))
    assert on[0] > on[1] > on[2] and off[0] < off[1] < off[2]


@pytest.mark.parametrize("cycles", [1e5, 1e7])
def test_endurance_maps_each_device_into_its_degraded_window(big, cycles):
    model, _, before = big
    after_model, report = compiler.compile_with_report(model, nonidealities=[Endurance(cycles)], **D2D)
    after = conductances(after_model)["fc"]
    g_off, g_on = windows(before, "fc", **D2D)
    r = cycles / DEFAULT_THRESHOLD
    g_c = np.sqrt(g_on * g_off)
    on = np.maximum(g_on * r**-DEFAULT_A_ON, g_c)
    off = np.minimum(g_off * r**-DEFAULT_A_OFF, g_c)
    pos = np.clip((before.astype(np.float64) - g_off) / (g_on - g_off), 0, 1)
    np.testing.assert_allclose(after, off + pos * (on - off), rtol=2e-7)
    shrink = 1 - (on - off) / (g_on - g_off)
    t = report.nonidealities[0]["total"]
    assert t["n_degraded"] == before.size and t["mean_cycles"] == cycles
    assert math.isclose(t["mean_window_shrink"], shrink.mean(), rel_tol=1e-9)


def test_endurance_zero_cycles_changes_nothing(mlp_inputs):
    model, _ = mlp_inputs
    plain = compiler.compile(model, **D2D).SerializeToString()
    for spec in ("endurance:cycles=0", "endurance:cycles=1e4"):  # at the threshold: still fresh
        assert compiler.compile(model, nonidealities=[spec], **D2D).SerializeToString() == plain


def test_endurance_counts_programming_pulses(mlp_inputs):
    model, _ = mlp_inputs
    opts = dict(device="vteam", d2d_std=0.0)
    plain, prep = compiler.compile_with_report(model, **opts)
    pulses = {d.node: d.pulses for d in prep.programmed}
    assert all(p.max() > 0 for p in pulses.values())
    compiled, report = compiler.compile_with_report(
        model, nonidealities=[Endurance(cycles=DEFAULT_THRESHOLD)], **opts)
    before, after = conductances(plain), conductances(compiled)
    for node, G in before.items():
        p = pulses[node].reshape(G.shape)
        g_off, g_on = windows(G, node, **opts)
        off, on = degraded_window(g_off, g_on, DEFAULT_THRESHOLD + p)
        pos = np.clip((G.astype(np.float64) - g_off) / (g_on - g_off), 0, 1)
        np.testing.assert_allclose(after[node], off + pos * (on - off), rtol=2e-7)
        np.testing.assert_array_equal(after[node][p == 0], G[p == 0])
    all_pulses = np.concatenate([p for p in pulses.values()])
    t = report.nonidealities[0]["total"]
    assert t["n_degraded"] == int(np.count_nonzero(all_pulses))
    assert math.isclose(t["mean_cycles"], DEFAULT_THRESHOLD + all_pulses.mean(), rel_tol=1e-12)
    ignore = compiler.compile(model, nonidealities=[Endurance(DEFAULT_THRESHOLD, count_programming=False)], **opts)
    assert ignore.SerializeToString() == plain.SerializeToString()


def test_output_error_grows_with_cycles(mlp_inputs):
    model, x = mlp_inputs
    errors = [output_error(compiler.compile(model, nonidealities=[Endurance(n)]), model, x)
              for n in (0, 1e5, 1e6, 1e8)]
    assert errors[0] < 1e-5 < errors[1] < errors[2] < errors[3], errors


# ------------------------------------------------------------------------------- specs and compile


def test_specs_build_the_same_pass():
    assert nonideality("finite_states", n=16) == FiniteStates(16) == parse_spec("finite_states:n=16")
    assert make_nonideality({"name": "faults", "stuck_lrs": 0.01, "hrs": "0.02"}) == DeviceFaults(0.01, 0.02)
    assert parse_spec("Device-Faults:electroform=0.005") == DeviceFaults(unformed=0.005)
    assert parse_spec("endurance:cycles=1e6:n_th=1e3") == Endurance(1e6, threshold=1e3)
    assert parse_spec("finite_states:states=3e-5,1e-5") == FiniteStates(states=[1e-5, 3e-5])
    for p in (FiniteStates(7), FiniteStates(states=[1e-5, 2e-4]), DeviceFaults(0.1, 0.2, 0.05, seed=3),
              Endurance(1e6, a_on=0.2, count_programming=False)):
        assert parse_spec(p.describe()) == p
        assert make_nonideality(p.spec()) == p
    p = Endurance(5)
    assert make_nonideality(p) is p


@pytest.mark.parametrize("spec, fragment", [
    ("bogus", "unknown nonideality 'bogus'"),
    ("fault:stuck_lrs=0.1", "did you mean 'faults'"),
    ("faults:stuck_lrs", "expected KEY=VALUE"),
    ("faults:stuck=0.1", "did you mean 'stuck_lrs'"),
    ("faults:stuck_lrs=1.5", "stuck_lrs must be <= 1"),
    ("faults:stuck_lrs=0.6:stuck_hrs=0.5", "must be <= 1"),
    ("faults:stuck_lrs=0.1:lrs=0.1", "given twice"),
    ("finite_states", "give either n_states"),
    ("finite_states:n=1", "n_states must be >= 2"),
    ("finite_states:n=2.5", "must be an integer"),
    ("finite_states:n=4:spacing=log", "spacing must be one of linear"),
    ("finite_states:states=1e-5,x", "must be a number"),
    ("endurance:cycles=-1", "cycles must be >= 0"),
    ("endurance:cycles=nan", "must be finite"),
    ("endurance:a_on=-0.1", "a_on must be >= 0"),
    ("endurance:count_programming=maybe", "true or false"),
    ("", "empty spec"),
])
def test_bad_specs(spec, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        parse_spec(spec)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_empty_nonidealities_equal_the_plain_compile(mlp_inputs):
    model, _ = mlp_inputs
    plain, report = compiler.compile_with_report(model, device="vteam")
    for nd in ([], None, ()):
        again, rep = compiler.compile_with_report(model, device="vteam", nonidealities=nd)
        assert again.SerializeToString() == plain.SerializeToString()
        assert rep.passes == report.passes and rep.nonidealities == []


def test_nonidealities_inserted_after_programming_in_order(mlp_inputs):
    model, _ = mlp_inputs
    specs = [FiniteStates(8), "endurance:cycles=1e6", {"name": "faults", "unformed": 0.1}]
    a, report = compiler.compile_with_report(model, nonidealities=specs, **D2D)
    names = report.passes
    i = names.index("program_devices")
    assert names[i + 1:i + 4] == ["finite_states", "endurance", "faults"]
    assert names[i + 4] == "crossbar_attributes"
    assert [n["name"] for n in report.nonidealities] == ["finite_states", "endurance", "faults"]
    assert [n["name"] for n in report.mapped[0].nonidealities] == ["finite_states", "endurance", "faults"]
    text = report.summary()
    assert "nonideality finite_states" in text and "unformed" in text and "window shrink" in text
    json.dumps(report.as_dict(), allow_nan=False)
    # the same passes given as objects / text / tables give the same bytes
    b = compiler.compile(model, nonidealities=[
        "finite_states:n=8", Endurance(1e6), DeviceFaults(unformed=0.1)], **D2D)
    assert a.SerializeToString() == b.SerializeToString()
    # and the order matters: quantizing after the faults moves unformed devices to a level
    c = compiler.compile(model, nonidealities=list(reversed(specs)), **D2D)
    assert c.SerializeToString() != a.SerializeToString()
    G = conductances(c)["fc1"]
    g_off, _ = windows(G, "fc1", **D2D)
    assert np.all(G >= f32(g_off) * (1 - 1e-6))  # no device left below its g_off


def test_same_seed_bit_identical_all_nonidealities(mlp_inputs):
    model, _ = mlp_inputs
    specs = ["finite_states:n=16", "endurance:cycles=1e6", "faults:stuck_lrs=0.01:stuck_hrs=0.01:unformed=0.005"]
    a = compiler.compile(model, nonidealities=specs, device="vteam", seed=4).SerializeToString()
    b = compiler.compile(model, nonidealities=specs, device="vteam", seed=4).SerializeToString()
    c = compiler.compile(model, nonidealities=specs, device="vteam", seed=5).SerializeToString()
    assert a == b != c
    memcc.compile(model, nonidealities=specs)  # the package-level entry point takes it too


def test_pipeline_helpers():
    pipe = with_nonidealities(Pipeline(default_passes()), ["faults:stuck_lrs=0.1"])
    assert pipe.names()[pipe.names().index("program_devices") + 1] == "faults"
    with pytest.raises(ConfigError, match="program_devices"):
        with_nonidealities(Pipeline([p for p in default_passes() if p.name != "program_devices"]),
                           [FiniteStates(4)])
    with pytest.raises(ConfigError, match="list"):
        compiler.compile(mlp_model(), nonidealities="finite_states:n=4")
    with pytest.raises(ConfigError, match="table needs name"):
        compiler.compile(mlp_model(), nonidealities=[{"n": 4}])


# ------------------------------------------------------------------------------- CLI and TOML


@pytest.mark.parametrize("spec, fragment", [
    ("bogus", "unknown nonideality"),
    ("faults:stuck_lrs", "expected KEY=VALUE"),
    ("faults:stuck_lrs=2", "stuck_lrs must be <= 1"),
    ("finite_states:n=x", "n_states must be a number"),
    ("endurance:cycle=1e6", "did you mean 'cycles'"),
])
def test_cli_bad_nonideality(tmp_path, spec, fragment):
    src = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(src))
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", src, "-o", out, "--nonideality", spec), fragment)
    assert not out.exists()


def test_cli_and_toml_nonidealities(tmp_path):
    src = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(src))
    conf = tmp_path / "memcc.toml"
    conf.write_text('seed = 2\n[[nonideality]]\nname = "finite_states"\nn = 8\n'
                    '[[nonideality]]\nname = "faults"\nstuck_lrs = 0.01\nunformed = 0.01\n')
    out, report = tmp_path / "a.onnx", tmp_path / "a.json"
    proc = memcc_cli("compile", src, "-o", out, "--config", conf, "--report", report)
    assert proc.returncode == 0, proc.stderr
    assert "nonideality finite_states" in proc.stdout and "nonideality faults" in proc.stdout
    data = json.loads(report.read_text())
    assert data["settings"]["nonidealities"] == [
        {"name": "finite_states", "n_states": 8, "spacing": "linear"},
        {"name": "faults", "stuck_lrs": 0.01, "stuck_hrs": 0.0, "unformed": 0.01, "unformed_factor": 0.1}]
    assert [n["name"] for n in data["nonidealities"]] == ["finite_states", "faults"]
    assert [n["name"] for n in data["mapped"][0]["nonidealities"]] == ["finite_states", "faults"]
    want = compiler.compile(mlp_model(), seed=2, nonidealities=["finite_states:n=8", "faults:lrs=0.01:unformed=0.01"])
    assert onnx.load(str(out)).graph.initializer == want.graph.initializer
    # flags replace the file's list, in the order given
    out2, report2 = tmp_path / "b.onnx", tmp_path / "b.json"
    proc = memcc_cli("compile", src, "-o", out2, "--config", conf, "--report", report2, "-q",
                     "--nonideality", "endurance:cycles=1e6", "--nonideality", "finite_states:n=4")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report2.read_text())
    assert [n["name"] for n in data["nonidealities"]] == ["endurance", "finite_states"]


def test_toml_bad_nonideality_table(tmp_path):
    from memcc.config import load_config, parse_config_dict, resolve

    conf = tmp_path / "bad.toml"
    conf.write_text('[[nonideality]]\nn = 8\n')
    with pytest.raises(ConfigError, match="needs name"):
        load_config(conf)
    conf.write_text('[[nonideality]]\nname = "faults"\nstuck_lrs = 7\n')
    with pytest.raises(ConfigError, match="bad.toml.*stuck_lrs must be <= 1"):
        load_config(conf)
    assert parse_config_dict({"nonidealities": ["finite_states:n=3"]})["nonidealities"] == [
        {"name": "finite_states", "n_states": 3, "spacing": "linear"}]
    assert resolve({"nonidealities": ["finite_states:n=3"]}, {"nonidealities": None})["nonidealities"] == [
        {"name": "finite_states", "n_states": 3, "spacing": "linear"}]
