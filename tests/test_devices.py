"""Physics of memcc's switching device models (memcc.devices.*)."""

import numpy as np
import pytest

from memcc.devices import windows as W
from memcc.devices.data_driven import DataDriven
from memcc.devices.linear_ion_drift import LinearIonDrift
from memcc.devices.stanford_pku import StanfordPKU
from memcc.devices.vteam import VTEAM
from memcc.errors import ConfigError

MODELS = [VTEAM, LinearIonDrift, StanfordPKU, DataDriven]


def test_windows_values():
    x = np.array([0.0, 0.25, 0.5, 1.0])
    # Joglekar, correctly parenthesised: 1 - (2x - 1)^(2p)
    np.testing.assert_allclose(W.joglekar(x, 1), [0.0, 0.75, 1.0, 0.0])
    np.testing.assert_allclose(W.joglekar(x, 2), [0.0, 1 - 0.5**4, 1.0, 0.0])
    # Biolek: vanishes only at the bound the state moves towards
    np.testing.assert_allclose(W.biolek(x, np.ones(4), 1), 1 - x**2)
    np.testing.assert_allclose(W.biolek(x, -np.ones(4), 1), 1 - (x - 1) ** 2)
    assert W.biolek(0.0, 1.0) == 1.0 and W.biolek(1.0, -1.0) == 1.0
    np.testing.assert_allclose(W.prodromakis(np.array([0.0, 0.5, 1.0]), 1, 1.0), [0.0, 0.25, 0.0], atol=1e-15)


def test_linear_ion_drift_constant_current_matches_analytic():
    # w(t) = w0 + mu_v R_on I t / D, i.e. x = w/D grows by mu_v R_on I t / D^2, until the bound.
    m = LinearIonDrift(window="none", pos_write_threshold=0.0, neg_write_threshold=0.0)
    current, dt, w0 = 1e-4, 1e-4, 0.2 * 10e-9
    x = np.array([w0 / 10e-9])
    xs = []
    for _ in range(15000):
        v = current * m.resistance(x)  # the voltage that drives exactly `current`
        x = m.step(x, v, dt)
        xs.append(x[0])
    t = dt * np.arange(1, 15001)
    w_analytic = np.minimum(w0 + 1e-14 * 100.0 * current * t / 10e-9, 10e-9)
    np.testing.assert_allclose(np.array(xs) * 10e-9, w_analytic, rtol=1e-9, atol=1e-20)
    assert xs[-1] == 1.0  # reached the bound and stayed


def test_linear_ion_drift_charge_oracle_and_exact_pulse():
    # sinusoidal drive: w(t) - w0 = mu_v R_on q(t) / D with q the charge that flowed
    m = LinearIonDrift(window="none", pos_write_threshold=0.0, neg_write_threshold=0.0)
    x0 = np.array([0.5])
    dt = 1e-4
    t = np.arange(4000) * dt
    v = 1.0 * np.sin(2 * np.pi * 2.5 * t)
    x, q = x0.copy(), 0.0
    for vk in v:
        q += m.current(x, vk)[0] * dt
        x = m.step(x, vk, dt)
    assert abs((x[0] - x0[0]) - m.p["_k"] * q) < 1e-12
    # closed-form pulse agrees with fine Euler steps
    x1 = m.exact_pulse(x0, 1.0, 5e-3)
    x2 = m.apply_pulse.__func__(m.replace(window="biolek", p=1).replace(window="none"), x0, 1.0, 5e-3, 1e-7)
    np.testing.assert_allclose(x1, x2, rtol=1e-6)
    xe = x0.copy()
    for _ in range(50000):
        xe = m.step(xe, 1.0, 1e-7)
    np.testing.assert_allclose(x1, xe, rtol=1e-4)


