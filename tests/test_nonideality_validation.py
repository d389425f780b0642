"""Validation of the non-idealities (memcc.passes.nonidealities): repeated passes (faults draw
independent devices, the others are refused), single-pass models unchanged bit for bit,
finite_states' states and n bounds, passes given without parameters, and the float32 range of
the I-V nonlinearity."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from memcc import compiler
from memcc.errors import ConfigError
from memcc.passes import Pipeline, default_passes
from memcc.passes.nonidealities import (
    DeviceFaults,
    Endurance,
    FiniteStates,
    ReadNoise,
    iv_coefficients,
    make_nonidealities,
    parse_spec,
)
from memcc.passes.nonidealities.finite_states import MAX_STATES
from memcc.passes.nonidealities.nonlinear_iv import LOG_FLOAT32_MAX, largest_voltage, longest_chain
from memcc.passes.program_devices import layer_seed
from conftest import library_available
from test_cli import assert_user_error, memcc_cli, mlp_model
from test_nonidealities import D2D, big_gemm_model, conductances, f32, windows

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn.onnx"


def fingerprint(model: onnx.ModelProto) -> str:
    """sha256 over every layer's conductances and its run-time non-ideality attributes."""
    inits = {t.name: t for t in model.graph.initializer}
    h = hashlib.sha256()
    for n in model.graph.node:
        if n.op_type != "MemristiveMatMul":
            continue
        h.update(n.name.encode())
        h.update(numpy_helper.to_array(inits[n.input[1]]).tobytes())
        for a in sorted(n.attribute, key=lambda a: a.name):
            if a.name in ("noise_seed", "drift_seed", "read_noise_std", "iv_a", "iv_b", "drift_nu"):
                h.update(a.SerializeToString())
    return h.hexdigest()


# ------------------------------------------------------------------------------- unchanged models

# Computed with the code before repeated passes got streams of their own: a single pass (or
# passes of different names) must keep giving these bytes for the same seed.
UNCHANGED = [
    (["faults:stuck_lrs=0.1"], dict(device="ideal", d2d_std=0.1, seed=3),
     "5635d2eb972e7bc8cc7635affc6dcf005d33a7a27254aa8e2d9c4a082ce4f2de"),
    (["faults:stuck_hrs=0.05:unformed=0.02"], dict(device="vteam", seed=0),
     "2d421b72c981f7edc9249327f5c6fc910255fb852188797a7498f5bf9b120ba6"),
    (["read_noise:std=0.1"], dict(device="data_driven", seed=3),
     "1d3d82954bce13151d3fe32f9752acbcabfd735c854faded25c12664a4ba6a93"),
    (["drift:nu=0.1:nu_std=0.02"], dict(device="data_driven", seed=3),
     "07ac28af2797347aa5ae454e36e7e5f2a8ed105e49a7e0898983a33654d3e4c5"),
    (["nonlinear"], dict(device="data_driven", seed=3),
     "5f17979547edb0fac8f88c0e6ff69b26b658d72631c719acb62c107b22e8d620"),
    (["finite_states:n=8"], dict(device="ideal", d2d_std=0.1, seed=3),
     "432094e91fad0b5bee3a94d02742be19ae54c14d2abfc730e4f711ef2892fdbe"),
    (["endurance:cycles=1e6"], dict(device="ideal", d2d_std=0.1, seed=3),
     "65f12dba6a0e934e3ad6c5eec5174b1e60e73fca8b70734577ba2afe47801058"),
    (["finite_states:n=16", "endurance:cycles=1e6", "faults:stuck_lrs=0.01:unformed=0.005",
      "read_noise:std=0.05", "drift:nu_std=0.01"], dict(device="data_driven", seed=4),
     "f83d164e904fc3c856df856b2ae170a824561c3b33c02e1e981a08ed31603423"),
]


