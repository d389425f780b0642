"""Stochastic device parameters: Distribution, sampling, text/TOML parsing."""

import math

import numpy as np
import pytest

from memcc.devices.parameters import (Distribution, ParameterError, from_config_value, parse_parameter,
                                      parse_parameters, sample_parameters)
from memcc.devices.vteam import VTEAM
from memcc.errors import ConfigError


def test_sample_statistics_within_sampling_error():
    n = 200_000
    x = sample_parameters({"r_on": Distribution(50.0, 5.0)}, n, seed=1)["r_on"]
    assert x.shape == (n,) and x.dtype == np.float64
    assert abs(x.mean() - 50.0) < 5 * 5.0 / math.sqrt(n)
    assert abs(x.std() - 5.0) < 5 * 5.0 / math.sqrt(2 * n)


def test_clipping_respected():
    x = Distribution(50.0, 20.0, min=40.0, max=55.0).sample(100_000, np.random.default_rng(0))
    assert x.min() == 40.0 and x.max() == 55.0
    # the clipped mass sits at the bounds: P(X < 40) for N(50, 20)
    assert abs(np.mean(x == 40.0) - 0.3085) < 0.01


def test_same_seed_identical_different_seeds_differ():
    vals = {"r_on": Distribution(50, 10, min=1), "r_off": Distribution(1000, 100), "k_on": -10.0}
    a = sample_parameters(vals, 1000, seed=7)
    b = sample_parameters(vals, 1000, seed=7)
    c = sample_parameters(vals, 1000, seed=8)
    assert np.array_equal(a["r_on"], b["r_on"]) and np.array_equal(a["r_off"], b["r_off"])
    assert not np.array_equal(a["r_on"], c["r_on"])
    assert a["k_on"] == -10.0
    # a parameter's samples do not depend on which other parameters are stochastic
    d = sample_parameters({"r_on": Distribution(50, 10, min=1)}, 1000, seed=7)
    assert np.array_equal(a["r_on"], d["r_on"])
    assert not np.array_equal(a["r_on"], a["r_off"] / 20)


def test_model_sampling_once_per_device():
    m = VTEAM(r_on=Distribution(50, 5, min=10), r_off=Distribution(1000, 50))
    assert m.is_stochastic and m.p is None
    with pytest.raises(ConfigError, match="sample"):
        m.g_on
    s1, s2 = m.sample(5000, seed=3), m.sample(5000, seed=3)
    assert s1.n_devices == 5000 and not s1.is_stochastic
    assert np.array_equal(s1.r_on, s2.r_on)
    assert s1.r_on.std() > 4 and np.all(s1.r_on >= 10)
    np.testing.assert_allclose(s1.g_on, 1 / s1.r_on)
    sub = s1.take(np.array([3, 7]))
    np.testing.assert_array_equal(sub.r_on, s1.r_on[[3, 7]])
    # a per-device state follows the per-device range
    np.testing.assert_allclose(s1.conductance(s1.initial_state("on")), s1.g_on)


def test_parse_strings():
    assert parse_parameter("r_on=50") == ("r_on", 50.0)
    assert parse_parameter("r_on=50:std=10:min=1") == ("r_on", Distribution(50, 10, 1, math.inf))
    assert parse_parameter("r_off = 1e3 : std=1e2 : max=2e3") == ("r_off", Distribution(1000, 100, -math.inf, 2000))
    assert parse_parameter("window=biolek") == ("window", "biolek")
    assert parse_parameters(["r_on=50", "k_on=-5:std=1"]) == {"r_on": 50.0, "k_on": Distribution(-5, 1)}


@pytest.mark.parametrize("text, message", [
    ("r_on", "not name=value"),
    ("=5", "not name=value"),
    ("r_on=", "missing value"),
    ("r_on=abc:std=1", "expected a number"),
    ("r_on=5:sd=1", "unknown option 'sd'"),
    ("r_on=5:std", "not key=value"),
    ("r_on=5:std=-1", "std must be"),
    ("r_on=5:min=3:max=2", "larger than max"),
    ("r_on=5:std=1:std=2", "given twice"),
    ("r_on=inf", "finite"),
    ("r_on=5:std=x", "expected a number"),
])
def test_parse_errors(text, message):
    with pytest.raises(ParameterError, match=message) as info:
        parse_parameter(text)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_toml_tables():
    assert from_config_value("r_on", {"mean": 50, "std": 10, "min": 1}) == Distribution(50, 10, 1)
    assert from_config_value("r_on", 50) == 50.0
    assert from_config_value("r_on", "50:std=5") == Distribution(50, 5)
    with pytest.raises(ParameterError, match="needs 'mean'"):
        from_config_value("r_on", {"std": 3})
    with pytest.raises(ParameterError, match="unknown key"):
        from_config_value("r_on", {"mean": 3, "sigma": 1})
    with pytest.raises(ParameterError, match="must be a number"):
        from_config_value("r_on", {"mean": "x"})
    with pytest.raises(ParameterError):
        from_config_value("r_on", True)
    assert parse_parameters({"r_on": {"mean": 50, "std": 10}})["r_on"] == Distribution(50, 10)


def test_model_rejects_unknown_and_bad_parameters():
    name, value = parse_parameter("r_onn=50:std=2")
    with pytest.raises(ConfigError, match="no parameter 'r_onn'"):
        VTEAM(**{name: value})
    with pytest.raises(ConfigError, match="must be > 0"):
        VTEAM(r_on=Distribution(-5, 1))
    with pytest.raises(ConfigError, match="r_on must be smaller than r_off"):
        VTEAM(r_on=Distribution(900, 300, min=1)).sample(1000, seed=0)
    with pytest.raises(ConfigError, match="must be > 0 ohm, got values"):
        VTEAM(r_on=Distribution(50, 100)).sample(1000, seed=0)
    m = VTEAM(r_on="60:std=0")  # a fixed distribution is a plain number
    assert m.r_on == 60.0 and not m.is_stochastic
