"""memcc.mapping (weights → conductances) and memcc.devices (registry, ideal device)."""

from __future__ import annotations

import numpy as np
import pytest

from memcc.devices import Device, get_device, list_devices
from memcc.errors import ConfigError
from memcc.mapping import map_weights

R_ON, R_OFF = 1e3, 1e5
G_ON, G_OFF = 1 / R_ON, 1 / R_OFF


@pytest.fixture
def W(gen):
    return gen.standard_normal((13, 7)).astype(np.float32)


def in_window(G):
    eps = 1e-6 * G_ON
    return np.all(G >= G_OFF - eps) and np.all(G <= G_ON + eps)


def test_double_column(W):
    m = map_weights(W, r_on=R_ON, r_off=R_OFF, scheme="double")
    assert m.G.shape == (2, 13, 7) and m.G.dtype == np.float32
    assert in_window(m.G)
    G = m.G.astype(np.float64)
    np.testing.assert_allclose(m.weight_scale * (G[0] - G[1]), W, rtol=1e-5, atol=1e-5 * np.abs(W).max())
    # one of each pair sits at G_off; the largest |w| reaches G_on
    np.testing.assert_allclose(np.minimum(G[0], G[1]), G_OFF, rtol=1e-6)
    assert np.isclose(G.max(), G_ON, rtol=1e-6)
    assert np.isclose(m.weight_scale, np.abs(W).max() / (G_ON - G_OFF), rtol=1e-6)
    np.testing.assert_allclose(m.effective_weights(), W, rtol=1e-5, atol=1e-5 * np.abs(W).max())


def test_single_column(W):
    m = map_weights(W, r_on=R_ON, r_off=R_OFF, scheme="single")
    assert m.G.shape == (1, 13, 7)
    assert in_window(m.G)
    assert np.isclose(m.g_ref, (G_ON + G_OFF) / 2, rtol=1e-6)
    G = m.G.astype(np.float64)
    np.testing.assert_allclose(m.weight_scale * (G[0] - m.g_ref), W, rtol=1e-5, atol=1e-5 * np.abs(W).max())
    # negative weights are not clamped: the most negative weight sits at G_off
    assert np.isclose(G.min(), G_OFF, rtol=1e-5) or np.isclose(G.max(), G_ON, rtol=1e-5)
    assert np.isclose(m.weight_scale, 2 * np.abs(W).max() / (G_ON - G_OFF), rtol=1e-6)


@pytest.mark.parametrize("scheme", ["double", "single"])
def test_all_zero_weights(scheme):
    m = map_weights(np.zeros((3, 2)), r_on=R_ON, r_off=R_OFF, scheme=scheme)
    assert np.all(np.isfinite(m.G)) and np.isfinite(m.weight_scale) and m.weight_scale > 0
    assert in_window(m.G)
    np.testing.assert_array_equal(m.effective_weights(), 0.0)


def test_validation():
    with pytest.raises(ValueError, match="scheme"):
        map_weights(np.ones((2, 2)), r_on=R_ON, r_off=R_OFF, scheme="triple")
    with pytest.raises(ValueError, match="r_on"):
        map_weights(np.ones((2, 2)), r_on=R_OFF, r_off=R_ON)
    with pytest.raises(ValueError, match="K, N"):
        map_weights(np.ones(3), r_on=R_ON, r_off=R_OFF)
    with pytest.raises(ValueError, match="NaN"):
        map_weights(np.array([[np.nan]]), r_on=R_ON, r_off=R_OFF)


def test_device_registry():
    assert "ideal" in list_devices()
    d = get_device("ideal")
    assert isinstance(d, Device) and d.r_on < d.r_off
    assert d.g_on == 1 / d.r_on and d.g_off == 1 / d.r_off
    assert get_device("IDEAL", r_on=2e3).r_on == 2e3
    assert get_device("ideal", r_on=None).r_on == d.r_on  # None keeps the default
    assert get_device(d, r_off=1e6).r_off == 1e6
    with pytest.raises(ConfigError, match="unknown device"):
        get_device("vteam-x")
    with pytest.raises(ConfigError, match="r_on"):
        get_device("ideal", r_on=1e6, r_off=1e3)
    with pytest.raises(ConfigError, match="r_on"):
        get_device("ideal", r_on=-5.0)
    with pytest.raises(ConfigError, match="no parameter"):
        get_device("ideal", k_on=3)


def test_registry_is_extensible():
    from dataclasses import dataclass

    from memcc.devices import register_device
    from memcc.devices.registry import _REGISTRY

    @register_device("test-linear-device")
    @dataclass(frozen=True)
    class TestDevice(Device):
        name = "test-linear-device"
        r_on: float = 10.0
        r_off: float = 20.0
        states: int = 4

    try:
        assert "test-linear-device" in list_devices()
        assert get_device("test-linear-device", states=8).states == 8
    finally:
        del _REGISTRY["test-linear-device"]