@pytest.mark.parametrize("specs, options, digest", UNCHANGED)
def test_single_passes_give_the_same_model_as_before(specs, options, digest):
    assert fingerprint(compiler.compile(mlp_model(), nonidealities=specs, **options)) == digest


# ------------------------------------------------------------------------------- repeated faults


@pytest.fixture(scope="module")
def big():
    model = big_gemm_model()
    plain = compiler.compile(model, **D2D)
    return model, conductances(plain)["fc"]


def test_two_faults_passes_pick_independent_devices(big):
    model, before = big
    p1, p2 = 0.1, 0.1
    after = conductances(compiler.compile(
        model, nonidealities=["faults:stuck_lrs=0.1", "faults:stuck_hrs=0.1"], **D2D))["fc"]
    n, seed = before.size, layer_seed(0, "fc")
    lrs = DeviceFaults(stuck_lrs=p1).sample(n, seed).reshape(before.shape) == 1  # the first stream, as before
    hrs = DeviceFaults(stuck_hrs=p2).sample(n, seed, 1).reshape(before.shape) == 2
    g_off, g_on = windows(before, "fc", **D2D)
    np.testing.assert_array_equal(after[hrs], f32(g_off[hrs]))  # the later pass wins
    np.testing.assert_array_equal(after[lrs & ~hrs], f32(g_on[lrs & ~hrs]))
    np.testing.assert_array_equal(after[~lrs & ~hrs], before[~lrs & ~hrs])
    # independent sets: the overlap is binomial(n, p1 p2), not the whole of either set
    both = int(np.count_nonzero(lrs & hrs))
    assert abs(both - n * p1 * p2) <= 4 * math.sqrt(n * p1 * p2 * (1 - p1 * p2)), both
    for count, p in ((np.count_nonzero(lrs & ~hrs), p1 * (1 - p2)), (np.count_nonzero(hrs), p2)):
        assert abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (count, n * p)


def test_two_faults_passes_match_the_combined_pass_within_sampling_error(big):
    model, before = big
    g_off, g_on = windows(before, "fc", **D2D)
    targets = (f32(g_on), f32(g_off))  # half the devices already sit at g_off (double scheme)

    def moved(specs):
        G = conductances(compiler.compile(model, nonidealities=specs, **D2D))["fc"]
        return [int(np.count_nonzero((G == t) & (before != t))) for t in targets]

    p = 0.01  # the two passes overlap on about n p^2 = 20 devices, inside the sampling error
    two = moved(["faults:stuck_lrs=0.01", "faults:stuck_hrs=0.01"])
    one = moved(["faults:stuck_lrs=0.01:stuck_hrs=0.01"])
    for a, b, t in zip(two, one, targets):
        m = int(np.count_nonzero(before != t))
        sigma = math.sqrt(m * p * (1 - p))
        assert abs(a - m * p) <= 4 * sigma and abs(a - b) <= 4 * math.sqrt(2) * sigma, (two, one, m)


def test_repeated_faults_streams_follow_the_seed():
    model = mlp_model()
    opts = dict(device="ideal", d2d_std=0.1, seed=0)

    def G(specs):
        return conductances(compiler.compile(model, nonidealities=specs, **opts))

    # passes with different seeds kept their streams before: unchanged
    two = G([DeviceFaults(0.2, seed=5), DeviceFaults(stuck_hrs=0.2, seed=6)])
    want = G([DeviceFaults(0.2, seed=5)])
    for node, g in want.items():
        hrs = DeviceFaults(stuck_hrs=0.2).sample(g.size, layer_seed(6, node)).reshape(g.shape) == 2
        assert np.array_equal(two[node][~hrs], g[~hrs])
    # a seed equal to an earlier pass's (here the compile seed) takes the next stream
    same = G(["faults:stuck_lrs=0.2", "faults:stuck_hrs=0.2:seed=0"])
    assert {k: v.tobytes() for k, v in same.items()} == {
        k: v.tobytes() for k, v in G(["faults:stuck_lrs=0.2", "faults:stuck_hrs=0.2"]).items()}
    # the order of the passes matters
    swapped = G(["faults:stuck_hrs=0.2", "faults:stuck_lrs=0.2"])
    assert any(not np.array_equal(swapped[k], same[k]) for k in same)


