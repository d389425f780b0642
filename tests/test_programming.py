"""Programming simulation (memcc.programming) and its plots."""

import numpy as np
import pytest

from memcc.devices.data_driven import DataDriven
from memcc.devices.linear_ion_drift import LinearIonDrift
from memcc.devices.parameters import Distribution
from memcc.devices.stanford_pku import StanfordPKU
from memcc.devices.vteam import VTEAM
from memcc.errors import ConfigError
from memcc.programming import program, program_ideal, program_naive, summarize

MODELS = [VTEAM, LinearIonDrift, StanfordPKU, DataDriven]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_naive_converges_for_targets_over_the_range(cls):
    m = cls()
    rng = np.random.default_rng(5)
    targets = rng.uniform(m.g_off, m.g_on, size=(40, 50))  # any shape
    res = program_naive(m, targets)
    assert res.conductances.shape == targets.shape == res.pulses.shape == res.converged.shape
    assert res.fraction_converged >= 0.99, cls.name
    ok = res.converged
    err = np.abs(res.conductances - targets) / targets
    assert np.all(err[ok] <= res.tolerance * (1 + 1e-6))
    assert res.pulses.max() <= res.max_pulses
    stats = summarize(res)
    assert stats["fraction_converged"] == res.fraction_converged
    assert stats["n_budget_exhausted"] == int((~res.converged).sum())


def test_budget_exhausted_devices_are_counted_and_keep_their_state():
    m = VTEAM()
    targets = np.full(1000, 0.5 * (m.g_on + m.g_off))
    res = program_naive(m, targets, max_pulses=3)
    assert res.fraction_converged == 0.0
    assert res.budget_exhausted.sum() == 1000 and np.all(res.pulses == 3)
    # the state reached after 3 SET pulses from OFF
    x = m.initial_state("off", 1)
    for _ in range(3):
        x = m.apply_pulse(x, 0.25, 2e-9)
    np.testing.assert_allclose(res.states, x[0])
    assert summarize(res)["n_budget_exhausted"] == 1000


def test_unconverged_with_variability_and_out_of_range_targets():
    m = VTEAM(r_on=Distribution(50, 5, min=20), r_off=Distribution(1000, 100, min=200))
    targets = np.random.default_rng(0).uniform(1 / 1000, 1 / 50, 20000)
    res = program_naive(m, targets, seed=11)
    again = program_naive(m, targets, seed=11)
    assert np.array_equal(res.conductances, again.conductances)
    assert res.out_of_range.sum() > 0
    # in-range devices converge; out-of-range ones sit at their nearest bound
    assert res.converged[~res.out_of_range].mean() >= 0.99
    sampled = m.sample(targets.size, 11)
    high = res.out_of_range & (targets > sampled.g_on)
    np.testing.assert_allclose(res.conductances[high], sampled.g_on[high], rtol=0.05)


def test_ideal_mode_exact():
    for cls in MODELS:
        m = cls()
        targets = np.linspace(m.g_off, m.g_on, 101).reshape(1, 101)
        res = program(m, targets, method="ideal")
        np.testing.assert_allclose(res.conductances, targets, rtol=1e-9)
        assert res.converged.all() and (res.pulses == 0).all()
        clipped = program_ideal(m, np.array([0.0, 2 * m.g_on]))
        np.testing.assert_allclose(clipped.conductances, [m.g_off, m.g_on], rtol=1e-9)
        assert clipped.out_of_range.all()


def test_progress_callback_and_chunking():
    m = DataDriven()
    seen = []
    targets = np.random.default_rng(2).uniform(m.g_off, m.g_on, 5000)
    a = program_naive(m, targets, chunk_size=700, workers=2, progress=seen.append)
    b = program_naive(m, targets, chunk_size=5000, workers=1)
    assert sum(seen) == 5000 and len(seen) == 8
    np.testing.assert_array_equal(a.conductances, b.conductances)