def test_vteam_thresholds_and_rate():
    m = VTEAM()
    x = np.full(5, 1.5e-9)
    # between the thresholds (memcc polarity: RESET below -0.02 V, SET above +0.2 V): no change
    for v in (0.0, 0.19, -0.019, 0.1):
        np.testing.assert_array_equal(m.step(x, v), x)
    dt = 1e-12
    # SET: positive voltage above 0.2 V lowers x (towards R_on), dx/dt = k_on (u/v_on - 1)^alpha_on, u = -v
    v = 0.3
    expected = -10.0 * ((-v) / -0.2 - 1) ** 3
    np.testing.assert_allclose(m.step(x, v, dt) - x, expected * dt, rtol=1e-6)
    assert np.all(m.conductance(m.step(x, v, dt)) > m.conductance(x))
    # RESET: negative voltage below -0.02 V raises x, dx/dt = k_off (u/v_off - 1)^alpha_off
    v = -0.5
    expected = 5e-4 * ((-v) / 0.02 - 1) ** 1
    np.testing.assert_allclose(m.step(x, v, dt) - x, expected * dt, rtol=1e-6)
    assert np.all(m.conductance(m.step(x, v, dt)) < m.conductance(x))
    assert m.set_threshold == pytest.approx(0.2) and m.reset_threshold == pytest.approx(-0.02)


def test_vteam_exact_pulse_equals_stepping():
    m = VTEAM()
    x = np.linspace(0, 3e-9, 7)
    for v in (0.25, -0.3, -1.0):
        stepped = x.copy()
        for _ in range(40):
            stepped = m.step(stepped, v)
        np.testing.assert_allclose(m.apply_pulse(x, v, 40e-10), stepped, rtol=1e-9, atol=1e-22)


def test_polarity_convention_all_models():
    for cls in MODELS:
        m = cls()
        s = m.initial_state("mid", 3)
        g0 = m.conductance(s)
        up = m.apply_pulse(s, 1.6, 50 * m.dt)
        down = m.apply_pulse(s, -1.6, 50 * m.dt)
        assert np.all(m.conductance(up) > g0), cls.name
        assert np.all(m.conductance(down) < g0), cls.name


@pytest.mark.parametrize(
    "kwargs, name, requirement",
    [
        ({"frequency": float("nan")}, "frequency", "must be a finite number"),
        ({"duration": float("inf")}, "duration", "must be a finite number"),
        ({"amplitude": 0.0}, "amplitude", "must be > 0"),
        ({"duration": -1e-9}, "duration", "must be > 0"),
        ({"dt": 0.0}, "dt", "must be > 0"),
    ],
)
def test_iv_loop_refuses_unusable_sweeps(kwargs, name, requirement):
    from memcc.devices import ParameterError

    with pytest.raises(ParameterError) as info:
        VTEAM().iv_loop(**kwargs)
    assert info.value.parameter == name and info.value.requirement == requirement
    assert isinstance(info.value, ConfigError) and name in str(info.value)


@pytest.mark.parametrize("duration", [None, 1e-3])  # the device's step, then the step cap
def test_iv_sampling_is_what_iv_loop_does(duration):
    m = VTEAM()
    plan = m.iv_sampling(duration=duration)
    t, v, i, g = m.iv_loop(duration=duration)
    assert len(t) == plan["n_steps"] <= plan["max_steps"] + 1
    assert t[1] == pytest.approx(plan["dt"])
    assert plan["samples_per_period"] == pytest.approx(1 / (plan["frequency"] * plan["dt"]))
    assert (plan["dt"] > plan["device_dt"]) == (duration is not None)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_pinched_hysteresis_loop(cls):
    m = cls()
    t, v, i, g = m.iv_loop()
    assert t.shape == v.shape == i.shape == g.shape
    # pinched: zero current at zero voltage
    zero = np.abs(v) < 1e-12 * max(1.0, np.abs(v).max())
    assert zero.sum() >= 2 and np.all(np.abs(i[zero]) < 1e-15)
    # hysteresis: two points at (nearly) the same voltage with different currents
    # hysteresis: at the same voltage the rising and falling branches carry different currents
    # (after the first period, on the positive or the negative half)
    rising = np.gradient(v) > 0
    later = t > t[-1] * 0.3
    gaps = []
    for level in (0.5 * np.abs(v).max(), -0.5 * np.abs(v).max()):
        a = np.argmin(np.abs(v - level) + 1e9 * (~rising | ~later))
        b = np.argmin(np.abs(v - level) + 1e9 * (rising | ~later))
        assert abs(v[a] - v[b]) < 0.02 * abs(level)
        gaps.append(abs(i[a] - i[b]) / max(abs(i[a]), abs(i[b])))
    assert max(gaps) > 0.01, (cls.name, gaps)
    assert np.all(g >= m.g_off * (1 - 1e-9)) and np.all(g <= m.g_on * (1 + 1e-9))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_conductance_bounded_under_random_waveforms(cls):
    rng = np.random.default_rng(3)
    m = cls()
    s = m.initial_state("mid", 64)
    wf = rng.uniform(-3.0, 3.0, size=(300, 64))
    for k in range(wf.shape[0]):
        s = m.step(s, wf[k], m.dt * rng.uniform(1, 1000))
        g = m.conductance(s)
        assert np.all(g >= m.g_off * (1 - 1e-9)) and np.all(g <= m.g_on * (1 + 1e-9)), cls.name
    # common-waveform path (run-length fused pulses, chunked) stays bounded too
    s2 = m.simulate(m.initial_state("on", 1000), rng.choice([-2.0, 0.0, 2.0], 50), chunk_size=300, workers=2)
    g = m.conductance(s2)
    assert np.all(g >= m.g_off * (1 - 1e-9)) and np.all(g <= m.g_on * (1 + 1e-9))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_state_for_conductance_roundtrip(cls):
    m = cls()
    g = np.linspace(m.g_off, m.g_on, 11)
    np.testing.assert_allclose(m.conductance(m.state_for_conductance(g)), g, rtol=1e-5)
    # out-of-range requests are clipped to the device's range
    np.testing.assert_allclose(m.conductance(m.state_for_conductance([0.0, 10 * m.g_on])), [m.g_off, m.g_on], rtol=1e-5)