# ------------------------------------------------------------------------------- refused repeats


@pytest.mark.parametrize("specs, fragment", [
    (["read_noise:std=0.1", "read_noise:std=0.2"], "read_noise_std"),
    (["nonlinear", "nonlinear"], "give it once"),
    (["drift", "drift:nu=0.1"], "give one drift"),
    (["read_noise", "drift", "read_noise:seed=3"], "give one read_noise with the combined std"),
    (["finite_states:n=16", "faults:stuck_lrs=0.01", "finite_states:n=4"], "one set of conductance states"),
    (["endurance:cycles=1e6", "endurance:cycles=1e6"], "total cycles"),
])
def test_repeats_are_refused(specs, fragment):
    with pytest.raises(ConfigError) as info:
        make_nonidealities(specs)
    text = str(info.value)
    assert "given more than once" in text and fragment in text and "\n" not in text
    with pytest.raises(ConfigError, match="given more than once"):
        compiler.compile(mlp_model(), device="data_driven", nonidealities=specs)


def test_repeats_in_a_hand_built_pipeline_are_refused():
    passes = list(default_passes())
    i = [p.name for p in passes].index("program_devices") + 1
    pipe = Pipeline(passes[:i] + [ReadNoise(0.1), ReadNoise(0.2)] + passes[i:])
    with pytest.raises(ConfigError, match="read_noise: given more than once"):
        compiler.compile(mlp_model(), passes=pipe)
    pipe = Pipeline(passes[:i] + [FiniteStates(8), FiniteStates(8)] + passes[i:])
    with pytest.raises(ConfigError, match="finite_states: given more than once"):
        compiler.compile(mlp_model(), passes=pipe)


def test_cli_refuses_repeats(tmp_path):
    src, out = tmp_path / "mlp.onnx", tmp_path / "out.onnx"
    onnx.save(mlp_model(), str(src))
    proc = memcc_cli("compile", src, "-o", out, "--device", "data_driven",
                     "--nonideality", "read_noise:std=0.1", "--nonideality", "read_noise:std=0.2")
    assert_user_error(proc, "read_noise: given more than once", "combined")
    assert not out.exists()


# ------------------------------------------------------------------------------- finite_states


def nominal(**options):
    from memcc.devices import nominal_device

    return nominal_device(compiler.CompileOptions(**options).validated().make_device())


def data_driven_iv():
    return iv_coefficients(nominal(device="data_driven"))


def nominal_window(**options):
    nom = nominal(**options)
    return float(nom.g_off), float(nom.g_on)


@pytest.mark.parametrize("spec, fragment", [
    ("finite_states:states=1e-5", "at least 2 distinct"),
    ("finite_states:states=2e-5,2e-5", "at least 2 distinct"),
    (f"finite_states:n={MAX_STATES + 1}", "n_states must be <= 2^24"),
    ("finite_states:n=99999999999", "n_states must be <= 2^24"),
])
def test_finite_states_bad_values(spec, fragment):
    assert_refused(spec, fragment)


def assert_refused(spec, fragment):
    with pytest.raises(ConfigError) as info:
        parse_spec(spec)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_finite_states_largest_n_is_accepted():
    assert FiniteStates(MAX_STATES).n_states == 2**24


def test_finite_states_outside_the_window_are_refused():
    g_off, g_on = nominal_window(device="data_driven")
    for states in ([10, 100, 1000], [g_off, 10.0], [3 * g_on, 4 * g_on], [g_off / 3, g_off / 4]):
        with pytest.raises(ConfigError) as info:
            compiler.compile(mlp_model(), device="data_driven", nonidealities=[FiniteStates(states=states)])
        text = str(info.value)
        assert f"[{g_off:.3g}, {g_on:.3g}] S" in text and "siemens" in text and "\n" not in text, text