def test_errors():
    m = VTEAM()
    with pytest.raises(ConfigError, match="set_voltage"):
        program_naive(m, [1e-3], set_voltage=-1)
    with pytest.raises(ConfigError, match="reset_voltage"):
        program_naive(m, [1e-3], reset_voltage=0.5)
    with pytest.raises(ConfigError, match="tolerance"):
        program_naive(m, [1e-3], tolerance=2)
    with pytest.raises(ConfigError, match="unknown programming method"):
        program(m, [1e-3], method="ispp")
    with pytest.raises(ConfigError, match="finite"):
        program_naive(m, [np.nan])


def test_plots(tmp_path):
    from memcc.plots import plot_iv_loop, plot_programming_error

    m = VTEAM()
    res = program_naive(m, np.random.default_rng(0).uniform(m.g_off, m.g_on, 2000))
    p1 = plot_programming_error(res, tmp_path / "err.png")
    p2 = plot_iv_loop(m, tmp_path / "iv.png")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_max_doublings_bounded_relative_to_the_models_default():
    from memcc.programming import MAX_EXTRA_DOUBLINGS

    m = StanfordPKU()
    default = StanfordPKU.PROGRAMMING_DEFAULTS["max_doublings"]
    targets = np.full(4, 0.5 * (m.g_on + m.g_off))
    program_naive(m, targets, max_doublings=default + MAX_EXTRA_DOUBLINGS, max_pulses=2)
    for bad in (default + MAX_EXTRA_DOUBLINGS + 1, 1000, 10**30, -1, 2.5, True, "4", float("inf")):
        with pytest.raises(ConfigError, match="max_doublings") as info:
            program_naive(m, np.empty(0), max_doublings=bad)  # the dry run a compilation makes
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=f"between 0 and {default + MAX_EXTRA_DOUBLINGS} for stanford_pku"):
        program_naive(m, targets, max_doublings=1000)
    # models without a default of their own: the module default
    from memcc.programming import DEFAULT_MAX_DOUBLINGS

    program_naive(VTEAM(), np.empty(0), adaptive=True, max_doublings=DEFAULT_MAX_DOUBLINGS + MAX_EXTRA_DOUBLINGS)
    # every model's own default stays accepted
    for cls in MODELS:
        program_naive(cls(), np.empty(0))


def test_compile_refuses_max_doublings_beyond_the_bound():
    import memcc
    from models import batchnorm_gemm_model

    model, _ = batchnorm_gemm_model()
    with pytest.raises(ConfigError, match="max_doublings must be between 0 and 4 for stanford_pku"):
        memcc.compile(model, device="stanford_pku", programming_options={"max_doublings": 1000})


def test_outcome_text_separates_within_tolerance_from_out_of_range():
    from memcc.programming import format_summary, outcome_text

    m = VTEAM()
    # a third of the targets above the device's range: programming "converges" at g_on but misses them
    targets = np.concatenate([np.linspace(m.g_off * 1.5, m.g_on * 0.9, 200), np.full(100, 2 * m.g_on)])
    res = program_naive(m, targets)
    stats = summarize(res)
    assert res.fraction_converged == 1.0 and stats["fraction_within_tolerance"] < 0.7
    within = int(round(stats["fraction_within_tolerance"] * 300))
    text = outcome_text(stats)
    assert text.startswith(f"{within:,} of 300 devices within tolerance of their target (")
    assert "100 with a target outside the device's range (set to its nearest reachable conductance)" in text
    assert "0 ran out of pulses (budget exhausted)" in text
    assert "converged" not in format_summary(stats)
    assert outcome_text(stats, short=True) == (
        f"{within:,}/300 devices within tolerance of their target (100 with a target outside the device's range)"
    )
    ideal = summarize(program_ideal(m, targets))
    assert outcome_text(ideal).startswith("200 of 300 devices set to their target (66.7 %); 100 with a target")


def test_outcome_text_never_rounds_a_miss_to_100_percent():
    from memcc.programming import outcome_text

    stats = {"n_devices": 100000, "method": "naive", "fraction_within_tolerance": 0.99999,
             "n_out_of_range": 0, "n_budget_exhausted": 1}
    assert "(99.9 %)" in outcome_text(stats)