def test_simulate_chunked_matches_loop():
    m = VTEAM()
    rng = np.random.default_rng(0)
    s0 = m.initial_state("off", 500)
    wf = np.repeat(rng.choice([0.25, -0.1, 0.0], 20), 5)
    fused = m.simulate(s0, wf, chunk_size=128, workers=2)
    loop = s0.copy()
    for v in wf:
        loop = m.step(loop, v)
    np.testing.assert_allclose(fused, loop, rtol=1e-9, atol=1e-21)
    # per-device waveform (T, N)
    wf2 = rng.uniform(-0.5, 0.5, (30, 500))
    out = m.simulate(s0, wf2, chunk_size=100)
    loop = s0.copy()
    for k in range(30):
        loop = m.step(loop, wf2[k])
    np.testing.assert_allclose(out, loop)


def test_stanford_pku_threshold_and_bounds():
    m = StanfordPKU()
    gmin, gmax = m.state_bounds()
    assert gmin == pytest.approx(2e-10, rel=1e-3) and gmax == pytest.approx(1.7e-9, rel=1e-2)
    s = np.linspace(gmin, gmax, 5)
    np.testing.assert_array_equal(m.step(s, 0.9), s)  # below F_min t_ox / gamma everywhere
    assert np.all(m.step(s[1:3], 1.3) < s[1:3])
    assert np.all(m.step(s[1:3], -1.3) > s[1:3])
    np.testing.assert_allclose(m.conductance(np.array([gmin, gmax])), [1 / 542, 1 / 218586], rtol=1e-9)


def test_data_driven_bounds_and_exact_update():
    m = DataDriven()
    R = np.array([3000.0, 2500.0, 1700.0])
    # a set pulse never takes R below r_p(V) and leaves R < r_p(V) untouched
    rp = 2699.2336 - 672.930205 * 1.0
    out = m.step(R, 1.0, 1e-3)
    assert np.all(out[R > rp] >= rp - 1e-9) and out[2] == R[2]
    # exact update: one pulse equals many steps
    stepped = R.copy()
    for _ in range(100):
        stepped = m.step(stepped, 1.2, 1e-8)
    np.testing.assert_allclose(m.apply_pulse(R, 1.2, 1e-6), stepped, rtol=1e-9)


def test_unknown_parameter_and_bad_values():
    with pytest.raises(ConfigError, match="did you mean 'r_on'"):
        VTEAM(r_onn=5)
    with pytest.raises(ConfigError, match="r_on must be smaller than r_off"):
        VTEAM(r_on=2000)
    with pytest.raises(ConfigError, match="k_on"):
        VTEAM(k_on=1.0)
    with pytest.raises(ConfigError, match="window"):
        LinearIonDrift(window="hann")
    assert LinearIonDrift(window="Biolek").p["window"] == "biolek"