def test_finite_states_slightly_outside_the_window_are_accepted():
    g_off, g_on = nominal_window(device="ideal")
    for states in ([0.8 * g_off, 1.5 * g_on], [0.0, g_off, g_on], [g_off, g_on, 1e3]):
        G = conductances(compiler.compile(mlp_model(), device="ideal", nonidealities=[FiniteStates(states=states)]))
        values = np.unique(np.concatenate([g.ravel() for g in G.values()]))
        assert set(values.tolist()) <= set(f32(states).tolist())


def test_cli_states_in_microsiemens(tmp_path):
    src, out = tmp_path / "mlp.onnx", tmp_path / "out.onnx"
    onnx.save(mlp_model(), str(src))
    proc = memcc_cli("compile", src, "-o", out, "--nonideality", "finite_states:states=10,100,1000")
    assert_user_error(proc, "0 of the 3 states lie within", "S (", "siemens")
    assert not out.exists()


# ------------------------------------------------------------------------------- no parameters


@pytest.mark.parametrize("spec, fragment", [
    ("faults", "stuck_lrs, stuck_hrs or unformed"),
    ("faults:unformed_factor=0.5", "stuck_lrs, stuck_hrs or unformed"),
    ("faults:seed=3", "its parameters: stuck_lrs, stuck_hrs, unformed, unformed_factor, seed"),
    ("endurance", "give cycles=N"),
    ("endurance:count_programming=false", "its parameters: cycles, threshold, a_on, a_off, count_programming"),
])
def test_passes_that_would_do_nothing_are_refused(spec, fragment):
    assert_refused(spec, fragment)


def test_explicit_zeros_are_still_accepted():
    assert parse_spec("faults:stuck_lrs=0") == DeviceFaults(0.0, 0.0, 0.0)
    assert parse_spec("endurance:cycles=0") == Endurance(0)
    assert parse_spec("endurance:threshold=100").threshold == 100  # counts the programming pulses
    assert parse_spec("endurance:count_programming=true").count_programming


@pytest.mark.parametrize("value", ["false", " OFF ", "no", "0", False, np.bool_(False)])
def test_endurance_without_cycles_or_programming_pulses_is_refused(value):
    # the refusal reads count_programming as the setting does: every spelling of false
    with pytest.raises(ConfigError, match="give cycles=N"):
        Endurance(count_programming=value)
    assert Endurance(cycles=5, count_programming=value).count_programming is False


@pytest.mark.parametrize("value", ["maybe", 0, 1.0])
def test_endurance_count_programming_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="count_programming must be true or false"):
        Endurance(count_programming=value)
    assert Endurance(cycles=5).count_programming is True


# ------------------------------------------------------------------------------- I-V range


def test_longest_chain_counts_mapped_layers_on_one_path():
    mm = "MemristiveMatMul"
    nodes = [  # out of order on purpose
        helper.make_node(mm, ["s", "G3"], ["y"], name="mm3"),
        helper.make_node("Softmax", ["m2"], ["s"], name="soft"),  # ends a chain
        helper.make_node(mm, ["r", "G2"], ["m2"], name="mm2"),
        helper.make_node("Relu", ["m1"], ["r"], name="relu"),
        helper.make_node(mm, ["x", "G1"], ["m1"], name="mm1"),
        helper.make_node(mm, ["x", "G4"], ["z"], name="mm4"),
        helper.make_node(mm, ["z", "G5"], ["w"], name="digital"),  # not mapped
    ]
    graph = helper.make_graph(nodes, "g", [], [])
    assert longest_chain(graph, {"mm1", "mm2", "mm3", "mm4"}) == 2
    assert longest_chain(graph, {"mm3"}) == 1
    assert longest_chain(graph, set()) == 0


def test_nonlinear_overflowing_f_is_refused(tmp_path):
    src, out = tmp_path / "mlp.onnx", tmp_path / "out.onnx"
    onnx.save(mlp_model(), str(src))
    proc = memcc_cli("compile", src, "-o", out, "--device", "data_driven", "--nonideality", "nonlinear",
                     "--max-input-voltage", "100")
    assert_user_error(proc, "float32", "iv_b*V_max = 272", "--max-input-voltage")
    assert not out.exists()
    a, b = data_driven_iv()
    v = largest_voltage(a, b, LOG_FLOAT32_MAX)  # f(v) = float32 max
    assert math.isclose(a * math.sinh(b * v), float(np.finfo(np.float32).max), rel_tol=1e-9)
    with pytest.raises(ConfigError, match="every read would be inf"):
        compiler.compile(mlp_model(), device="data_driven", nonidealities=["nonlinear"], max_input_voltage=v * 1.01)
    compiler.compile(mlp_model(), device="data_driven", nonidealities=["nonlinear"], max_input_voltage=v * 0.99,
                     input_range=1.0)


def test_nonlinear_overflowing_currents_are_refused():
    # K * max(G) > 1: the summed currents overflow below the voltage at which f(V) itself does
    model = big_gemm_model(K=4000, N=2)
    opts = dict(device="data_driven", programming="ideal", d2d_std=0.0, input_range=1.0)
    a, b = data_driven_iv()
    g = conductances(compiler.compile(model, **opts))["fc"]
    log_rows = math.log(4000 * float(np.abs(g).max()))
    assert log_rows > 0
    v_current = largest_voltage(a, b, LOG_FLOAT32_MAX - log_rows)
    v_f = largest_voltage(a, b, LOG_FLOAT32_MAX)
    assert v_current < v_f
    with pytest.raises(ConfigError, match=r"sums up to K\*max\(G\)\*f\(V_max\)") as info:
        compiler.compile(model, nonidealities=["nonlinear"], max_input_voltage=0.5 * (v_current + v_f), **opts)
    assert "K=4000 rows" in str(info.value)
    compiler.compile(model, nonidealities=["nonlinear"], max_input_voltage=0.999 * v_current, **opts)


def _digits_inputs(n=64):
    data = np.load(DIGITS.parent / "digits_test.npz")
    return data["x"][:n].astype(np.float32).reshape(-1, 1, 8, 8)


@pytest.mark.parametrize("volts, warned", [(0.3, False), (6.0, False), (7.0, True), (10.0, True)])
def test_nonlinear_gain_compounding_over_layers_is_noted(volts, warned):
    # stanford_pku: f(V)/V = 5.4e8 at 6 V, 2.5e10 at 7 V; over the digits model's 4 layers
    # 8.5e34 and 3.9e41, against float32's 3.4e38
    compiled, report = compiler.compile_with_report(DIGITS, device="stanford_pku", nonidealities=["nonlinear"],
                                                    max_input_voltage=volts, progress=False)
    notes = [n for n in report.notes if n.startswith("nonlinear:")]
    assert bool(notes) == warned, report.notes
    if warned:
        assert "4 chained layers" in notes[0] and "max_input_voltage <= 6.54 V" in notes[0]
        assert "note: nonlinear:" in report.summary()
    if volts in (6.0, 7.0) and library_available():  # either side of the estimate, run by the op
        from memcc.runtime import session

        y = session(compiled).run(None, {"image": _digits_inputs()})[0]
        assert np.isfinite(y).all() != warned
    # a fixed input range clamps every layer's inputs: nothing compounds
    _, fixed = compiler.compile_with_report(DIGITS, device="stanford_pku", nonidealities=["nonlinear"],
                                            max_input_voltage=volts, input_range=16.0, progress=False)
    assert not [n for n in fixed.notes if n.startswith("nonlinear:")]
